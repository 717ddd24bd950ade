"""Tests of cnn_core.datasets: IDX parsing, checksums, MNIST loading and download, digits.

Real MNIST comes from the shared data directory beside the repository (``X/main`` and
``X/shared``); it is required, so its absence fails the tests instead of skipping them.
Downloads only ever go to an HTTP server on 127.0.0.1 started here, never to real mirrors.
"""
import functools
import gzip
import http.server
import re
import shutil
import socket
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from cnn_core import datasets
from cnn_core.datasets import (MNIST_FILES, MNIST_SHA256, DatasetNotFoundError, load_digits,
                               load_idx, load_mnist, mnist_dir, read_idx)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_SRC = SHARED_DATA / "mnist"
TRAIN_X, TRAIN_T, TEST_X, TEST_T = MNIST_FILES
# Tests reading ../shared/data; skipped by rule only where it is absent by design (wheel tests,
# CNN_CORE_SKIP_SHARED_DATA=1, tests/_markers.py); anywhere else its absence fails them.
needs_data = pytest.mark.needs_data


@pytest.fixture(scope="module")
def src():
    """The directory of the real MNIST .gz files (fails loudly when missing)."""
    missing = [n for n in MNIST_FILES if not (MNIST_SRC / f"{n}.gz").is_file()]
    if missing:
        pytest.fail(f"shared MNIST data missing from {MNIST_SRC}: {missing}; the tests expect "
                    "the repository at X/main with the data at X/shared/data/mnist")
    return MNIST_SRC


@pytest.fixture(scope="module")
def mnist(src):
    """The real MNIST, loaded once per module with the book's defaults."""
    return load_mnist(data_dir=src, download=False)


def payload(src, name):
    return gzip.decompress((src / f"{name}.gz").read_bytes())


def idx_bytes(arr):
    """``arr`` (uint8) as an IDX payload."""
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def populate(directory, src, names):
    """Copy the named real .gz files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / f"{name}.gz", directory / f"{name}.gz")


# ----------------------------------------------------------------------------- IDX parsing
@needs_data
@pytest.mark.parametrize("name", MNIST_FILES)
def test_real_files_match_canonical_checksums(src, name):
    arr = read_idx(src / f"{name}.gz", sha256=MNIST_SHA256[name])
    n = 60000 if name.startswith("train") else 10000
    assert arr.shape == ((n, 28, 28) if "images" in name else (n,))
    assert arr.dtype == np.uint8 and arr.flags.writeable


@needs_data
def test_checksum_mismatch_names_the_file(src):
    path = src / f"{TEST_T}.gz"
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*SHA-256"):
        read_idx(path, sha256=MNIST_SHA256[TEST_X])


def test_read_idx_other_types_are_native_endian(tmp_path):
    values = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    path = tmp_path / "ints"
    path.write_bytes(b"\0\0\x0c\x02" + struct.pack(">2I", 2, 3) + values.tobytes())
    arr = read_idx(path)
    assert arr.dtype == np.int32 and arr.dtype.isnative
    np.testing.assert_array_equal(arr, values)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize("data, gz, message", [
    (b"", False, "not an IDX file"),
    (b"\x08\x03" + GOOD[2:], False, "bad magic"),
    (GOOD[:2] + b"\x07" + GOOD[3:], False, "unknown IDX data type code 0x07"),
    (b"\0\0\x08\0", False, "has none"),
    (GOOD[:6], False, "header .* truncated"),
    (GOOD[:-1], False, "truncated"),
    (GOOD + b"\0", False, "trailing bytes"),
    (gzip.compress(GOOD)[:-12], True, "gzip"),
    (GOOD, True, "gzip"),   # named .gz but not gzip-compressed
])
def test_malformed_idx_raises_naming_the_file(tmp_path, data, gz, message):
    path = tmp_path / ("bad-idx.gz" if gz else "bad-idx")
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- real MNIST
@needs_data
def test_load_mnist_shapes_dtypes_ranges(mnist):
    (x_train, t_train), (x_test, t_test) = mnist
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert t_train.shape == (60000,) and t_test.shape == (10000,)
    assert x_train.dtype == x_test.dtype == np.float32
    assert t_train.dtype == t_test.dtype == np.uint8
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert set(np.unique(t_train)) == set(range(10)) == set(np.unique(t_test))
    assert (t_train[0], t_test[0]) == (5, 7)   # the well-known first labels


@needs_data
def test_load_mnist_options(src, mnist):
    (x_raw, t_hot), (x_raw_test, _) = load_mnist(normalize=False, flatten=False,
                                                 one_hot_label=True, data_dir=src, download=False)
    assert x_raw.shape == (60000, 1, 28, 28) and x_raw.dtype == np.uint8
    assert x_raw_test.shape == (10000, 1, 28, 28)
    assert t_hot.shape == (60000, 10) and t_hot.dtype == np.float32
    assert np.array_equal(t_hot.argmax(axis=1), mnist[0][1]) and t_hot.sum() == 60000
    # plain np.array_equal: numpy.testing's helpers take seconds on 47M elements
    assert np.array_equal(x_raw.reshape(60000, -1) / np.float32(255), mnist[0][0])
    (x64, _), _ = load_mnist(dtype=np.float64, data_dir=src, download=False)
    assert x64.dtype == np.float64
    assert np.array_equal(x64.astype(np.float32), mnist[0][0])   # both correctly rounded


@needs_data
def test_uncompressed_files_load(tmp_path, src, mnist):
    populate(tmp_path, src, [TRAIN_X, TRAIN_T])
    for name in (TEST_X, TEST_T):
        (tmp_path / name).write_bytes(payload(src, name))
    (_, _), (x_test, t_test) = load_mnist(data_dir=tmp_path, download=False)
    assert np.array_equal(x_test, mnist[1][0]) and np.array_equal(t_test, mnist[1][1])


def flip_label(src):
    data = bytearray(payload(src, TEST_T))
    data[-1] = (data[-1] + 1) % 10   # still a structurally valid IDX file
    return bytes(data)


@needs_data
@pytest.mark.parametrize("make_bad, filename", [
    (lambda src: (src / f"{TEST_T}.gz").read_bytes()[:2000], f"{TEST_T}.gz"),   # truncated
    (lambda src: gzip.compress(flip_label(src)), f"{TEST_T}.gz"),               # wrong payload
    (lambda src: b"<html>not found</html>", f"{TEST_T}.gz"),                     # not gzip
    (lambda src: payload(src, TEST_T)[:-5], TEST_T),                             # raw, truncated
])
def test_bad_local_file_raises_naming_it_and_is_kept(tmp_path, src, make_bad, filename):
    populate(tmp_path, src, [TRAIN_X, TRAIN_T, TEST_X])
    bad = tmp_path / filename
    bad.write_bytes(make_bad(src))
    before = bad.read_bytes()
    with pytest.raises(ValueError) as info:
        load_mnist(data_dir=tmp_path, mirrors=["http://127.0.0.1:9/"], progress=False)
    assert str(bad) in str(info.value)
    assert bad.read_bytes() == before   # a user's file is never overwritten


# ----------------------------------------------------------------------------- downloads
class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; records requests; answers 503 once for paths in ``fail_once``."""

    log = []
    fail_once = set()
    timeout = 10   # bounded socket operations

    def do_GET(self):
        type(self).log.append(self.path)
        if self.path in self.fail_once:
            self.fail_once.discard(self.path)
            self.send_error(503)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory, src):
    """http://127.0.0.1:PORT/ with /good/ (real files), /bad/ (broken or missing), /empty/."""
    root = tmp_path_factory.mktemp("mirrors")
    populate(root / "good", src, MNIST_FILES)
    (root / "empty").mkdir()
    bad = root / "bad"
    bad.mkdir()   # no train-labels: a 404
    (bad / f"{TRAIN_X}.gz").write_bytes(b"<html>captive portal</html>")
    flipped = bytearray(payload(src, TEST_X))
    flipped[1000:1010] = bytes(255 - b for b in flipped[1000:1010])
    (bad / f"{TEST_X}.gz").write_bytes(gzip.compress(bytes(flipped), compresslevel=1))
    (bad / f"{TEST_T}.gz").write_bytes((src / f"{TEST_T}.gz").read_bytes()[:-100])
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def net(monkeypatch):
    """Short timeouts and no backoff; no proxy for 127.0.0.1; a fresh request log."""
    monkeypatch.setattr(datasets, "_TIMEOUT", 2.0)
    monkeypatch.setattr(datasets, "_BACKOFF", 0.0)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("CNN_CORE_MNIST_MIRRORS", raising=False)
    _Handler.log.clear()
    _Handler.fail_once.clear()
    return _Handler


@needs_data
def test_download_falls_through_bad_mirror(tmp_path, server, net, mnist):
    cache = tmp_path / "cache" / "mnist"   # created on demand
    (x_train, t_train), (x_test, t_test) = load_mnist(
        data_dir=cache, mirrors=[f"{server}/bad/", f"{server}/good"], progress=False)
    for got, want in zip((x_train, t_train, x_test, t_test), (*mnist[0], *mnist[1])):
        assert np.array_equal(got, want)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)
    for name in MNIST_FILES:   # only verified files were cached, no temp files left
        read_idx(cache / f"{name}.gz", sha256=MNIST_SHA256[name])
        assert net.log.index(f"/bad/{name}.gz") < net.log.index(f"/good/{name}.gz")


@needs_data
def test_download_retries_transient_errors_mirrors_from_env(tmp_path, server, net, src, capsys,
                                                            monkeypatch):
    populate(tmp_path, src, [TRAIN_X, TRAIN_T, TEST_X])
    monkeypatch.setenv("CNN_CORE_MNIST_MIRRORS", f" {server}/good/ ,")
    net.fail_once.add(f"/good/{TEST_T}.gz")
    (_, _), (_, t_test) = load_mnist(data_dir=tmp_path, progress=True)
    assert t_test.shape == (10000,)
    assert net.log == [f"/good/{TEST_T}.gz"] * 2   # a 503, then success on the same mirror
    assert TEST_T in capsys.readouterr().err       # the tqdm bar
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)


@needs_data
def test_mirrors_argument_overrides_env(tmp_path, server, net, src, monkeypatch):
    populate(tmp_path, src, [TRAIN_X, TRAIN_T, TEST_X])
    monkeypatch.setenv("CNN_CORE_MNIST_MIRRORS", f"{server}/empty/")
    load_mnist(data_dir=tmp_path, mirrors=[f"{server}/good/"], progress=False)
    assert net.log == [f"/good/{TEST_T}.gz"]


@needs_data
def test_all_mirrors_failing_raises_offline_error(tmp_path, server, net, monkeypatch):
    monkeypatch.setattr(datasets, "_TIMEOUT", 0.3)
    monkeypatch.setattr(datasets, "_RETRIES", 1)
    with socket.socket() as closed, socket.socket() as silent:
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]
        closed.close()                      # connection refused
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)                    # accepts the connection, never answers: a timeout
        mirrors = [f"{server}/empty/", f"http://127.0.0.1:{refused}/",
                   f"http://127.0.0.1:{silent.getsockname()[1]}/"]
        cache = tmp_path / "cache"
        with pytest.raises(DatasetNotFoundError) as info:
            load_mnist(data_dir=cache, mirrors=mirrors, progress=False)
    message = str(info.value)
    assert isinstance(info.value, OSError)
    for name in MNIST_FILES:
        assert name in message
    assert str(cache) in message and "CNN_CORE_DATA" in message and "HTTP 404" in message
    assert list(cache.iterdir()) == []      # no temp file left behind


@needs_data
@pytest.mark.parametrize("limit, reason", [(1000, "served more than 1000 bytes"),
                                           (6000, "payload of more than 6000 bytes")])
def test_oversized_downloads_are_refused(tmp_path, server, net, src, monkeypatch, limit, reason):
    populate(tmp_path, src, [TRAIN_X, TRAIN_T, TEST_X])
    monkeypatch.setattr(datasets, "_MAX_BYTES", limit)   # t10k labels: 4.5 kB gz, 10 kB payload
    with pytest.raises(DatasetNotFoundError, match=reason):
        load_mnist(data_dir=tmp_path, mirrors=[f"{server}/good/"], progress=False)
    assert TEST_T not in " ".join(p.name for p in tmp_path.iterdir())


@needs_data
def test_download_false_never_touches_the_network(tmp_path, server, net):
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        load_mnist(data_dir=tmp_path, download=False, mirrors=[f"{server}/good/"])
    assert net.log == [] and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- directories
def test_directory_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_CORE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_dir(tmp_path / "arg") == tmp_path / "arg"
    assert mnist_dir() == tmp_path / "env"
    monkeypatch.delenv("CNN_CORE_DATA")
    assert mnist_dir() == tmp_path / "xdg" / "cnn_core" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(Path, "home", staticmethod(lambda: tmp_path / "home"))
    assert mnist_dir() == tmp_path / "home" / ".cache" / "cnn_core" / "mnist"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert mnist_dir() == tmp_path / "local" / "cnn_core" / "mnist"


def test_env_data_dir_is_used_and_overridden(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_CORE_DATA", str(tmp_path / "from-env"))
    with pytest.raises(DatasetNotFoundError, match="from-env"):
        load_mnist(download=False)
    with pytest.raises(DatasetNotFoundError, match="from-arg"):
        load_mnist(data_dir=tmp_path / "from-arg", download=False)


# ----------------------------------------------------------------------------- load_idx
def write_idx_dataset(directory, n_train=7, n_test=4, shape=(5, 4), n_classes=3):
    """Images .gz and labels uncompressed, in MNIST's layout; returns the arrays by name."""
    rng = np.random.default_rng(0)
    arrays = {
        TRAIN_X: rng.integers(0, 256, size=(n_train, *shape), dtype=np.uint8),
        TRAIN_T: (np.arange(n_train) % n_classes).astype(np.uint8),
        TEST_X: rng.integers(0, 256, size=(n_test, *shape), dtype=np.uint8),
        TEST_T: (np.arange(n_test) % n_classes).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for i, (name, arr) in enumerate(arrays.items()):
        data = idx_bytes(arr)
        if i % 2:
            (directory / name).write_bytes(data)
        else:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
    return arrays


def test_load_idx_synthetic(tmp_path):
    arrays = write_idx_dataset(tmp_path)
    (x, t), (x_test, t_test) = load_idx(tmp_path)
    assert x.shape == (7, 20) and x_test.shape == (4, 20) and x.dtype == np.float32
    np.testing.assert_allclose(x, arrays[TRAIN_X].reshape(7, 20) / 255, rtol=1e-6)
    np.testing.assert_array_equal(t, arrays[TRAIN_T])
    (x, t), (_, t_test) = load_idx(tmp_path, normalize=False, flatten=False, one_hot_label=True,
                                   dtype=np.float64)
    assert x.shape == (7, 1, 5, 4) and x.dtype == np.uint8
    assert t.shape == (7, 3) and t_test.shape == (4, 3) and t.dtype == np.float64
    np.testing.assert_array_equal(t.argmax(axis=1), arrays[TRAIN_T])


def test_load_idx_mismatched_counts_names_both_files(tmp_path):
    write_idx_dataset(tmp_path)
    (tmp_path / TEST_T).write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match=f"{TEST_X}.* 4 images .*{TEST_T}.* 3 labels"):
        load_idx(tmp_path)


def test_load_idx_structural_mismatches(tmp_path):
    write_idx_dataset(tmp_path)
    (tmp_path / f"{TEST_X}.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((4, 4, 5), np.uint8))))
    with pytest.raises(ValueError, match=f"{TEST_X}.*images are"):
        load_idx(tmp_path)
    (tmp_path / TRAIN_T).write_bytes(idx_bytes(np.zeros((7, 1), np.uint8)))
    with pytest.raises(ValueError, match=f"{TRAIN_T}: expected uint8 labels"):
        load_idx(tmp_path)
    (tmp_path / TRAIN_T).unlink()
    with pytest.raises(DatasetNotFoundError, match=TRAIN_T):
        load_idx(tmp_path)


# ----------------------------------------------------------------------------- digits
def test_load_digits_shapes_and_ranges():
    (x, t), (x_test, t_test) = load_digits()
    assert x.shape == (1438, 64) and x_test.shape == (359, 64) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert t.dtype == np.uint8 and set(np.unique(t)) == set(range(10)) == set(np.unique(t_test))
    (x, t), _ = load_digits(normalize=False, flatten=False, one_hot_label=True, dtype=np.float64)
    assert x.shape == (1438, 1, 8, 8) and x.dtype == np.uint8 and x.max() == 16
    assert t.shape == (1438, 10) and t.dtype == np.float64 and t.sum() == 1438


def test_load_digits_split_is_deterministic_and_a_partition():
    (x1, t1), (x1_test, _) = load_digits(normalize=False, seed=3, test_ratio=0.25)
    (x2, t2), (x2_test, _) = load_digits(normalize=False, seed=3, test_ratio=0.25)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(t1, t2)
    assert len(x1_test) == round(1797 * 0.25) and len(x1) + len(x1_test) == 1797
    (x3, _), _ = load_digits(normalize=False, seed=4, test_ratio=0.25)
    assert not np.array_equal(x1, x3)
    (x_all, _), (x_rest, _) = load_digits(normalize=False, test_ratio=0.25, seed=0)
    rows = lambda a: sorted(map(bytes, a))   # noqa: E731
    assert rows(np.concatenate([x1, x1_test])) == rows(np.concatenate([x_all, x_rest]))


@pytest.mark.parametrize("kwargs, error", [
    (dict(test_ratio=0.0), ValueError), (dict(test_ratio=1.0), ValueError),
    (dict(dtype=np.int32), TypeError),
])
def test_load_digits_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        load_digits(**kwargs)
