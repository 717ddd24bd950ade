"""Datasets in the book's format: ``(x_train, t_train), (x_test, t_test)``.

* :func:`load_mnist` -- MNIST, found locally or downloaded from mirrors and accepted only if
  the SHA-256 of each decompressed IDX payload is the canonical one.
* :func:`load_idx` -- any dataset laid out as MNIST's four IDX files (e.g. Fashion-MNIST).
* :func:`load_digits` -- the 1,797 8x8 UCI digits shipped inside the package (offline).

Images are ``(N, H*W)`` with ``flatten=True``, else ``(N, 1, H, W)``.  With ``normalize`` the
pixels are scaled to [0, 1] in ``dtype`` (float32 or float64); without it they stay uint8, as
in the book.  Labels are uint8 class indices, as in the book, or ``(N, n_classes)`` one-hot
rows in ``dtype`` with ``one_hot_label``.  Nothing is ever pickled: files are parsed as IDX.
"""
import contextlib
import gzip
import hashlib
import http.client
import math
import os
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__
from ._dtype import check_dtype

__all__ = ["load_mnist", "load_idx", "load_digits", "read_idx", "mnist_dir",
           "DatasetNotFoundError", "MNIST_FILES", "MNIST_SHA256", "MNIST_MIRRORS"]

#: The four file names, without the optional ``.gz``, in the order train x, train t, test x, test t.
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
#: SHA-256 of the *decompressed* payloads: mirrors differ in gzip bytes, never in payload.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Default base URLs, tried in order (``$CNN_CORE_MNIST_MIRRORS`` or ``mirrors=`` replace them).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",   # torchvision's and the book repo's
    "https://storage.googleapis.com/cvdf-datasets/mnist/",   # TensorFlow's
    "http://yann.lecun.com/exdb/mnist/",   # the original, often refusing scripts nowadays
)

# Network policy; module constants so that tests can shorten them.
_TIMEOUT = 30.0   # seconds per connect / read
_RETRIES = 2      # extra attempts per mirror after a transient failure (not after a 4xx)
_BACKOFF = 0.5    # seconds before the first retry, doubled each time
_CHUNK = 1 << 16
_MAX_BYTES = 1 << 26   # refuse downloads (and gzip bombs) beyond 64 MiB; MNIST's largest is 45 MiB

# IDX type codes (http://yann.lecun.com/exdb/mnist/): all multi-byte values are big-endian.
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are neither in the data directory nor downloadable."""


# ----------------------------------------------------------------------------- IDX files
def _read_payload(path, gzipped=None, limit=-1):
    """The IDX bytes of ``path`` (at most ``limit`` + 1 of them, to detect gzip bombs),
    gunzipped if ``gzipped`` (by default: if the name ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if (path.suffix == ".gz" if gzipped is None else gzipped) else open
    try:
        with opener(path, "rb") as f:
            return f.read(limit if limit < 0 else limit + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupted or truncated gzip file ({exc})") from None


def _parse_idx(payload, source):
    """Validate an IDX payload (magic, type code, ndim, dims vs. length) and return its array."""
    if len(payload) < 4 or payload[:2] != b"\0\0":
        raise ValueError(f"{source}: not an IDX file (bad magic number "
                         f"{payload[:4].hex() or 'empty'}, expected 0000TTNN)")
    code, ndim = payload[2], payload[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{source}: unknown IDX data type code 0x{code:02x}, expected one of "
                         + ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES))
    header = 4 + 4 * ndim
    if ndim == 0 or len(payload) < header:
        raise ValueError(f"{source}: IDX header declares {ndim} dimensions but "
                         f"{'has none' if ndim == 0 else 'is truncated'}")
    dims = struct.unpack(f">{ndim}I", payload[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    count = math.prod(dims)
    expected, actual = count * dtype.itemsize, len(payload) - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise ValueError(f"{source}: header dims {dims} need {expected} bytes of data, "
                         f"found {actual} ({what})")
    arr = np.frombuffer(payload, dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))   # a native-endian, writeable copy


def read_idx(path, *, sha256=None):
    """Read one IDX file (``.gz`` or not) as an ndarray, fully validated.

    With ``sha256`` (hex), the decompressed payload must have that hash.  Every defect
    raises ``ValueError`` naming ``path``.
    """
    payload = _read_payload(path)
    if sha256 is not None and (digest := hashlib.sha256(payload).hexdigest()) != sha256:
        raise ValueError(f"{path}: SHA-256 of the decompressed payload is {digest}, expected "
                         f"{sha256}; the file is corrupted or not the expected one: delete or "
                         "replace it")
    return _parse_idx(payload, path)


def _find(directory, name):
    """``directory/name.gz`` or ``directory/name``, whichever exists first, else None."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


# ----------------------------------------------------------------------------- formatting
def _check_split(x_path, x, t_path, t):
    """Validate uint8 images ``x`` (N, H, W) and uint8 labels ``t`` (N,) read from the paths."""
    if x.dtype != np.uint8 or x.ndim != 3:
        raise ValueError(f"{x_path}: expected uint8 images of shape (N, H, W), "
                         f"got {x.dtype} {x.shape}")
    if t.dtype != np.uint8 or t.ndim != 1:
        raise ValueError(f"{t_path}: expected uint8 labels of shape (N,), got {t.dtype} {t.shape}")
    if len(x) != len(t):
        raise ValueError(f"{x_path} holds {len(x)} images but {t_path} holds {len(t)} labels")


def _format(x, t, normalize, flatten, one_hot_label, dtype, scale, n_classes):
    """Apply the book's options to uint8 images ``x`` (N, H, W) and uint8 labels ``t`` (N,)."""
    if normalize:
        x = x.astype(dtype)
        x /= scale
    x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *x.shape[1:])
    if one_hot_label:
        onehot = np.zeros((len(t), n_classes), dtype=dtype)
        onehot[np.arange(len(t)), t] = 1
        t = onehot
    return x, t


def _assemble(pairs, normalize, flatten, one_hot_label, dtype, n_classes=None):
    """The book's return value from four (path, array) pairs in MNIST_FILES order."""
    (x_path, x), (t_path, t), (x_test_path, x_test), (t_test_path, t_test) = pairs
    _check_split(x_path, x, t_path, t)
    _check_split(x_test_path, x_test, t_test_path, t_test)
    if x.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"{x_test_path}: images are {x_test.shape[1:]}, but those of "
                         f"{x_path} are {x.shape[1:]}")
    if n_classes is None:
        n_classes = int(max(t.max(initial=0), t_test.max(initial=0))) + 1
    opts = (normalize, flatten, one_hot_label, dtype, 255.0, n_classes)
    return _format(x, t, *opts), _format(x_test, t_test, *opts)


# ----------------------------------------------------------------------------- download
class _Transient(Exception):
    """A failure worth retrying on the same mirror (timeout, reset, 5xx, short body)."""


class _MirrorFailed(Exception):
    """A failure that moves on to the next mirror (4xx, bad payload, retries exhausted)."""


def _fetch(url, fileobj, desc, progress):
    """Stream ``url`` into ``fileobj`` with a progress bar; network errors become _Transient."""
    from tqdm import tqdm   # imported on first download only

    request = urllib.request.Request(url, headers={"User-Agent": f"cnn_core/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT)
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500:   # permanent: retrying cannot help
            raise _MirrorFailed(f"HTTP {exc.code} {exc.reason}") from None
        raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:   # URLError, timeouts, resets
        raise _Transient(f"{type(exc).__name__}: {exc}") from None
    with response, tqdm(total=response.length, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=desc, disable=not progress) as bar:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:   # IncompleteRead, timeout
                raise _Transient(f"{type(exc).__name__}: {exc}") from None
            if not chunk:
                break
            fileobj.write(chunk)   # local write errors are not the mirror's fault: propagate
            if fileobj.tell() > _MAX_BYTES:
                raise _MirrorFailed(f"served more than {_MAX_BYTES} bytes")
            bar.update(len(chunk))


def _fetch_verified(url, tmp, name, sha256, progress):
    """Fetch ``url`` into file ``tmp`` (retrying transient errors), fsync, verify the payload.

    Returns ``(gzipped, payload)``; raises _MirrorFailed if this mirror cannot deliver.
    """
    for attempt in range(_RETRIES + 1):
        try:
            with open(tmp, "wb") as f:   # closed before any rename (required on Windows)
                _fetch(url, f, name, progress)
                f.flush()
                os.fsync(f.fileno())
            break
        except _Transient as exc:
            if attempt == _RETRIES:
                raise _MirrorFailed(f"{exc} (after {attempt + 1} attempts)") from None
            time.sleep(_BACKOFF * 2 ** attempt)
    with open(tmp, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"   # a mirror may also serve the raw IDX file
    try:
        payload = _read_payload(tmp, gzipped, limit=_MAX_BYTES)
    except ValueError:
        raise _MirrorFailed("served corrupted or truncated gzip data") from None
    if len(payload) > _MAX_BYTES:
        raise _MirrorFailed(f"served a payload of more than {_MAX_BYTES} bytes")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != sha256:
        raise _MirrorFailed(f"served a payload with SHA-256 {digest}, expected {sha256}")
    return gzipped, payload


def _download(name, directory, mirrors, sha256, progress):
    """Download ``name`` into ``directory`` from the first good mirror; return (path, payload).

    The body goes to a temp file in ``directory`` that is renamed into place (``os.replace``)
    only once its payload hash is verified, and is removed on any failure: the cache never
    holds a partial or unverified file, even if several processes download at once.
    """
    errors = []
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    os.close(fd)
    try:
        for base in mirrors:
            url = base.rstrip("/") + f"/{name}.gz"
            try:
                gzipped, payload = _fetch_verified(url, tmp, name, sha256, progress)
            except _MirrorFailed as exc:
                errors.append(f"{url}: {exc}")
                continue
            final = directory / (f"{name}.gz" if gzipped else name)
            os.replace(tmp, final)
            with contextlib.suppress(OSError):   # make the rename durable (POSIX only)
                fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return final, payload
    finally:
        with contextlib.suppress(FileNotFoundError):   # gone after a successful os.replace
            os.unlink(tmp)
    raise DatasetNotFoundError(_not_found_message(directory, [name], errors or ["no mirrors"]))


def _not_found_message(directory, missing, errors=()):
    files = ", ".join(f"{name}.gz" for name in MNIST_FILES)
    tried = "".join(f"\n  {e}" for e in errors)
    return (f"MNIST: {', '.join(missing)} not found in {directory} and could not be downloaded"
            + (f"; tried:{tried}\n" if errors else " (download=False). ")
            + f"Put the four files {files} (gzip-compressed or not) in {directory}, "
            "or pass data_dir= or set $CNN_CORE_DATA to a directory holding them "
            "($CNN_CORE_MNIST_MIRRORS, comma-separated base URLs, overrides the mirrors).")


# ----------------------------------------------------------------------------- loaders
def mnist_dir(data_dir=None):
    """The MNIST directory: ``data_dir``, else ``$CNN_CORE_DATA``, else a per-user cache.

    The cache is ``%LOCALAPPDATA%\\cnn_core\\mnist`` on Windows and
    ``$XDG_CACHE_HOME/cnn_core/mnist`` (default ``~/.cache/cnn_core/mnist``) elsewhere.
    ``data_dir`` and ``$CNN_CORE_DATA`` name the directory holding the four files itself.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("CNN_CORE_DATA"):
        return Path(os.environ["CNN_CORE_DATA"]).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        root = Path(os.environ["LOCALAPPDATA"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "cnn_core" / "mnist"


def load_mnist(normalize=True, flatten=True, one_hot_label=False, *, dtype=np.float32,
               data_dir=None, download=True, mirrors=None, progress=True):
    """MNIST as in the book: ``(x_train, t_train), (x_test, t_test)``, 60,000 + 10,000 digits.

    x is ``(N, 784)`` with ``flatten`` else ``(N, 1, 28, 28)``: pixel/255 in ``dtype`` with
    ``normalize``, else uint8 0..255 (as the book).  t is uint8 0..9 (as the book), or
    ``(N, 10)`` one-hot in ``dtype`` with ``one_hot_label``.

    The files (``MNIST_FILES``, each ``.gz`` or uncompressed) are looked up in
    :func:`mnist_dir` ``(data_dir)``.  Missing ones are downloaded (``download=True``) from
    ``mirrors`` (base URLs; default ``$CNN_CORE_MNIST_MIRRORS`` or ``MNIST_MIRRORS``), with a
    tqdm bar unless ``progress=False``.  Every file, local or downloaded, must match the
    canonical SHA-256 of its decompressed payload: a bad local file raises ``ValueError``
    naming it (it is not overwritten); a bad download is discarded and the next mirror tried.
    Raises :class:`DatasetNotFoundError` (an ``OSError``) if files are missing and cannot be
    downloaded.
    """
    dtype = check_dtype(dtype)
    directory = mnist_dir(data_dir)
    pairs = {name: (path, read_idx(path, sha256=MNIST_SHA256[name]))
             for name in MNIST_FILES if (path := _find(directory, name)) is not None}
    missing = [name for name in MNIST_FILES if name not in pairs]
    if missing and not download:
        raise DatasetNotFoundError(_not_found_message(directory, missing))
    if missing:
        if mirrors is None:
            env = os.environ.get("CNN_CORE_MNIST_MIRRORS", "")
            mirrors = [m.strip() for m in env.split(",") if m.strip()] or MNIST_MIRRORS
        mirrors = [mirrors] if isinstance(mirrors, str) else list(mirrors)
        directory.mkdir(parents=True, exist_ok=True)
        for name in missing:
            path, payload = _download(name, directory, mirrors, MNIST_SHA256[name], progress)
            pairs[name] = (path, _parse_idx(payload, path))
    return _assemble([pairs[name] for name in MNIST_FILES],
                     normalize, flatten, one_hot_label, dtype, n_classes=10)


def load_idx(directory, normalize=True, flatten=True, one_hot_label=False, *, dtype=np.float32):
    """Any dataset stored as MNIST's four IDX files (e.g. Fashion-MNIST), same return value.

    ``directory`` holds ``MNIST_FILES`` (each ``.gz`` or not): uint8 images ``(N, H, W)`` and
    uint8 labels ``(N,)``.  Shapes come from the headers; the class count for one-hot is the
    largest label + 1.  No checksum is known, but every file is structurally validated and
    images/labels counts must agree (``ValueError`` naming the file otherwise).
    """
    dtype = check_dtype(dtype)
    directory = Path(directory).expanduser()
    paths = [_find(directory, name) for name in MNIST_FILES]
    if None in paths:
        missing = ", ".join(n for n, p in zip(MNIST_FILES, paths) if p is None)
        raise DatasetNotFoundError(f"{directory} lacks {missing} (.gz or uncompressed); an IDX "
                                   f"dataset needs the four files {', '.join(MNIST_FILES)}")
    pairs = [(path, read_idx(path)) for path in paths]
    return _assemble(pairs, normalize, flatten, one_hot_label, dtype)


def load_digits(normalize=True, flatten=True, one_hot_label=False, *, dtype=np.float32,
                test_ratio=0.2, seed=0):
    """The bundled 1,797 8x8 UCI digits, split at random (``seed``) into train and test.

    x is ``(N, 64)`` with ``flatten`` else ``(N, 1, 8, 8)``: pixel/16 in ``dtype`` with
    ``normalize``, else uint8 0..16.  t is uint8 0..9, or ``(N, 10)`` one-hot in ``dtype``.
    ``round(1797 * test_ratio)`` samples go to the test set; the split depends only on
    ``seed`` and ``test_ratio``.  Works offline (E. Alpaydin, C. Kaynak, 1998; CC BY 4.0).
    """
    dtype = check_dtype(dtype)
    if not 0 < test_ratio < 1:
        raise ValueError(f"test_ratio must be in (0, 1), got {test_ratio!r}")
    with resources.files("cnn_core").joinpath("data", "digits.csv.gz").open("rb") as raw:
        with gzip.open(raw, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.uint8, ndmin=2)
    x, t = table[:, :-1].reshape(-1, 8, 8), table[:, -1].copy()
    n_test = round(len(t) * test_ratio)
    if not 0 < n_test < len(t):
        raise ValueError(f"test_ratio={test_ratio!r} leaves an empty train or test set")
    order = np.random.default_rng(seed).permutation(len(t))
    test, train = order[:n_test], order[n_test:]
    opts = (normalize, flatten, one_hot_label, dtype, 16.0, 10)
    return _format(x[train], t[train], *opts), _format(x[test], t[test], *opts)
