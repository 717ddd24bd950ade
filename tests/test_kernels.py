"""Every kernel of cnn_core.functional against the slow references of _reference.py.

Covers float32 and float64, odd and rectangular planes, 1x1 and rectangular
windows, stride 1/2/3, pad 0/1/2, batch 1, non-contiguous and read-only input,
the 2x2/stride-2 max-pool fast path, im2col's ``out=``, the im2col/col2im
adjoint identity, float64 gradient checks, independence from the thread count,
and Hypothesis property tests on small random shapes.
"""
import zlib

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import cnn_core
from cnn_core import functional as F

from _reference import (
    avgpool2d_backward_ref, avgpool2d_ref, batchnorm_backward_ref, batchnorm_forward_ref,
    batchnorm_stats_ref, col2im_ref, conv2d_backward_ref, conv2d_ref, im2col_ref,
    maxpool2d_backward_ref, maxpool2d_ref, out_size,
)
from gradcheck import assert_grad_close, numerical_grad

DTYPES = [np.float32, np.float64]

# (x_shape, kernel_h, kernel_w, stride, pad) for im2col / col2im / convolution.
CONV_CASES = [
    ((2, 3, 7, 5), 3, 3, 1, 1),    # the book's 3x3 "same" convolution, odd plane
    ((2, 3, 7, 5), 1, 1, 1, 0),    # 1x1
    ((2, 3, 7, 5), 2, 3, 2, 1),    # rectangular window, stride 2
    ((2, 2, 7, 5), 3, 2, 3, 2),    # stride 3, pad 2
    ((1, 3, 7, 5), 3, 3, 2, 0),    # batch 1
    ((2, 2, 5, 7), 5, 5, 1, 2),
    ((2, 2, 4, 6), 1, 1, 3, 2),    # 1x1 with pad 2: whole rows/columns of zeros
    ((2, 2, 3, 3), 7, 7, 1, 2),    # window == padded input: a 1x1 output
    ((1, 1, 1, 1), 1, 1, 1, 0),    # the smallest problem
    # stride 1 with OW == W: the convolution's one-run "same" path (pyx/_im2col.pyx)
    ((2, 2, 6, 4), 5, 3, 1, 1),    # taller than wide window, OH < H
    ((2, 2, 1, 1), 3, 3, 1, 1),    # 1x1 plane: every cell but the centre is padding
    ((1, 2, 2, 1), 1, 3, 1, 1),    # W = 1 and OH > H: whole rows of padding
    ((2, 2, 3, 2), 3, 5, 1, 2),    # pad 2 wider than the plane
]
# (x_shape, pool_h, pool_w, stride, pad) for pooling; pad < window.
POOL_CASES = [
    ((2, 3, 7, 7), 2, 2, 2, 0),    # the 2x2/stride-2 fast path, odd H and W
    ((2, 3, 7, 5), 2, 2, 2, 0),    # fast path, odd rectangular plane
    ((1, 2, 6, 6), 2, 2, 2, 0),    # fast path, even plane, batch 1
    ((2, 3, 7, 5), 3, 3, 1, 1),
    ((2, 3, 7, 5), 3, 2, 2, 1),    # rectangular window
    ((2, 2, 7, 5), 3, 3, 3, 2),    # stride 3, pad 2
    ((1, 3, 7, 5), 1, 1, 1, 0),    # 1x1, batch 1
    ((2, 2, 7, 5), 2, 3, 3, 0),    # stride larger than the window height
    ((2, 2, 7, 5), 2, 2, 1, 1),    # 2x2 but not the fast path
    ((2, 2, 7, 5), 5, 3, 2, 2),
]
PADDED_POOL_CASES = [c for c in POOL_CASES if c[4] > 0]
BN_SHAPES = [(4, 3, 5, 7), (1, 3, 7, 5), (6, 5), (1, 4), (3, 2, 1, 1)]


def case_id(case):
    shape, kh, kw, stride, pad = case
    return f"x{'x'.join(map(str, shape))}-k{kh}x{kw}-s{stride}-p{pad}"


def rng_for(*key):
    """A generator seeded from the test's parameters, so every case is reproducible.

    (crc32, not hash(): str hashes are salted per process.)
    """
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def randn(rng, shape, dtype, loc=0.0, scale=1.0):
    return (loc + scale * rng.standard_normal(shape)).astype(dtype)


LAYOUTS = ["contiguous", "transposed", "sliced", "readonly"]


def with_layout(x, layout):
    """The same values as ``x``, as a C-contiguous, transposed-view, sliced-view or read-only array."""
    if layout == "contiguous":
        out = np.ascontiguousarray(x)
    elif layout == "transposed":   # stored with the last two axes swapped, viewed back
        axes = list(range(x.ndim))
        axes[-1], axes[-2] = axes[-2], axes[-1]
        out = np.ascontiguousarray(x.transpose(axes)).transpose(axes)
        assert not out.flags.c_contiguous
    elif layout == "sliced":       # every other row of a larger buffer, offset by one column
        big = np.zeros(x.shape[:-2] + (2 * x.shape[-2], x.shape[-1] + 1), dtype=x.dtype)
        big[..., ::2, 1:] = x
        out = big[..., ::2, 1:]
        assert not out.flags.c_contiguous
    elif layout == "readonly":
        out = np.array(x)
        out.setflags(write=False)
    else:
        raise AssertionError(layout)
    assert_array_equal(out, x)
    return out


# ----------------------------------------------------------------------------- im2col / col2im
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_im2col_matches_reference(case, dtype):
    shape, kh, kw, stride, pad = case
    x = randn(rng_for(case, dtype), shape, dtype)
    cols = F.im2col(x, kh, kw, stride, pad)
    assert cols.dtype == x.dtype
    assert cols.flags.c_contiguous
    # A copy is exact: bitwise equality.
    assert_array_equal(cols, im2col_ref(x, kh, kw, stride, pad))


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_out_argument(dtype):
    x = randn(rng_for("out", dtype), (2, 3, 7, 5), dtype)
    expected = im2col_ref(x, 3, 3, 2, 1)
    out = np.full(expected.shape, np.nan, dtype=dtype)  # garbage that must be overwritten
    result = F.im2col(x, 3, 3, 2, 1, out=out)
    assert np.shares_memory(result, out)
    assert result.dtype == x.dtype
    assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_col2im_matches_reference(case, dtype, tol):
    shape, kh, kw, stride, pad = case
    rng = rng_for(case, dtype)
    rows = shape[0] * out_size(shape[2], kh, stride, pad) * out_size(shape[3], kw, stride, pad)
    cols = randn(rng, (rows, shape[1] * kh * kw), dtype)
    dx = F.col2im(cols, shape, kh, kw, stride, pad)
    assert dx.dtype == cols.dtype
    assert dx.shape == shape
    assert_allclose(dx, col2im_ref(cols, shape, kh, kw, stride, pad), **tol(dtype, long_sum=True))


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_col2im_is_the_adjoint_of_im2col(case):
    """<im2col(x), y> == <x, col2im(y)> for every x, y (float64, tight tolerance)."""
    shape, kh, kw, stride, pad = case
    rng = rng_for("adjoint", case)
    x = rng.standard_normal(shape)
    cols = F.im2col(x, kh, kw, stride, pad)
    y = rng.standard_normal(cols.shape)
    lhs = np.vdot(cols, y)
    rhs = np.vdot(x, F.col2im(y, shape, kh, kw, stride, pad))
    assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12 * np.sqrt(y.size))


# ----------------------------------------------------------------------------- convolution
def conv_problem(case, dtype, n_filters=4):
    shape, kh, kw, stride, pad = case
    rng = rng_for("conv", case, dtype)
    x = randn(rng, shape, dtype)
    W = randn(rng, (n_filters, shape[1], kh, kw), dtype, scale=0.5)
    b = randn(rng, (n_filters,), dtype)
    return x, W, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv2d_forward_matches_reference(case, dtype, tol):
    shape, kh, kw, stride, pad = case
    x, W, b = conv_problem(case, dtype)
    out = F.conv2d_forward(x, W, b, stride, pad)
    assert out.dtype == x.dtype
    assert out.flags.c_contiguous
    assert_allclose(out, conv2d_ref(x, W, b, stride, pad), **tol(dtype, long_sum=True, scale=10))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv2d_backward_matches_reference(case, dtype, tol):
    shape, kh, kw, stride, pad = case
    x, W, b = conv_problem(case, dtype)
    out = F.conv2d_forward(x, W, b, stride, pad)
    dout = randn(rng_for("dout", case, dtype), out.shape, dtype)
    dx, dW, db = F.conv2d_backward(dout, x, W, stride, pad)
    dx_ref, dW_ref, db_ref = conv2d_backward_ref(dout, x, W, stride, pad)
    for name, got, ref in [("dx", dx, dx_ref), ("dW", dW, dW_ref), ("db", db, db_ref)]:
        assert got.dtype == x.dtype, name
        assert got.shape == ref.shape, name
        assert_allclose(got, ref, err_msg=name, **tol(dtype, long_sum=True, scale=10))


# ----------------------------------------------------------------------------- max pooling
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool2d_forward_matches_reference(case, dtype):
    shape, kh, kw, stride, pad = case
    x = randn(rng_for("maxpool", case, dtype), shape, dtype)
    out, argmax = F.maxpool2d_forward(x, kh, kw, stride, pad)
    out_ref, argmax_ref = maxpool2d_ref(x, kh, kw, stride, pad)
    assert out.dtype == x.dtype
    assert argmax.dtype == np.intp
    assert_array_equal(out, out_ref)
    assert_array_equal(argmax, argmax_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool2d_ties_go_to_the_first_max(case, dtype):
    shape, kh, kw, stride, pad = case
    x = rng_for("ties", case, dtype).integers(0, 2, size=shape).astype(dtype)  # many ties
    out, argmax = F.maxpool2d_forward(x, kh, kw, stride, pad)
    out_ref, argmax_ref = maxpool2d_ref(x, kh, kw, stride, pad)
    assert_array_equal(out, out_ref)
    assert_array_equal(argmax, argmax_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", PADDED_POOL_CASES, ids=case_id)
def test_maxpool2d_padding_never_wins(case, dtype):
    """All-negative input (and some -inf): a zero-padded implementation would return 0."""
    shape, kh, kw, stride, pad = case
    x = -1.0 - np.abs(randn(rng_for("neg", case, dtype), shape, dtype))
    x[..., 0, 0] = -np.inf   # a real -inf in a corner window still beats the padding
    out, argmax = F.maxpool2d_forward(x, kh, kw, stride, pad)
    out_ref, argmax_ref = maxpool2d_ref(x, kh, kw, stride, pad)
    assert np.all(out < 0)
    assert_array_equal(out, out_ref)
    assert_array_equal(argmax, argmax_ref)
    plane = shape[2] * shape[3]
    assert argmax.min() >= 0 and argmax.max() < plane


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool2d_fast_path_infinities_signed_zeros_and_nan_planes(dtype):
    """The vectorised 2x2 path: +-inf, -0.0 vs 0.0 ties (the first cell's sign is kept), and
    planes with NaN (redone by the general loop) beside planes without."""
    rng = rng_for("fast-special", dtype)
    shape = (3, 4, 6, 8)
    x = rng.choice(np.array([-np.inf, np.inf, -0.0, 0.0, -1.0, 2.0], dtype=dtype), size=shape)
    x[1, 2, 3, 5] = np.nan
    x[2, 0, 0, 0] = np.nan
    out, argmax = F.maxpool2d_forward(x, 2, 2, 2, 0)
    out_ref, argmax_ref = maxpool2d_ref(x, 2, 2, 2, 0)
    assert_array_equal(out, out_ref)
    assert_array_equal(np.signbit(out), np.signbit(out_ref))
    assert_array_equal(argmax, argmax_ref)
    assert np.isnan(out[1, 2]).sum() == 1 and np.isnan(out).sum() == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool2d_nan_wins(case, dtype):
    shape, kh, kw, stride, pad = case
    rng = rng_for("nan", case, dtype)
    x = randn(rng, shape, dtype)
    x[rng.random(shape) < 0.2] = np.nan
    x[..., 0, 0] = np.nan          # first cell of a window is NaN
    x[..., -1, -1] = np.nan        # last cell of a window is NaN
    out, argmax = F.maxpool2d_forward(x, kh, kw, stride, pad)
    out_ref, argmax_ref = maxpool2d_ref(x, kh, kw, stride, pad)
    assert np.isnan(out_ref).any()
    assert_array_equal(out, out_ref)       # NaNs compare equal by position here
    assert_array_equal(argmax, argmax_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 1, 3, 3), (2, 2, 9, 11), (1, 2, 2, 3),
                                   (3, 1, 5, 2)], ids=str)
def test_maxpool2d_fast_path_on_odd_planes(shape, dtype):
    """The 2x2/stride-2/pad-0 special case: the last odd row/column is dropped, ties and NaN too."""
    rng = rng_for("fast", shape, dtype)
    x = rng.integers(0, 3, size=shape).astype(dtype)
    x[rng.random(shape) < 0.1] = np.nan
    out, argmax = F.maxpool2d_forward(x, 2, 2, 2, 0)
    out_ref, argmax_ref = maxpool2d_ref(x, 2, 2, 2, 0)
    assert out.shape == shape[:2] + (shape[2] // 2, shape[3] // 2)
    assert out.dtype == x.dtype
    assert_array_equal(out, out_ref)
    assert_array_equal(argmax, argmax_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool2d_backward_matches_reference(case, dtype, tol):
    shape, kh, kw, stride, pad = case
    rng = rng_for("maxpool_bwd", case, dtype)
    x = randn(rng, shape, dtype)
    out, argmax = F.maxpool2d_forward(x, kh, kw, stride, pad)
    _, argmax_ref = maxpool2d_ref(x, kh, kw, stride, pad)
    dout = randn(rng, out.shape, dtype)
    dx = F.maxpool2d_backward(dout, argmax, shape)
    assert dx.dtype == dout.dtype
    assert_allclose(dx, maxpool2d_backward_ref(dout, argmax_ref, shape), **tol(dtype, long_sum=True))


# ----------------------------------------------------------------------------- 2x2 codes
TWO_BY_TWO_SHAPES = [(2, 3, 8, 8), (2, 3, 7, 9), (1, 1, 2, 2), (1, 2, 3, 2), (3, 1, 5, 33),
                     (2, 4, 24, 24)]


def _codes_input(kind, shape, dtype):
    rng = rng_for("2x2", kind, shape, dtype)
    if kind == "random":
        return randn(rng, shape, dtype)
    if kind == "ties":
        return rng.integers(0, 2, size=shape).astype(dtype)
    x = rng.choice(np.array([-np.inf, np.inf, -0.0, 0.0, -1.0, 2.0], dtype=dtype), size=shape)
    x[rng.random(shape) < 0.05] = np.nan
    x[0, 0, 0, 1] = np.nan          # the second cell of a window: NaN beats the max before it
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["random", "ties", "special"])
@pytest.mark.parametrize("shape", TWO_BY_TWO_SHAPES, ids=str)
def test_maxpool2x2_codes_pick_the_reference_winner(shape, kind, dtype):
    """Values and winners of the reference's 2x2/stride-2 pooling: the first max, the first
    NaN, -0.0 vs 0.0 ties keeping the first cell's sign; odd last row/column dropped."""
    x = _codes_input(kind, shape, dtype)
    out, codes = F.maxpool2x2_forward(x)
    out_ref, argmax_ref = maxpool2d_ref(x, 2, 2, 2, 0)
    assert out.dtype == x.dtype and codes.dtype == np.int32
    assert_array_equal(out, out_ref)
    assert_array_equal(np.signbit(out), np.signbit(out_ref))
    assert codes.min() >= 0 and codes.max() <= 3
    assert_array_equal(F.maxpool2x2_argmax(codes, shape), argmax_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["random", "ties", "special"])
@pytest.mark.parametrize("shape", TWO_BY_TWO_SHAPES, ids=str)
def test_maxpool2x2_backward_equals_scatter_add(shape, kind, dtype):
    """Bit for bit the general path's dx (zeros, then += at the winner), for gradients
    holding -0.0, +-inf and NaN too; cells no window covers are 0."""
    x = _codes_input(kind, shape, dtype)
    out, codes = F.maxpool2x2_forward(x)
    rng = rng_for("2x2 dout", kind, shape, dtype)
    dout = randn(rng, out.shape, dtype)
    if kind == "special":
        dout[rng.random(out.shape) < 0.2] = -0.0
        dout.flat[::7] = np.inf
        dout.flat[3::11] = np.nan
    dx = F.maxpool2x2_backward(dout, codes, shape)
    ref = maxpool2d_backward_ref(dout, maxpool2d_ref(x, 2, 2, 2, 0)[1], shape)
    assert dx.dtype == dout.dtype and dx.shape == shape
    assert_array_equal(dx, ref)
    assert_array_equal(np.signbit(dx), np.signbit(ref))
    assert_array_equal(dx, F.maxpool2d_backward(dout, F.maxpool2x2_argmax(codes, shape), shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool2x2_strided_readonly_input_and_thread_counts(dtype):
    base = randn(rng_for("2x2 strided", dtype), (4, 6, 18, 20), dtype)
    x = base[:, ::2, 1::2, ::2]                      # (4, 3, 9, 10), not contiguous
    x.flags.writeable = False
    out_ref, argmax_ref = maxpool2d_ref(np.ascontiguousarray(x), 2, 2, 2, 0)
    dout = randn(rng_for("2x2 strided dout", dtype), out_ref.shape, dtype)
    dout.flags.writeable = False
    results = []
    for n in (1, 2, 3):
        out, codes = F.maxpool2x2_forward(x, n_threads=n)
        dx = F.maxpool2x2_backward(dout, codes, x.shape, n_threads=n)
        results.append((out, codes, dx))
        assert_array_equal(out, out_ref)
        assert_array_equal(F.maxpool2x2_argmax(codes, x.shape), argmax_ref)
    for out, codes, dx in results[1:]:
        assert_array_equal(dx, results[0][2])


def test_maxpool2x2_errors_name_the_argument():
    x = np.zeros((2, 3, 6, 6), np.float32)
    out, codes = F.maxpool2x2_forward(x)
    with pytest.raises(ValueError, match="codes must be an int32 array of shape"):
        F.maxpool2x2_backward(out, codes.astype(np.int64), x.shape)
    with pytest.raises(ValueError, match="codes must be an int32 array of shape"):
        F.maxpool2x2_backward(out, codes[:1], x.shape)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3, 3, 3\)"):
        F.maxpool2x2_backward(out[:, :, :2], codes, x.shape)
    with pytest.raises(ValueError, match="x_shape"):
        F.maxpool2x2_backward(out, codes, (2, 3, 6))
    with pytest.raises(ValueError, match="pooling window"):
        F.maxpool2x2_forward(np.zeros((1, 1, 1, 4), np.float32))
    with pytest.raises(ValueError, match="codes must hold window places 0..3"):
        F.maxpool2x2_argmax(codes + 4, x.shape)
    for bad in (-1, 4):                 # out-of-range codes would silently zero the gradient
        wrong = codes.copy()
        wrong[1, 2, 0, 1] = bad
        with pytest.raises(ValueError, match="codes must hold window places 0..3"):
            F.maxpool2x2_backward(out, wrong, x.shape)
    from cnn_core import _pool            # the compiled kernels check shapes themselves too
    with pytest.raises(ValueError, match="out and codes must be"):
        _pool.maxpool2x2_forward(x, np.empty((2, 3, 2, 3), np.float32),
                                 np.empty((2, 3, 2, 3), np.int32), 1)
    with pytest.raises(ValueError, match="dout and codes must be"):
        _pool.maxpool2x2_backward(out, codes[:1], np.empty_like(x), 1)


# ----------------------------------------------------------------------------- conv + pool
CONV_POOL_CASES = [  # (x shape, filters, kernel, stride, pad, algorithm)
    ((3, 1, 28, 28), 6, 5, 1, 0, "im2col"),
    ((5, 3, 9, 11), 4, 3, 2, 1, "im2col"),
    ((4, 2, 8, 7), 3, (2, 3), 1, 2, "im2col"),
    ((9, 8, 14, 14), 8, 3, 1, 1, "winograd"),
    ((13, 8, 7, 9), 5, 3, 1, 2, "winograd"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True], ids=["pool", "relu_pool"])
@pytest.mark.parametrize("case", CONV_POOL_CASES, ids=str)
def test_conv2d_maxpool_equals_the_separate_calls_bit_for_bit(case, relu, dtype):
    """Fused forward and backward against conv2d_* + maxpool2x2_* [+ relu_*] run one after
    the other (themselves tested against the references above): identical bits, for the
    input gradient or without it, on input with ties, NaN, and a non-contiguous read-only x."""
    shape, fn, k, stride, pad, algorithm = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = rng_for("conv-pool", case, relu, dtype)
    base = randn(rng, shape[:3] + (2 * shape[3],), dtype)
    x = base[..., ::2]                              # not contiguous
    x[0] = 0.0                                      # all-zero windows: ties
    x[1, :, 1:3, 1:3] = np.nan
    x.flags.writeable = False
    W = randn(rng, (fn, shape[1], kh, kw), dtype, scale=0.3)
    b = randn(rng, (fn,), dtype)
    y = F.conv2d_forward(x, W, b, stride, pad, algorithm=algorithm)
    pooled, codes = F.maxpool2x2_forward(y)
    out = F.relu_forward(pooled) if relu else pooled
    got, got_codes = F.conv2d_maxpool_forward(x, W, b, stride, pad, relu=relu,
                                              algorithm=algorithm)
    assert got.dtype == x.dtype and got_codes.dtype == np.int32
    assert_array_equal(got, out)
    assert_array_equal(got_codes, codes)
    dout = randn(rng, out.shape, dtype)
    dpool = F.relu_backward(dout, out) if relu else dout
    dy = F.maxpool2x2_backward(dpool, codes, y.shape)
    for need_dx in (True, False):
        ref = F.conv2d_backward(dy, x, W, stride, pad, need_dx=need_dx, algorithm=algorithm)
        grads = F.conv2d_maxpool_backward(dout, got_codes, x, W, stride, pad,
                                          out=got if relu else None, need_dx=need_dx,
                                          algorithm=algorithm)
        for name, g, r in zip(("dx", "dW", "db"), grads, ref):
            if r is None:
                assert g is None and not need_dx
            else:
                assert_array_equal(g, r, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_POOL_CASES, ids=str)
def test_conv2d_relu_equals_the_separate_calls_bit_for_bit(case, dtype):
    """conv2d_forward(relu=True) and conv2d_backward(out=...) against conv2d_* and relu_*."""
    shape, fn, k, stride, pad, algorithm = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = rng_for("conv-relu", case, dtype)
    x = randn(rng, shape, dtype)
    x[1, :, 1:3, 1:3] = np.nan
    W = randn(rng, (fn, shape[1], kh, kw), dtype, scale=0.3)
    b = randn(rng, (fn,), dtype)
    y = F.conv2d_forward(x, W, b, stride, pad, algorithm=algorithm)
    ref = F.relu_forward(y)
    out = F.conv2d_forward(x, W, b, stride, pad, relu=True, algorithm=algorithm)
    assert_array_equal(out, ref)
    dout = randn(rng, out.shape, dtype)
    expected = F.conv2d_backward(F.relu_backward(dout, ref), x, W, stride, pad,
                                 algorithm=algorithm)
    got = F.conv2d_backward(dout, x, W, stride, pad, out=out, algorithm=algorithm)
    for name, g, r in zip(("dx", "dW", "db"), got, expected):
        assert_array_equal(g, r, err_msg=name)
    with pytest.raises(ValueError, match="out must have the forward output's shape"):
        F.conv2d_backward(dout, x, W, stride, pad, out=out[:1], algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["im2col", "winograd"])
def test_conv2d_maxpool_does_not_depend_on_the_thread_count(algorithm):
    rng = rng_for("conv-pool-threads", algorithm)
    x = randn(rng, (23, 8, 12, 10), np.float32)
    W = randn(rng, (6, 8, 3, 3), np.float32)
    b = randn(rng, (6,), np.float32)
    runs = []
    for n in (1, 2, 3):
        out, codes = F.conv2d_maxpool_forward(x, W, b, 1, 1, relu=True, algorithm=algorithm,
                                              n_threads=n)
        grads = F.conv2d_maxpool_backward(np.ones_like(out), codes, x, W, 1, 1, out=out,
                                          algorithm=algorithm, n_threads=n)
        runs.append((out,) + grads)
    for run in runs[1:]:
        for a, b_ in zip(runs[0], run):
            assert_array_equal(a, b_)


def test_conv2d_maxpool_errors_name_the_argument():
    x = np.zeros((2, 3, 8, 8), np.float32)
    W = np.zeros((4, 3, 3, 3), np.float32)
    b = np.zeros(4, np.float32)
    out, codes = F.conv2d_maxpool_forward(x, W, b, 1, 1)
    assert out.shape == (2, 4, 4, 4)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 4, 4, 4\)"):
        F.conv2d_maxpool_backward(out[:, :, :3], codes, x, W, 1, 1)
    with pytest.raises(ValueError, match="codes must be an int32 array"):
        F.conv2d_maxpool_backward(out, codes.astype(np.intp), x, W, 1, 1)
    with pytest.raises(ValueError, match="out must have the forward output's shape"):
        F.conv2d_maxpool_backward(out, codes, x, W, 1, 1, out=out[:1])
    with pytest.raises(ValueError, match="b must have shape"):
        F.conv2d_maxpool_forward(x, W, b[:3], 1, 1)
    with pytest.raises(ValueError, match="smaller than the 2x2 pooling window"):
        F.conv2d_maxpool_forward(x[:, :, :3, :3], W, b, 1, 0)


# ----------------------------------------------------------------------------- average pooling
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl_pad", "excl_pad"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_avgpool2d_forward_matches_reference(case, dtype, count_include_pad, tol):
    shape, kh, kw, stride, pad = case
    x = randn(rng_for("avg", case, dtype), shape, dtype)
    out = F.avgpool2d_forward(x, kh, kw, stride, pad, count_include_pad)
    assert out.dtype == x.dtype
    assert_allclose(out, avgpool2d_ref(x, kh, kw, stride, pad, count_include_pad),
                    **tol(dtype, long_sum=True))


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl_pad", "excl_pad"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_avgpool2d_backward_matches_reference(case, dtype, count_include_pad, tol):
    shape, kh, kw, stride, pad = case
    out_shape = shape[:2] + (out_size(shape[2], kh, stride, pad), out_size(shape[3], kw, stride, pad))
    dout = randn(rng_for("avg_bwd", case, dtype), out_shape, dtype)
    dx = F.avgpool2d_backward(dout, shape, kh, kw, stride, pad, count_include_pad)
    assert dx.dtype == dout.dtype
    assert dx.shape == shape
    assert_allclose(dx, avgpool2d_backward_ref(dout, shape, kh, kw, stride, pad, count_include_pad),
                    **tol(dtype, long_sum=True))


def test_avgpool2d_count_include_pad_differs_only_at_the_border():
    """Sanity check of the two conventions on a constant input: 1 inside, < 1 on padded windows."""
    x = np.ones((1, 1, 5, 5))
    incl = F.avgpool2d_forward(x, 3, 3, 1, 1, count_include_pad=True)
    excl = F.avgpool2d_forward(x, 3, 3, 1, 1, count_include_pad=False)
    assert_allclose(excl, 1.0, rtol=1e-15)
    assert_allclose(incl[0, 0, 1:-1, 1:-1], 1.0, rtol=1e-15)
    assert_allclose(incl[0, 0, 0, 0], 4 / 9, rtol=1e-15)
    assert_allclose(incl[0, 0, 0, 2], 6 / 9, rtol=1e-15)


# ----------------------------------------------------------------------------- batch norm
def bn_problem(shape, dtype, key=""):
    rng = rng_for("bn", key, shape, dtype)
    x = randn(rng, shape, dtype, loc=3.0, scale=2.0)   # a mean far from 0 tests the shift
    n_channels = shape[1]
    gamma = randn(rng, (n_channels,), dtype, loc=1.0, scale=0.3)
    beta = randn(rng, (n_channels,), dtype)
    return rng, x, gamma, beta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batchnorm_stats_matches_reference(shape, dtype):
    _, x, _, _ = bn_problem(shape, dtype)
    mean, var = F.batchnorm_stats(x)
    mean_ref, var_ref = batchnorm_stats_ref(x)
    # Statistics are float64 whatever the input dtype, and summed in float64.
    assert mean.dtype == np.float64 and var.dtype == np.float64
    assert mean.shape == (shape[1],) and var.shape == (shape[1],)
    assert_allclose(mean, mean_ref, rtol=1e-12, atol=1e-13)
    assert_allclose(var, var_ref, rtol=1e-11, atol=1e-13)
    assert np.all(var >= 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batchnorm_forward_matches_reference(shape, dtype, tol):
    _, x, gamma, beta = bn_problem(shape, dtype)
    mean, var = batchnorm_stats_ref(x)
    out, inv_std = F.batchnorm_forward(x, gamma, beta, mean, var)
    out_ref, inv_std_ref = batchnorm_forward_ref(x, gamma, beta, mean, var)
    assert out.dtype == x.dtype
    assert inv_std.dtype == np.float64
    assert_allclose(inv_std, inv_std_ref, rtol=1e-12)
    assert_allclose(out, out_ref, **tol(dtype, long_sum=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batchnorm_backward_matches_reference(shape, dtype, tol):
    rng, x, gamma, beta = bn_problem(shape, dtype)
    mean, var = batchnorm_stats_ref(x)
    _, inv_std = batchnorm_forward_ref(x, gamma, beta, mean, var)
    dout = randn(rng, shape, dtype)
    dx, dgamma, dbeta = F.batchnorm_backward(dout, x, gamma, mean, inv_std)
    dx_ref, dgamma_ref, dbeta_ref = batchnorm_backward_ref(dout, x, gamma, mean, inv_std)
    for name, got, ref in [("dx", dx, dx_ref), ("dgamma", dgamma, dgamma_ref),
                           ("dbeta", dbeta, dbeta_ref)]:
        assert got.dtype == x.dtype, name
        assert got.shape == ref.shape, name
        assert_allclose(got, ref, err_msg=name, **tol(dtype, long_sum=True, scale=10))


# ----------------------------------------------------------------------------- input layouts
def _layout_runs():
    """name -> (make inputs from an rng and dtype, run the wrapper, run the reference)."""
    geo = (3, 2, 2, 1)   # rectangular window, stride 2, pad 1

    def conv(x, W, b):
        return F.conv2d_forward(x, W, b, 2, 1)

    def conv_ref(x, W, b):
        return conv2d_ref(x, W, b, 2, 1)

    def bn_forward(x, gamma, beta):
        mean, var = F.batchnorm_stats(x)
        return F.batchnorm_forward(x, gamma, beta, mean, var)[0]

    def bn_forward_ref(x, gamma, beta):
        mean, var = batchnorm_stats_ref(x)
        return batchnorm_forward_ref(x, gamma, beta, mean, var)[0]

    def bn_backward(dout, x, gamma):
        mean, var = batchnorm_stats_ref(np.array(x))
        inv_std = 1.0 / np.sqrt(var + 1e-7)
        return F.batchnorm_backward(dout, x, gamma, mean, inv_std)[0]

    def bn_backward_ref(dout, x, gamma):
        mean, var = batchnorm_stats_ref(x)
        inv_std = 1.0 / np.sqrt(var + 1e-7)
        return batchnorm_backward_ref(dout, x, gamma, mean, inv_std)[0]

    x4 = (2, 3, 7, 5)
    return {
        "im2col": ([x4], lambda x: F.im2col(x, *geo), lambda x: im2col_ref(x, *geo)),
        "col2im": ([(2 * 4 * 3, 3 * 3 * 2)],
                   lambda c: F.col2im(c, x4, *geo), lambda c: col2im_ref(c, x4, *geo)),
        "conv2d_forward": ([x4, (4, 3, 3, 2), (4,)], conv, conv_ref),
        "maxpool2d_forward": ([x4], lambda x: F.maxpool2d_forward(x, *geo)[0],
                              lambda x: maxpool2d_ref(x, *geo)[0]),
        "avgpool2d_forward": ([x4], lambda x: F.avgpool2d_forward(x, *geo, False),
                              lambda x: avgpool2d_ref(x, *geo, False)),
        "avgpool2d_backward": ([(2, 3, 4, 3)],
                               lambda d: F.avgpool2d_backward(d, x4, *geo),
                               lambda d: avgpool2d_backward_ref(d, x4, *geo)),
        "batchnorm_forward_4d": ([x4, (3,), (3,)], bn_forward, bn_forward_ref),
        "batchnorm_forward_2d": ([(6, 5), (5,), (5,)], bn_forward, bn_forward_ref),
        "batchnorm_backward_4d": ([x4, x4, (3,)], bn_backward, bn_backward_ref),
    }


LAYOUT_RUNS = _layout_runs()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LAYOUT_RUNS))
def test_noncontiguous_and_readonly_input(name, dtype, layout, tol):
    """Every array argument in a transposed/sliced view or read-only: same result, input untouched."""
    shapes, run, run_ref = LAYOUT_RUNS[name]
    rng = rng_for("layout", name, dtype)
    args = [randn(rng, s, dtype, loc=1.0) for s in shapes]
    laid_out = [with_layout(a, layout) if a.ndim >= 2 else a for a in args]
    before = [np.array(a) for a in laid_out]
    result = run(*laid_out)
    assert result.dtype == np.dtype(dtype)
    assert_allclose(result, run_ref(*args), **tol(dtype, long_sum=True, scale=10))
    for a, b in zip(laid_out, before):
        assert_array_equal(a, b)   # inputs are never written


def test_maxpool2d_backward_accepts_readonly_and_noncontiguous_argmax():
    x = randn(rng_for("argmax_layout"), (2, 3, 7, 5), np.float64)
    out, argmax = F.maxpool2d_forward(x, 3, 3, 1, 1)
    dout = randn(rng_for("argmax_layout_dout"), out.shape, np.float64)
    expected = maxpool2d_backward_ref(dout, argmax, x.shape)
    for layout in LAYOUTS:
        dx = F.maxpool2d_backward(with_layout(dout, layout), with_layout(argmax, layout), x.shape)
        assert_allclose(dx, expected, rtol=1e-12, err_msg=layout)


# ----------------------------------------------------------------------------- gradient checks
GRAD_CONV_CASES = [((2, 2, 5, 4), 3, 3, 1, 1), ((2, 2, 5, 4), 2, 3, 2, 0),
                   ((1, 2, 5, 4), 3, 2, 3, 2), ((2, 2, 5, 4), 1, 1, 2, 1)]


@pytest.mark.parametrize("case", GRAD_CONV_CASES, ids=case_id)
def test_conv2d_gradcheck(case):
    shape, kh, kw, stride, pad = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    W = 0.5 * rng.standard_normal((3, shape[1], kh, kw))
    b = rng.standard_normal(3)
    out = F.conv2d_forward(x, W, b, stride, pad)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = F.conv2d_backward(dout, x, W, stride, pad)

    def loss(x_, W_, b_):
        return np.sum(F.conv2d_forward(x_, W_, b_, stride, pad) * dout)

    assert_grad_close(dx, numerical_grad(lambda v: loss(v, W, b), x), "dx")
    assert_grad_close(dW, numerical_grad(lambda v: loss(x, v, b), W), "dW")
    assert_grad_close(db, numerical_grad(lambda v: loss(x, W, v), b), "db")


GRAD_POOL_CASES = [((2, 2, 5, 5), 2, 2, 2, 0), ((2, 2, 5, 4), 3, 3, 1, 1),
                   ((1, 2, 5, 4), 3, 2, 2, 1), ((2, 1, 5, 4), 3, 3, 3, 2)]


@pytest.mark.parametrize("case", GRAD_POOL_CASES, ids=case_id)
def test_maxpool2d_gradcheck(case):
    """Distinct values 0.1 apart: no ties, and eps = 1e-6 never changes a window's winner."""
    shape, kh, kw, stride, pad = case
    rng = np.random.default_rng(0)
    x = 0.1 * rng.permutation(np.prod(shape)).reshape(shape) - 1.0
    out, argmax = F.maxpool2d_forward(x, kh, kw, stride, pad)
    dout = rng.standard_normal(out.shape)
    dx = F.maxpool2d_backward(dout, argmax, shape)
    numeric = numerical_grad(lambda v: np.sum(F.maxpool2d_forward(v, kh, kw, stride, pad)[0] * dout), x)
    assert_grad_close(dx, numeric, "dx")


@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl_pad", "excl_pad"])
@pytest.mark.parametrize("case", GRAD_POOL_CASES, ids=case_id)
def test_avgpool2d_gradcheck(case, count_include_pad):
    shape, kh, kw, stride, pad = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    out = F.avgpool2d_forward(x, kh, kw, stride, pad, count_include_pad)
    dout = rng.standard_normal(out.shape)
    dx = F.avgpool2d_backward(dout, shape, kh, kw, stride, pad, count_include_pad)
    numeric = numerical_grad(
        lambda v: np.sum(F.avgpool2d_forward(v, kh, kw, stride, pad, count_include_pad) * dout), x)
    assert_grad_close(dx, numeric, "dx")


@pytest.mark.parametrize("shape", [(5, 3), (2, 2, 3, 3), (3, 2, 1, 2)], ids=str)
def test_batchnorm_gradcheck(shape):
    """Training mode: the batch statistics depend on x, and the gradient must account for it."""
    rng = np.random.default_rng(0)
    x = 2.0 + 1.5 * rng.standard_normal(shape)
    gamma = 1.0 + 0.3 * rng.standard_normal(shape[1])
    beta = rng.standard_normal(shape[1])
    dout = rng.standard_normal(shape)

    def loss(x_, gamma_, beta_):
        mean, var = F.batchnorm_stats(x_)
        return np.sum(F.batchnorm_forward(x_, gamma_, beta_, mean, var)[0] * dout)

    mean, var = F.batchnorm_stats(x)
    _, inv_std = F.batchnorm_forward(x, gamma, beta, mean, var)
    dx, dgamma, dbeta = F.batchnorm_backward(dout, x, gamma, mean, inv_std)
    assert_grad_close(dx, numerical_grad(lambda v: loss(v, gamma, beta), x), "dx")
    assert_grad_close(dgamma, numerical_grad(lambda v: loss(x, v, beta), gamma), "dgamma")
    assert_grad_close(dbeta, numerical_grad(lambda v: loss(x, gamma, v), beta), "dbeta")
    # The from-scratch reference derivation agrees with the numerical gradient too.
    dx_ref, _, _ = batchnorm_backward_ref(dout, x, gamma, mean, inv_std)
    assert_grad_close(dx_ref, numerical_grad(lambda v: loss(v, gamma, beta), x), "dx_ref")


# ----------------------------------------------------------------------------- thread independence
def _thread_runs():
    """name -> function(n_threads) returning the tuple of every output of that kernel.

    Shapes give each thread several tasks (N*C planes, N*OH rows, C channels).
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 9, 7))
    W = rng.standard_normal((5, 4, 3, 2))
    b = rng.standard_normal(5)
    x_ties = rng.integers(0, 3, size=x.shape).astype(np.float32)
    cols = F.im2col(x, 3, 2, 2, 1)
    out = F.conv2d_forward(x, W, b, 2, 1)
    dout_conv = rng.standard_normal(out.shape)
    pool_out, argmax = F.maxpool2d_forward(x, 3, 3, 1, 1)
    dout_pool = rng.standard_normal(pool_out.shape)
    avg_out = F.avgpool2d_forward(x, 3, 2, 2, 1)
    dout_avg = rng.standard_normal(avg_out.shape)
    x_bn = 3 + rng.standard_normal((6, 4, 5, 3)).astype(np.float32)
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    mean, var = F.batchnorm_stats(x_bn)
    inv_std = 1 / np.sqrt(var + 1e-7)
    dout_bn = rng.standard_normal(x_bn.shape).astype(np.float32)
    return {
        "im2col": lambda t: (F.im2col(x, 3, 2, 2, 1, n_threads=t),),
        "col2im": lambda t: (F.col2im(cols, x.shape, 3, 2, 2, 1, n_threads=t),),
        "conv2d_forward": lambda t: (F.conv2d_forward(x, W, b, 2, 1, n_threads=t),),
        "conv2d_backward": lambda t: F.conv2d_backward(dout_conv, x, W, 2, 1, n_threads=t),
        "maxpool2d_forward": lambda t: F.maxpool2d_forward(x, 3, 3, 1, 1, n_threads=t),
        "maxpool2d_forward_fast": lambda t: F.maxpool2d_forward(x_ties, 2, 2, 2, 0, n_threads=t),
        "maxpool2d_backward": lambda t: (F.maxpool2d_backward(dout_pool, argmax, x.shape,
                                                              n_threads=t),),
        "avgpool2d_forward": lambda t: (F.avgpool2d_forward(x, 3, 2, 2, 1, False, n_threads=t),),
        "avgpool2d_backward": lambda t: (F.avgpool2d_backward(dout_avg, x.shape, 3, 2, 2, 1,
                                                              n_threads=t),),
        "batchnorm_stats": lambda t: F.batchnorm_stats(x_bn, n_threads=t),
        "batchnorm_forward": lambda t: F.batchnorm_forward(x_bn, gamma, beta, mean, var,
                                                           n_threads=t),
        "batchnorm_backward": lambda t: F.batchnorm_backward(dout_bn, x_bn, gamma, mean, inv_std,
                                                             n_threads=t),
        "conv2d_same_forward": lambda t: (F.conv2d_forward(x, W, b, 1, 1, n_threads=t),),
        "conv2d_same_backward": lambda t: F.conv2d_backward(
            F.conv2d_forward(x, W, b, 1, 1), x, W, 1, 1, n_threads=t),
        "relu_forward": lambda t: (F.relu_forward(x, n_threads=t),),
        "relu_backward": lambda t: (F.relu_backward(dout_avg, avg_out, n_threads=t),),
        "adam_update": lambda t: _adam_run(x_bn, dout_bn, t),
    }


def _adam_run(p, g, t):
    p, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for _ in range(3):
        F.adam_update(p, g, m, v, 0.01, 0.9, 0.999, 1e-7, n_threads=t)
    return p, m, v


THREAD_RUNS = _thread_runs()


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 0)])
def test_convolution_does_not_depend_on_the_micro_batch_size(monkeypatch, stride, pad):
    """The convolution unfolds a few samples at a time (functional.CONV_BUFFER_BYTES): one
    sample per step and the whole batch in one step give the same bits."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((9, 3, 10, 7)).astype(np.float32)
    W = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    results = []
    for size in (1, 1 << 30):
        monkeypatch.setattr(F, "CONV_BUFFER_BYTES", size)
        out = F.conv2d_forward(x, W, b, stride, pad, n_threads=2)
        results.append((out,) + F.conv2d_backward(np.cos(out), x, W, stride, pad, n_threads=2))
    for a, c in zip(*results):
        assert_array_equal(a, c)


@pytest.mark.parametrize("name", sorted(THREAD_RUNS))
def test_results_do_not_depend_on_n_threads(name):
    run = THREAD_RUNS[name]
    one, two = run(1), run(2)
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b), f"{name}: n_threads=1 and n_threads=2 differ"


@pytest.mark.parametrize("name", sorted(THREAD_RUNS))
def test_results_do_not_depend_on_set_num_threads(name, restore_num_threads):
    run = THREAD_RUNS[name]
    cnn_core.set_num_threads(1)
    assert cnn_core.get_num_threads() == 1
    one = run(None)
    cnn_core.set_num_threads(2)
    assert cnn_core.get_num_threads() == 2
    two = run(None)
    for a, b in zip(one, two):
        assert np.array_equal(a, b), f"{name}: set_num_threads(1) and (2) differ"


def test_set_num_threads_returns_previous_and_is_restored(restore_num_threads):
    original = cnn_core.get_num_threads()
    assert cnn_core.set_num_threads(1) == original
    assert cnn_core.set_num_threads(2) == 1
    assert cnn_core.get_num_threads() == 2


# ----------------------------------------------------------------------------- Hypothesis
@st.composite
def window_problems(draw, pooling):
    """A small (x, kh, kw, stride, pad) with at least one output pixel; for pooling, pad < window."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    pad = draw(st.integers(0, 2))
    low = pad + 1 if pooling else 1
    kh = draw(st.integers(low, max(low, min(shape[2] + 2 * pad, 5))))
    kw = draw(st.integers(low, max(low, min(shape[3] + 2 * pad, 5))))
    stride = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(DTYPES))
    # Few distinct values (ties), and for max pooling also NaN and +-inf.
    values = st.sampled_from([-2.0, -0.5, 0.0, 1.0, 3.0, np.inf, -np.inf, np.nan] if pooling
                             else [-2.0, -0.5, 0.0, 1.0, 3.0]) | st.floats(-10, 10, width=32)
    x = draw(hnp.arrays(dtype, shape, elements=values))
    return x, kh, kw, stride, pad


@given(window_problems(pooling=False))
def test_im2col_property(problem):
    x, kh, kw, stride, pad = problem
    cols = F.im2col(x, kh, kw, stride, pad)
    assert cols.dtype == x.dtype
    assert_array_equal(cols, im2col_ref(x, kh, kw, stride, pad))


@given(window_problems(pooling=True))
def test_maxpool2d_property(problem):
    x, kh, kw, stride, pad = problem
    out, argmax = F.maxpool2d_forward(x, kh, kw, stride, pad)
    out_ref, argmax_ref = maxpool2d_ref(x, kh, kw, stride, pad)
    assert out.dtype == x.dtype
    assert_array_equal(out, out_ref)
    assert_array_equal(argmax, argmax_ref)
