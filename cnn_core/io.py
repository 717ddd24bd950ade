"""Safe parameter files: the book's pickles (read through an allow-list) and cnn_core's .npz.

**Pickles.**  ``pickle.load`` runs whatever a file says.  :func:`load_pickle_params`
reads the book's parameter files (a ``dict`` of NumPy arrays, pickle protocol
3 or 4, also 5, written under NumPy 1 or 2) with an unpickler whose
``find_class`` knows six NumPy names and refuses every other global with
:class:`UnsafePickleError`, before anything is called.  Even the allowed names
do not reach NumPy directly: they resolve to small stand-ins here that check
their arguments (numeric dtypes only, raw bytes of the right length, the
``__setstate__`` tuples NumPy itself writes) and only then build arrays with
``np.frombuffer``.  This matters because NumPy's own ``dtype.__setstate__``
accepts forged flags, e.g. marking float64 as holding Python objects.  No
``numpy.core`` module is imported, so NumPy 2 emits no deprecation warning for
NumPy-1 files.

**npz.**  :func:`save_npz` writes arrays plus a JSON ``meta`` dict atomically
(temporary file in the same directory, flush, fsync, ``os.replace``) with
``allow_pickle=False``; :func:`load_npz` reads it back with
``np.load(..., allow_pickle=False)``.  The meta dict is stored as UTF-8 JSON
bytes in a uint8 array under the reserved key ``"__meta__"``: no object arrays
anywhere.

Every error names the file.
"""
import json
import math
import os
import pickle
import re
import secrets
import socket
import stat
import time
import zipfile
from collections.abc import Mapping

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["ParameterFileError", "UnsafePickleError", "META_KEY",
           "load_pickle_params", "save_npz", "load_npz"]

META_KEY = "__meta__"
# Parameter arrays hold numbers: bool, signed/unsigned int, float, complex.
_NUMERIC_KINDS = "biufc"
_NUMERIC_DTYPE_SPEC = re.compile(r"[biufc][0-9]{1,2}")


class ParameterFileError(ValueError):
    """A parameter file that cannot be used: corrupt, truncated or of the wrong content."""


class UnsafePickleError(ParameterFileError, pickle.UnpicklingError):
    """A pickle asked for something outside the NumPy-array allow-list; nothing was run."""


# ----------------------------------------------------------------------------- pickle stand-ins
class _NDArrayType:
    """What ``numpy.ndarray`` resolves to: a token only ``_reconstruct`` accepts (not callable)."""

    __slots__ = ()

    def __repr__(self):
        return "<numpy.ndarray token>"


_NDARRAY = _NDArrayType()


class _DtypeSpec:
    """``numpy.dtype(spec, align, copy)`` plus its pickled state, checked, not yet a dtype."""

    __slots__ = ("dtype",)

    def __init__(self, spec, align=False, copy=False):
        # NumPy pickles a dtype as kind + itemsize ('f8', 'b1', 'c16'); nothing else is parsed.
        if not (isinstance(spec, str) and _NUMERIC_DTYPE_SPEC.fullmatch(spec)):
            raise UnsafePickleError(f"refusing dtype {spec!r:.60}: only numeric arrays are allowed")
        try:
            dtype = np.dtype(spec)
        except TypeError:
            raise ParameterFileError(f"unknown dtype {spec!r} in the pickle") from None
        if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject:     # defence in depth
            raise UnsafePickleError(f"refusing dtype {spec!r}: only numeric arrays are allowed")
        self.dtype = dtype

    def __setstate__(self, state):
        # NumPy writes (3, byteorder, None, None, None, -1, -1, 0) for numeric dtypes
        # (version 4 appends metadata=None); accept exactly that shape of state.
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise UnsafePickleError(f"refusing dtype state {state!r:.100}")
        _, byteorder, subarray, names, fields, elsize, alignment, flags = state[:8]
        metadata = state[8] if len(state) == 9 else None
        if (byteorder not in ("<", ">", "=", "|") or subarray is not None or names is not None
                or fields is not None or elsize != -1 or alignment != -1 or metadata is not None
                or flags != self.dtype.flags):
            raise UnsafePickleError(f"refusing dtype state {state!r:.100} for {self.dtype}")
        if byteorder in "<>":
            self.dtype = self.dtype.newbyteorder(byteorder)


def _dtype_of(spec):
    if not isinstance(spec, _DtypeSpec):
        raise UnsafePickleError(f"expected a numpy dtype, got {type(spec).__name__}")
    return spec.dtype


def _shape_of(shape):
    if not isinstance(shape, tuple) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ParameterFileError(f"bad array shape {shape!r:.100} in the pickle")
    return shape


def _array_from_bytes(data, dtype, shape, order):
    """An owned, writable array of ``shape`` from raw ``data`` (which must fit exactly)."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"refusing array data of type {type(data).__name__} "
                                f"(expected bytes)")
    size = math.prod(shape)
    if len(data) != size * dtype.itemsize:
        raise ParameterFileError(f"array data has {len(data)} bytes, shape {shape} of {dtype} "
                                 f"needs {size * dtype.itemsize}")
    flat = np.frombuffer(data, dtype=dtype, count=size)
    return np.array(flat.reshape(shape, order=order), order=order, copy=True)


class _ArraySpec:
    """What ``_reconstruct(ndarray, ...)`` returns; its ``__setstate__`` builds the array."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        # NumPy writes (1, shape, dtype, is_fortran, rawdata); very old NumPy omitted the 1.
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise UnsafePickleError(f"refusing ndarray state {state!r:.100}")
        shape, dtype, is_fortran, data = state
        if not isinstance(is_fortran, (bool, int)):
            raise UnsafePickleError(f"refusing ndarray state with is_fortran={is_fortran!r:.40}")
        self.array = _array_from_bytes(data, _dtype_of(dtype), _shape_of(shape),
                                       "F" if is_fortran else "C")


def _reconstruct(subtype, shape, typecode):
    """``numpy.core.multiarray._reconstruct``: an empty shell filled by ``__setstate__``."""
    if subtype is not _NDARRAY:
        raise UnsafePickleError(f"refusing _reconstruct of {subtype!r:.60} (only numpy.ndarray)")
    return _ArraySpec()


def _scalar(dtype, data):
    """``numpy.core.multiarray.scalar``: a NumPy scalar from its raw bytes."""
    dtype = _dtype_of(dtype)
    return _array_from_bytes(data, dtype, (), "C")[()]


def _frombuffer(buf, dtype, shape, order, axis_order=None):
    """``numpy.core.numeric._frombuffer`` (pickle protocol 5, in-band buffers)."""
    dtype, shape = _dtype_of(dtype), _shape_of(shape)
    if order not in ("C", "F", "K"):
        raise UnsafePickleError(f"refusing _frombuffer order {order!r:.20}")
    if order == "K" and axis_order is not None:
        if sorted(axis_order) != list(range(len(shape))):
            raise ParameterFileError(f"bad axis_order {axis_order!r:.60} for shape {shape}")
        return _array_from_bytes(buf, dtype, shape, "C").transpose(axis_order)
    return _array_from_bytes(buf, dtype, shape, "C" if order == "K" else order)


# The NumPy names a parameter pickle may use, NumPy-1 (numpy.core) and NumPy-2 (numpy._core)
# spellings alike, mapped to the stand-ins above.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeSpec,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild NumPy arrays (and builtin containers)."""

    def find_class(self, module, name):
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            hint = (" (pickle protocols 0-2 store bytes that way; re-save with protocol >= 3)"
                    if (module, name) == ("_codecs", "encode") else "")
            raise UnsafePickleError(
                f"refusing to load global '{module!s:.80}.{name!s:.80}': a parameter file may "
                f"only hold NumPy arrays{hint}")
        return found

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing persistent id {pid!r:.60}")


def _describe(obj):
    """The type of an unpickled object, as the file's author would name it."""
    if isinstance(obj, (_ArraySpec, np.ndarray)):
        return "NumPy array"
    if isinstance(obj, _DtypeSpec):
        return "NumPy dtype"
    return type(obj).__name__


def load_pickle_params(path):
    """The ``dict`` of arrays in one of the book's parameter pickles, read safely.

    Only NumPy array reconstruction is allowed; any other global (``os.system``,
    ``builtins.eval``, ``numpy.load``, ...) raises :class:`UnsafePickleError`
    before it could be called.  The file must hold a dict mapping str to numeric
    arrays (NumPy scalars become 0-d arrays); arrays are writable and own their
    memory.  Errors are :class:`ParameterFileError` (a ``ValueError``) naming the file.
    """
    fname = os.fspath(path)
    with open(fname, "rb") as f:
        try:
            obj = _RestrictedUnpickler(f).load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{fname}: {exc}") from None
        except ParameterFileError as exc:
            raise ParameterFileError(f"{fname}: {exc}") from None
        except Exception as exc:        # truncated, corrupt, not a pickle at all
            raise ParameterFileError(f"{fname}: not a readable parameter pickle "
                                     f"({type(exc).__name__}: {exc})") from exc
    if type(obj) is not dict:
        raise ParameterFileError(f"{fname}: expected a dict of arrays, the pickle holds a "
                                 f"{_describe(obj)}")
    params = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ParameterFileError(f"{fname}: parameter names must be str, got {key!r:.60}")
        if isinstance(value, _ArraySpec):
            value = value.array
            if value is None:
                raise ParameterFileError(f"{fname}: array {key!r} was never filled in")
        elif isinstance(value, np.generic):
            value = np.array(value)
        elif not isinstance(value, np.ndarray):
            raise ParameterFileError(f"{fname}: {key!r} holds a {_describe(value)}, "
                                     f"expected a NumPy array")
        if value.dtype.kind not in _NUMERIC_KINDS:     # defence in depth: cannot happen
            raise UnsafePickleError(f"{fname}: {key!r} has non-numeric dtype {value.dtype}")
        params[key] = value
    return params


# ----------------------------------------------------------------------------- npz
def _check_json_keys(obj, where):
    """JSON would silently turn non-str dict keys into strings; refuse them instead."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} keys must be str (JSON), got {k!r:.60}")
            _check_json_keys(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_json_keys(v, f"{where}[{i}]")


def _encode_meta(meta, fname):
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise TypeError(f"save_npz({fname!r}): meta must be a dict, got {type(meta).__name__}")
    _check_json_keys(meta, "meta")
    try:
        text = json.dumps(dict(meta), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"save_npz({fname!r}): meta must be JSON-serializable: {exc}") from None
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _check_arrays(arrays, fname):
    if not isinstance(arrays, Mapping):
        raise TypeError(f"save_npz({fname!r}): arrays must be a dict of arrays, got "
                        f"{type(arrays).__name__}")
    items = []
    for key, value in arrays.items():
        if not isinstance(key, str) or not key or "\x00" in key:
            raise TypeError(f"save_npz({fname!r}): array names must be non-empty str, got {key!r}")
        if key == META_KEY:
            raise ValueError(f"save_npz({fname!r}): the array name {META_KEY!r} is reserved "
                             f"for meta")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"save_npz({fname!r}): arrays[{key!r}] has dtype {arr.dtype}; object "
                            f"arrays cannot be saved without pickle")
        items.append((key, arr))
    return items


def _temp_prefix(base):
    """Temporary files beside ``base`` are ``.{base}.{host}.{pid}.{random}.tmp``: the host
    and pid let a later save recognise the leftovers of a killed writer (see
    :func:`_sweep_stale_temps`)."""
    host = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in socket.gethostname())
    return f".{base}.{host or 'host'}."


def _open_temp_beside(fname):
    """(fd, temp path) for a new file next to ``fname``; O_EXCL, and mode 0o666 minus the umask."""
    directory = os.path.dirname(os.path.abspath(fname))
    prefix = _temp_prefix(os.path.basename(fname))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f"{prefix}{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {fname}")


#: a leftover must be at least this old (seconds) before it is removed: long enough that a
#: live writer the pid probe cannot see (another PID namespace with the same host name, e.g.
#: containers on a shared volume) has long finished
STALE_TEMP_AGE = 3600.0


def _sweep_stale_temps(fname):
    """Remove temporary files of ``fname`` left by writers on this host that were killed
    (SIGKILL, power loss) before they could clean up: same host name, a pid that no longer
    exists, and older than :data:`STALE_TEMP_AGE` (an hour).  POSIX only (on Windows ``os.kill``
    cannot probe a pid); anything uncertain is left alone."""
    if os.name != "posix":
        return
    directory = os.path.dirname(os.path.abspath(fname))
    prefix = _temp_prefix(os.path.basename(fname))
    try:
        names = os.listdir(directory)
    except OSError:
        return
    now = time.time()
    # exactly what _open_temp_beside writes (not a prefix: "model.npz" must not match the
    # temporaries of a file named "model.npz.<host>.<digits>")
    shape = re.compile(re.escape(prefix) + r"([0-9]{1,10})\.[0-9a-f]{12}\.tmp")
    for name in names:
        match = shape.fullmatch(name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        pid_text = match.group(1)
        try:
            os.kill(int(pid_text), 0)
            continue                      # the writer is alive (or the pid was reused)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue                      # alive under another user, or not a real pid
        path = os.path.join(directory, name)
        try:
            if now - os.lstat(path).st_mtime >= STALE_TEMP_AGE:
                os.unlink(path)
        except OSError:
            pass


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); harmless to skip where unsupported."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_npz(path, arrays, meta=None, *, compress=False):
    """Write ``arrays`` (a dict of str -> array) and the JSON dict ``meta`` to ``path``, atomically.

    The file is an ordinary ``.npz`` (``np.load`` reads it) written exactly at
    ``path`` (no suffix added), with ``allow_pickle=False``: object arrays are
    refused.  It is first written to a temporary file in the same directory,
    flushed and fsynced, then renamed over ``path``; on any error the temporary
    file is removed and an existing ``path`` is left as it was.
    ``compress=True`` deflates the members, as ``np.savez_compressed``.
    """
    fname = os.fspath(path)
    items = _check_arrays(arrays, fname)
    items.append((META_KEY, _encode_meta(meta, fname)))
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED

    def write(f):
        with zipfile.ZipFile(f, "w", compression=compression, allowZip64=True) as zf:
            for key, arr in items:
                with zf.open(key + ".npy", "w", force_zip64=True) as member:
                    npy_format.write_array(member, arr, allow_pickle=False)

    atomic_write(fname, write)


def atomic_write(path, write):
    """Call ``write(f)`` on a binary file that replaces ``path`` only once complete.

    The data goes to a temporary file beside ``path``, is flushed and fsynced, then
    renamed over it (keeping an existing file's permissions); on any error, or an
    interrupt, the temporary file is removed and an existing ``path`` is untouched.  A
    successful write also removes temporary files of ``path`` that killed writers left.
    """
    fname = os.fspath(path)
    mode = None
    try:
        mode = stat.S_IMODE(os.stat(fname).st_mode)      # keep an existing file's permissions
    except OSError:
        pass
    fd, tmp = _open_temp_beside(fname)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, fname)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(fname)))
    _sweep_stale_temps(fname)


def _decode_meta(value, fname):
    if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 1:
        raw = value.tobytes()
    elif isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.ndim == 0:
        raw = str(value[()]).encode("utf-8")
    else:
        raise ParameterFileError(f"{fname}: {META_KEY!r} must be UTF-8 JSON bytes (uint8), got "
                                 f"dtype {getattr(value, 'dtype', type(value).__name__)}")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParameterFileError(f"{fname}: {META_KEY!r} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ParameterFileError(f"{fname}: {META_KEY!r} must be a JSON object, got "
                                 f"{type(meta).__name__}")
    return meta


def _read_npz_members(fileobj, fname):
    """Every member of an open .npz as a dict of arrays (pickle disabled)."""
    arrays = {}
    try:
        with np.load(fileobj, allow_pickle=False) as npz:
            for name in npz.files:
                if name in arrays:
                    raise ParameterFileError(f"{fname}: duplicate entry {name!r}")
                try:
                    value = npz[name]
                except ValueError as exc:       # e.g. object arrays, which need pickle
                    raise ParameterFileError(
                        f"{fname}: cannot load entry {name!r}: {exc}") from None
                if not isinstance(value, np.ndarray):
                    raise ParameterFileError(f"{fname}: entry {name!r} is not a .npy array")
                arrays[name] = value
    except ParameterFileError:
        raise
    except Exception as exc:                    # BadZipFile, EOFError, CRC errors, bad headers
        raise ParameterFileError(f"{fname}: not a readable .npz file "
                                 f"({type(exc).__name__}: {exc})") from exc
    return arrays


def load_npz(path):
    """``(arrays, meta)`` from a file written by :func:`save_npz`, read without pickle.

    Raises :class:`ParameterFileError` naming the file if it is not a zip archive,
    is truncated or corrupt, holds object arrays or non-array members, or lacks
    a valid ``__meta__`` JSON object.
    """
    fname = os.fspath(path)
    # Our own handle, closed on every path (np.load leaks its handle when a zip is corrupt).
    with open(fname, "rb") as f:
        head = f.read(4)
        if not head.startswith(b"PK"):
            raise ParameterFileError(f"{fname}: not an .npz file (a zip archive starts with "
                                     f"b'PK', this file starts with {head!r})")
        f.seek(0)
        arrays = _read_npz_members(f, fname)
    if META_KEY not in arrays:
        raise ParameterFileError(f"{fname}: no {META_KEY!r} entry (not written by "
                                 f"cnn_core.io.save_npz?)")
    meta = _decode_meta(arrays.pop(META_KEY), fname)
    return arrays, meta
