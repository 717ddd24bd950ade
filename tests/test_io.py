"""cnn_core.io: the book's pickles read safely, and atomic, pickle-free .npz files."""
import os
import pickle
import shlex
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from cnn_core.io import (META_KEY, ParameterFileError, UnsafePickleError, load_npz,
                         load_pickle_params, save_npz)

# In CI the repository is cloned to X/main with the shared data in X/shared.
DLFS = Path(__file__).resolve().parents[2] / "shared" / "data" / "dlfs"

BOOK_FILES = {
    "sample_weight.pkl": (np.float32, {
        "W1": (784, 50), "b1": (50,), "W2": (50, 100), "b2": (100,), "W3": (100, 10), "b3": (10,)}),
    "simple_convnet_params.pkl": (np.float64, {
        "W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,), "W3": (100, 10),
        "b3": (10,)}),
    "deep_convnet_params.pkl": (np.float64, {
        "W1": (16, 1, 3, 3), "W2": (16, 16, 3, 3), "W3": (32, 16, 3, 3), "W4": (32, 32, 3, 3),
        "W5": (64, 32, 3, 3), "W6": (64, 64, 3, 3), "W7": (1024, 50), "W8": (50, 10),
        "b1": (16,), "b2": (16,), "b3": (32,), "b4": (32,), "b5": (64,), "b6": (64,),
        "b7": (50,), "b8": (10,)}),
}
NUMPY_GLOBALS = {"numpy ndarray", "numpy dtype", "numpy.core.multiarray _reconstruct",
                 "numpy._core.multiarray _reconstruct", "numpy.core.multiarray scalar",
                 "numpy._core.multiarray scalar", "numpy.core.numeric _frombuffer",
                 "numpy._core.numeric _frombuffer"}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """The reference reader: NumPy's real functions, but no global outside NUMPY_GLOBALS."""

    def find_class(self, module, name):
        assert f"{module} {name}" in NUMPY_GLOBALS, f"unexpected global {module}.{name}"
        return super().find_class(module, name)


def write(path, data):
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- the book's files
@pytest.mark.needs_data
def test_book_parameter_files_are_present():
    missing = [name for name in BOOK_FILES if not (DLFS / name).is_file()]
    assert not missing, f"shared data missing in {DLFS}: {missing}"


@pytest.mark.needs_data
@pytest.mark.parametrize("name", sorted(BOOK_FILES))
def test_book_pickles_load_with_the_right_keys_shapes_and_dtypes(name):
    dtype, shapes = BOOK_FILES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no numpy.core deprecation warning either
        params = load_pickle_params(DLFS / name)
    assert type(params) is dict
    assert set(params) == set(shapes)
    for key, shape in shapes.items():
        arr = params[key]
        assert type(arr) is np.ndarray
        assert arr.shape == shape, key
        assert arr.dtype == dtype, key
        assert arr.flags.writeable and arr.flags.owndata, key
        assert np.all(np.isfinite(arr)), key


@pytest.mark.needs_data
@pytest.mark.parametrize("name", sorted(BOOK_FILES))
def test_book_pickles_match_numpys_own_unpickling_bit_for_bit(name):
    with warnings.catch_warnings(), open(DLFS / name, "rb") as f:
        warnings.simplefilter("ignore", DeprecationWarning)    # numpy.core under NumPy 2
        reference = NumpyOnlyUnpickler(f).load()
    ours = load_pickle_params(DLFS / name)
    assert list(ours) == list(reference)
    for key in reference:
        assert ours[key].dtype == reference[key].dtype
        assert ours[key].tobytes() == reference[key].tobytes()


# ----------------------------------------------------------------------------- pickles we write
ODD_ARRAYS = {
    "f64": np.linspace(-1, 1, 12).reshape(3, 4),
    "f32_fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
    "big_endian": np.arange(5, dtype=">i4"),
    "bool": np.array([True, False, True]),
    "complex": np.array([1 + 2j, -3j]),
    "uint8": np.arange(250, 256, dtype=np.uint8),
    "zero_d": np.array(2.5),
    "empty": np.zeros((0, 3)),
    "transposed": np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1),
    "nan_inf": np.array([np.nan, -np.inf, -0.0]),
}


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_pickles_of_any_numeric_array_round_trip(tmp_path, protocol):
    data = pickle.dumps(ODD_ARRAYS, protocol=protocol)
    params = load_pickle_params(write(tmp_path / "p.pkl", data))
    for key, expected in ODD_ARRAYS.items():
        assert params[key].dtype == expected.dtype, key
        assert params[key].shape == expected.shape, key
        assert params[key].tobytes() == expected.tobytes(), key
        assert params[key].flags.writeable, key
    assert params["f32_fortran"].flags.f_contiguous


def test_numpy_scalars_become_0d_arrays(tmp_path):
    path = write(tmp_path / "s.pkl", pickle.dumps({"s": np.float32(1.5), "i": np.int64(-3)}, 4))
    params = load_pickle_params(path)
    assert params["s"].shape == () and params["s"].dtype == np.float32 and params["s"] == 1.5
    assert params["i"].dtype == np.int64 and params["i"] == -3


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.0.0",
                    reason="rewrites NumPy 2's numpy._core names: needs NumPy >= 2")
def test_numpy1_module_names_are_understood(tmp_path):
    """A NumPy-2 pickle rewritten with NumPy 1's 'numpy.core' names (what the book's files use)."""
    data = pickle.dumps({"W": np.arange(4.0), "s": np.float64(2.0)}, protocol=3)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != data and b"numpy._core" not in old
    params = load_pickle_params(write(tmp_path / "old.pkl", old))
    assert_array_equal(params["W"], np.arange(4.0)) and params["s"] == 2.0


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_old_protocols_are_refused_with_a_hint(tmp_path, protocol):
    path = write(tmp_path / "old.pkl", pickle.dumps({"W": np.ones(2)}, protocol=protocol))
    with pytest.raises(UnsafePickleError, match="_codecs.encode.*protocol >= 3"):
        load_pickle_params(path)


# ----------------------------------------------------------------------------- hostile pickles
class Payload:
    """Pickles as ``func(*args)``: what an attacker's file calls on plain pickle.load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def hostile_payloads(marker):
    touch = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    return {
        "os.system": Payload(os.system, f"touch {shlex.quote(str(marker))}"),
        "subprocess.call": Payload(subprocess.call, [sys.executable, "-c", touch]),
        "subprocess.Popen": Payload(subprocess.Popen, [sys.executable, "-c", touch]),
        "builtins.eval": Payload(eval, f"exec({touch!r})"),
        "builtins.exec": Payload(exec, touch),
    }


def test_the_hostile_payload_really_runs_under_plain_pickle(tmp_path):
    """Control: so that 'marker absent' below means something."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(hostile_payloads(marker)["builtins.exec"]))
    assert marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("kind", ["os.system", "subprocess.call", "subprocess.Popen",
                                  "builtins.eval", "builtins.exec"])
def test_hostile_pickles_are_refused_and_nothing_runs(tmp_path, kind, protocol):
    marker = tmp_path / "pwned"
    payload = hostile_payloads(marker)[kind]
    for obj in (payload, {"W1": np.ones(3), "b1": payload}, {"W1": [payload]}):
        path = write(tmp_path / "evil.pkl", pickle.dumps(obj, protocol=protocol))
        with pytest.raises(UnsafePickleError, match="refusing to load global") as info:
            load_pickle_params(path)
        assert str(path) in str(info.value)
        assert not marker.exists()
    assert isinstance(info.value, ValueError) and isinstance(info.value, pickle.UnpicklingError)


@pytest.mark.parametrize("module, name", [
    ("posix", "system"), ("nt", "system"), ("os", "system"), ("os", "execv"),
    ("subprocess", "check_output"), ("builtins", "eval"), ("builtins", "getattr"),
    ("builtins", "__import__"), ("__builtin__", "eval"), ("builtins", "open"),
    ("importlib", "import_module"), ("pickle", "loads"), ("_pickle", "loads"),
    ("marshal", "loads"), ("types", "FunctionType"), ("copyreg", "_reconstructor"),
    ("functools", "partial"), ("operator", "attrgetter"), ("collections", "OrderedDict"),
    ("_codecs", "encode"), ("numpy", "load"), ("numpy", "fromfile"), ("numpy", "frompyfunc"),
    ("numpy.lib.npyio", "load"), ("numpy.core.multiarray", "fromfile"),
    ("numpy._core.multiarray", "frombuffer"), ("numpy.testing._private.utils", "runstring"),
    ("numpy", "ndarray.tofile"), ("numpy", "dtype.__new__"), ("numpy.core.multiarray", "ndarray"),
])
def test_any_other_global_is_refused_by_name(tmp_path, module, name):
    # Protocol 0 GLOBAL and protocol 4 STACK_GLOBAL (dotted names allowed there).
    glob0 = b"c" + module.encode() + b"\n" + name.encode() + b"\n."
    enc_m, enc_n = module.encode(), name.encode()
    glob4 = (b"\x80\x04\x8c" + bytes([len(enc_m)]) + enc_m + b"\x8c" + bytes([len(enc_n)])
             + enc_n + b"\x93.")
    for data in (glob0, glob4):
        path = write(tmp_path / "g.pkl", data)
        with pytest.raises(UnsafePickleError, match=f"'{module}.{name}'"):
            load_pickle_params(path)


def test_forged_dtype_flags_are_refused(tmp_path):
    """NumPy's dtype.__setstate__ would accept flags claiming float64 holds objects."""
    reconstruct = np.zeros(1).__reduce__()[0]

    class ForgedDtype:
        def __reduce__(self):
            return np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 0x1D)

    class FakeArray:
        def __reduce__(self):
            return reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), ForgedDtype(), False, b"A" * 8)

    path = write(tmp_path / "forged.pkl", pickle.dumps({"W": FakeArray()}, protocol=4))
    with pytest.raises(UnsafePickleError, match="refusing dtype state"):
        load_pickle_params(path)


@pytest.mark.parametrize("value, match", [
    (np.array([1, "a"], dtype=object), "refusing dtype 'O8'"),
    (np.zeros(2, dtype=[("a", "f8")]), "refusing dtype 'V8'"),
    (np.array(["text"]), "refusing dtype 'U4'"),
])
def test_non_numeric_arrays_are_refused(tmp_path, value, match):
    path = write(tmp_path / "x.pkl", pickle.dumps({"W": value}, protocol=4))
    with pytest.raises(UnsafePickleError, match=match):
        load_pickle_params(path)


@pytest.mark.parametrize("obj, match", [
    ([np.ones(2)], "expected a dict of arrays, the pickle holds a list"),
    (np.ones(2), "expected a dict of arrays, the pickle holds a NumPy array"),
    (np.dtype("f8"), "the pickle holds a NumPy dtype"),
    ({"W": [1.0, 2.0]}, "'W' holds a list, expected a NumPy array"),
    ({"W": 3}, "'W' holds a int"),
    ({"W": "weights"}, "'W' holds a str"),
    ({"W": {"nested": np.ones(1)}}, "'W' holds a dict"),
    ({1: np.ones(2)}, "parameter names must be str, got 1"),
])
def test_pickles_that_are_not_a_dict_of_arrays_are_refused(tmp_path, obj, match):
    path = write(tmp_path / "x.pkl", pickle.dumps(obj, protocol=4))
    with pytest.raises(ParameterFileError, match=match) as info:
        load_pickle_params(path)
    assert str(path) in str(info.value)


def test_corrupt_pickles_give_a_clear_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    good = pickle.dumps({"W": np.arange(100.0)}, protocol=4)
    cases = {
        "random.pkl": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.pkl": b"",
        "truncated.pkl": good[: len(good) // 2],
        "text.pkl": b"this is not a pickle\n",
        "bad_length.pkl": good.replace(np.arange(100.0).tobytes(), np.arange(99.0).tobytes()),
    }
    for name, data in cases.items():
        path = write(tmp_path / name, data)
        with pytest.raises(ParameterFileError) as info:
            load_pickle_params(path)
        assert str(path) in str(info.value), name
    with pytest.raises(FileNotFoundError):
        load_pickle_params(tmp_path / "missing.pkl")


@pytest.mark.needs_data
def test_truncated_book_file_is_refused(tmp_path):
    data = (DLFS / "simple_convnet_params.pkl").read_bytes()
    path = write(tmp_path / "cut.pkl", data[: len(data) * 2 // 3])
    with pytest.raises(ParameterFileError, match="cut.pkl"):
        load_pickle_params(path)


# ----------------------------------------------------------------------------- npz
NPZ_ARRAYS = dict(ODD_ARRAYS, **{
    "0.weight": np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32),
    "m/W1": np.full(3, 1e-300),
    "nan_payload": np.frombuffer(b"\x01\x00\x00\x00\x00\x00\xf8\x7f", dtype=np.float64).copy(),
    "strided": np.arange(10.0)[::3],
    "text": np.array(["α", "beta"]),
})
META = {"format": "cnn_core.params/1", "epoch": 3, "lr": 0.001, "nested": {"layers": [1, 2.5]},
        "note": "ゼロから作る", "flag": None}


@pytest.mark.parametrize("compress", [False, True])
def test_npz_round_trip_is_bit_for_bit(tmp_path, compress):
    path = tmp_path / "params.npz"
    save_npz(path, NPZ_ARRAYS, META, compress=compress)
    arrays, meta = load_npz(path)
    assert meta == META
    assert list(arrays) == list(NPZ_ARRAYS)
    for key, expected in NPZ_ARRAYS.items():
        got = arrays[key]
        assert got.dtype == expected.dtype, key
        assert got.shape == expected.shape, key
        assert got.tobytes() == expected.tobytes(), key
    assert arrays["f32_fortran"].flags.f_contiguous
    # an ordinary .npz: NumPy reads it without pickle
    with np.load(path, allow_pickle=False) as plain:
        assert set(plain.files) == set(NPZ_ARRAYS) | {META_KEY}
        assert plain[META_KEY].dtype == np.uint8


def test_npz_path_is_used_as_given(tmp_path):
    save_npz(str(tmp_path / "weights"), {"W": np.ones(2)}, {})
    assert os.listdir(tmp_path) == ["weights"]
    arrays, meta = load_npz(tmp_path / "weights")
    assert meta == {}
    assert_array_equal(arrays["W"], np.ones(2))
    save_npz(tmp_path / "no_meta.npz", {"W": np.ones(2)})
    assert load_npz(tmp_path / "no_meta.npz")[1] == {}


def test_save_npz_validates_before_writing(tmp_path):
    path = tmp_path / "p.npz"
    with pytest.raises(TypeError, match=r"arrays\['W'\] has dtype object"):
        save_npz(path, {"W": np.array([1, None], dtype=object)}, {})
    with pytest.raises(ValueError, match="'__meta__' is reserved"):
        save_npz(path, {META_KEY: np.ones(1)}, {})
    with pytest.raises(TypeError, match="array names must be non-empty str, got 3"):
        save_npz(path, {3: np.ones(1)}, {})
    with pytest.raises(TypeError, match="arrays must be a dict"):
        save_npz(path, [np.ones(1)], {})
    with pytest.raises(TypeError, match="meta must be JSON-serializable"):
        save_npz(path, {"W": np.ones(1)}, {"when": object()})
    with pytest.raises(ValueError, match="meta must be JSON-serializable"):
        save_npz(path, {"W": np.ones(1)}, {"loss": float("nan")})
    with pytest.raises(TypeError, match=r"meta\['a'\] keys must be str"):
        save_npz(path, {"W": np.ones(1)}, {"a": {1: "one"}})
    with pytest.raises(TypeError, match="meta must be a dict"):
        save_npz(path, {"W": np.ones(1)}, ["not", "a", "dict"])
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "params.npz"
    save_npz(path, {"W": np.ones(3)}, {"version": 1})
    before = path.read_bytes()
    real_write_array = np.lib.format.write_array
    calls = []

    def write_then_fail(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:                     # the first array is written, then: disk full
            raise OSError(28, "No space left on device")
        return real_write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_npz(path, {"W": np.zeros(3), "b": np.zeros(2)}, {"version": 2})
    assert len(calls) == 2
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["params.npz"]
    calls.clear()
    with pytest.raises(OSError):
        save_npz(tmp_path / "new.npz", {"W": np.zeros(3), "b": np.zeros(2)}, {})
    assert os.listdir(tmp_path) == ["params.npz"]
    monkeypatch.undo()
    arrays, meta = load_npz(path)
    assert meta == {"version": 1}
    assert_array_equal(arrays["W"], np.ones(3))


def test_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "params.npz"

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        save_npz(path, {"W": np.ones(3)}, {})
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_file_permissions_follow_umask_or_the_existing_file(tmp_path):
    old_umask = os.umask(0o022)
    try:
        save_npz(tmp_path / "a.npz", {"W": np.ones(1)}, {})
    finally:
        os.umask(old_umask)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644
    os.chmod(tmp_path / "a.npz", 0o600)
    save_npz(tmp_path / "a.npz", {"W": np.zeros(1)}, {})
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o600


def test_load_npz_refuses_random_bytes_and_truncated_files(tmp_path):
    good = tmp_path / "good.npz"
    save_npz(good, {"W": np.arange(1000.0), "b": np.ones(10)}, {"epoch": 1})
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    cases = {
        "random.npz": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.npz": b"",
        "zip_magic_only.npz": b"PK\x03\x04" + rng.integers(0, 256, 100, dtype=np.uint8).tobytes(),
    }
    for cut in (10, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        cases[f"truncated_{cut}.npz"] = data[:cut]
    for name, content in cases.items():
        path = write(tmp_path / name, content)
        with pytest.raises(ParameterFileError) as info:
            load_npz(path)
        assert str(path) in str(info.value), name
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


def test_load_npz_refuses_a_plain_npy_file(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.ones(3))
    with pytest.raises(ParameterFileError, match=r"array\.npy: not an \.npz file"):
        load_npz(path)


def test_load_npz_requires_valid_meta(tmp_path):
    no_meta = tmp_path / "no_meta.npz"
    np.savez(no_meta, W=np.ones(2))
    with pytest.raises(ParameterFileError, match="no_meta.npz: no '__meta__' entry"):
        load_npz(no_meta)
    for name, meta_array, match in [
        ("bad_json.npz", np.frombuffer(b"{not json", np.uint8), "is not valid JSON"),
        ("bad_utf8.npz", np.frombuffer(b"\xff\xfe", np.uint8), "is not valid JSON"),
        ("list.npz", np.frombuffer(b"[1, 2]", np.uint8), "must be a JSON object, got list"),
        ("float_meta.npz", np.ones(3), "must be UTF-8 JSON bytes"),
    ]:
        path = tmp_path / name
        np.savez(path, W=np.ones(2), **{META_KEY: meta_array})
        with pytest.raises(ParameterFileError, match=match) as info:
            load_npz(path)
        assert name in str(info.value)
    # a 0-d unicode JSON string is accepted as well
    unicode_meta = tmp_path / "unicode.npz"
    np.savez(unicode_meta, W=np.ones(2), **{META_KEY: np.array('{"a": 1}')})
    assert load_npz(unicode_meta)[1] == {"a": 1}


def test_load_npz_refuses_object_arrays_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = hostile_payloads(marker)["builtins.exec"]
    path = tmp_path / "evil.npz"
    np.savez(path, W=evil, **{META_KEY: np.frombuffer(b"{}", np.uint8)})   # np.savez pickles it
    with pytest.raises(ParameterFileError, match=r"evil\.npz: cannot load entry 'W'.*allow_pickle"):
        load_npz(path)
    assert not marker.exists()


def test_load_npz_refuses_non_array_members(tmp_path):
    path = tmp_path / "odd.npz"
    save_npz(path, {"W": np.ones(2)}, {})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ParameterFileError, match="'readme.txt' is not a .npy array"):
        load_npz(path)


def test_errors_are_value_errors():
    assert issubclass(ParameterFileError, ValueError)
    assert issubclass(UnsafePickleError, ParameterFileError)
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)
