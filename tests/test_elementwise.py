"""The fused elementwise kernels (ReLU forward/backward, Adam update) against NumPy."""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnn_core import functional as F
from cnn_core.layers import Relu
from cnn_core.optim import Adam

DTYPES = [np.float32, np.float64]
#: sizes around the kernels' 16384-element blocks, and a few odd small ones
SIZES = [1, 7, 16383, 16384, 16385, 3 * 16384 + 5]


def _x(n, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(n).astype(dtype)
    x[::7] = 0.0
    x[1::11] = -0.0
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_relu_matches_numpy(n, dtype):
    x = _x(n, dtype)
    out = F.relu_forward(x)
    assert out.dtype == dtype
    assert_array_equal(out, np.where(x > 0, x, 0))
    dout = _x(n, dtype, seed=1)
    dx = F.relu_backward(dout, out)
    ref = dout.copy()
    ref[x <= 0] = 0          # the book's backward
    assert_array_equal(dx, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_nan_inf_non_contiguous_read_only_and_threads(dtype):
    x = np.array([[np.nan, -np.inf, np.inf, -1.0, 2.0, 0.0]] * 3, dtype=dtype)[:, ::2]  # strided
    x.flags.writeable = False
    out = F.relu_forward(x)
    assert np.isnan(out[:, 0]).all()          # NaN propagates, as np.maximum
    assert_array_equal(out[:, 1:], np.maximum(x[:, 1:], 0))
    dx = F.relu_backward(np.ones_like(x), out)
    assert_array_equal(dx, (x > 0).astype(dtype))     # no gradient through NaN
    big = _x(7 * 28_571, dtype).reshape(7, -1)
    assert_array_equal(F.relu_forward(big, n_threads=1), F.relu_forward(big, n_threads=2))
    g = _x(7 * 28_571, dtype, 2).reshape(7, -1)
    o = F.relu_forward(big)
    assert_array_equal(F.relu_backward(g, o, n_threads=1), F.relu_backward(g, o, n_threads=2))


def test_relu_errors_name_the_argument():
    with pytest.raises(ValueError, match="dout"):
        F.relu_backward(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="x"):
        F.relu_forward(np.array(["a"]))
    with pytest.raises(TypeError, match="out"):
        F.relu_backward(np.ones(2), np.array([1 + 1j, 2]))


def test_relu_layer_book_mask_and_gradient():
    layer = Relu()
    x = np.array([[-1.0, 0.0, 2.0, np.nan]])
    y = layer.forward(x)
    assert_array_equal(layer.mask, [[True, True, False, True]])
    assert_array_equal(layer.backward(np.full_like(x, 3.0)), [[0, 0, 3.0, 0]])
    assert np.isnan(y[0, 3])


def _adam_numpy(param, grad, m, v, lr_t, b1, b2, eps):
    m += (1 - b1) * (grad - m)
    v += (1 - b2) * (grad ** 2 - v)
    param -= lr_t * m / (np.sqrt(v) + eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 5, 16385, 70_001])
def test_adam_update_matches_numpy_formula(n, dtype):
    rng = np.random.default_rng(n)
    p, g = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    m = (0.1 * rng.standard_normal(n)).astype(dtype)
    v = (0.01 * rng.random(n)).astype(dtype)
    ref = [a.copy() for a in (p, g, m, v)]
    F.adam_update(p, g, m, v, 0.001, 0.9, 0.999, 1e-7)
    _adam_numpy(*ref, 0.001, 0.9, 0.999, 1e-7)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for got, want in zip((p, m, v), (ref[0], ref[2], ref[3])):
        assert got.dtype == dtype
        assert_allclose(got, want, rtol=rtol, atol=0)


def test_adam_update_thread_count_independent():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(100_000).astype(np.float32) for _ in range(4)]
    arrays[3] = np.abs(arrays[3])
    a = [x.copy() for x in arrays]
    b = [x.copy() for x in arrays]
    F.adam_update(*a, 0.01, 0.9, 0.999, 1e-7, n_threads=1)
    F.adam_update(*b, 0.01, 0.9, 0.999, 1e-7, n_threads=2)
    for x, y in zip(a, b):
        assert_array_equal(x, y)


@pytest.mark.parametrize("bad,match", [
    (dict(grad=np.zeros(4, np.float64)), "grad"),
    (dict(m=np.zeros(5, np.float32)), "m must have"),
    (dict(v=np.zeros(8, np.float32)[::2]), "v must be C-contiguous"),
    (dict(param=[0.0] * 4), "param"),
    (dict(lr_t=float("nan")), "lr_t"),
    (dict(beta1=True), "beta1"),
])
def test_adam_update_errors_name_the_argument(bad, match):
    args = dict(param=np.zeros(4, np.float32), grad=np.zeros(4, np.float32),
                m=np.zeros(4, np.float32), v=np.zeros(4, np.float32), lr_t=0.1, beta1=0.9,
                beta2=0.999, eps=1e-7)
    args.update(bad)
    with pytest.raises((TypeError, ValueError), match=match):
        F.adam_update(**args)


def test_adam_optimizer_fused_and_numpy_paths_agree():
    """A C-contiguous parameter takes the fused kernel, a strided one the NumPy formula."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((6, 8))
    fused = {"W": base.copy()}
    strided_store = np.zeros((6, 16))
    strided_store[:, ::2] = base
    strided = {"W": strided_store[:, ::2]}
    opt_a, opt_b = Adam(lr=0.01), Adam(lr=0.01)
    for step in range(5):
        g = rng.standard_normal((6, 8))
        opt_a.update(fused, {"W": g})
        opt_b.update(strided, {"W": g})
    assert_allclose(fused["W"], strided["W"], rtol=1e-13)
    assert not np.array_equal(fused["W"], base)


def test_memory_bound_kernels_wake_threads_only_for_large_arrays(monkeypatch, restore_num_threads):
    """Below functional.STREAM_MIN_WORK elements touched, ReLU and Adam run on one thread
    (waking an OpenMP team costs more); above it, on the global setting."""
    import cnn_core
    from cnn_core import _elementwise
    cnn_core.set_num_threads(2)
    seen = []
    original = _elementwise.relu_forward
    monkeypatch.setattr(_elementwise, "relu_forward",
                        lambda x, out, n: seen.append(n) or original(x, out, n))
    small = F.STREAM_MIN_WORK // 2 - 1            # ReLU forward touches 2 elements per item
    F.relu_forward(np.ones(small, np.float32))
    F.relu_forward(np.ones(small + 1, np.float32))
    F.relu_forward(np.ones(small, np.float32), n_threads=2)   # an explicit count is obeyed
    assert seen == [1, 2, 2]
    seen_adam = []
    original_adam = _elementwise.adam_update
    monkeypatch.setattr(_elementwise, "adam_update",
                        lambda *a: seen_adam.append(a[-1]) or original_adam(*a))
    for n in (F.STREAM_MIN_WORK // 7 - 1, F.STREAM_MIN_WORK // 7 + 1):
        p, g, m, v = (np.ones(n, np.float32) for _ in range(4))
        F.adam_update(p, g, m, v, 0.001, 0.9, 0.999, 1e-7)
    assert seen_adam == [1, 2]
