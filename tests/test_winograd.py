"""The Winograd F(2x2, 3x3) convolution (pyx/_winograd.pyx, functional._winograd_*).

Its transforms against NumPy's matrix form, their adjoint identities, the whole convolution
against the direct-loop reference (odd planes, pad 0-3, batch across several micro-batches,
float32/float64, non-contiguous and read-only input), a float64 gradient check, thread-count
independence, non-finite input, the ``algorithm`` argument and the layer's use of it.
"""
import zlib

import numpy as np
import pytest
from hypothesis import given, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from cnn_core import _winograd
from cnn_core import functional as F
from cnn_core.layers import Conv2D, Convolution

from _reference import conv2d_backward_ref, conv2d_ref
from gradcheck import assert_grad_close, numerical_grad
from test_kernels import LAYOUTS, with_layout

DTYPES = [np.float32, np.float64]
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# (x_shape, n_filters, pad): odd and even output planes, 1-wide planes, pad 0..3
CASES = [
    ((2, 4, 7, 5), 3, 1),      # odd OH and OW
    ((3, 5, 8, 8), 4, 1),      # even plane, the DeepConvNet shape in small
    ((2, 4, 6, 9), 2, 0),      # valid convolution, odd OW
    ((1, 6, 5, 5), 5, 2),      # pad 2 (DeepConvNet's fourth layer)
    ((2, 4, 3, 4), 3, 3),      # pad wider than the kernel: rows and columns of pure padding
    ((2, 4, 1, 1), 2, 1),      # 1x1 plane
    ((2, 4, 3, 3), 2, 0),      # 1x1 output: one tile, three quarters cropped
    ((1, 1, 6, 4), 2, 1),      # one input channel (forced: auto keeps im2col there)
    ((17, 4, 6, 6), 3, 1),     # several micro-batches, the last one short
    ((1, 4, 2, 2), 1, 1),      # one filter, one tile: (16, 1, 1) cells (review finding)
    ((3, 1, 3, 3), 1, 0),      # one channel and one filter, one tile
    ((1, 4, 3, 521), 2, 1),    # 261 tiles per row: rows cut into pieces
    ((1, 4, 40, 39), 2, 1),    # 20 tile rows of 20 tiles: two groups of whole rows
]


def case_id(case):
    shape, fn, pad = case
    return f"x{'x'.join(map(str, shape))}-f{fn}-p{pad}"


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def problem(case, dtype):
    shape, fn, pad = case
    rng = rng_for(case, np.dtype(dtype).name)
    x = rng.standard_normal(shape).astype(dtype)
    W = (0.5 * rng.standard_normal((fn, shape[1], 3, 3))).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    return x, W, b, pad


def cells(array3):
    """(16, rows, tiles) cells -> (rows, tiles, 4, 4)."""
    return array3.reshape(4, 4, *array3.shape[1:]).transpose(2, 3, 0, 1)


# ----------------------------------------------------------------------------- transforms
def tiles_of(xp, th, tw):
    """(N, C, HP, WP) padded planes -> (C, N*TH*TW, 4, 4) input tiles, in tile order."""
    n, c = xp.shape[:2]
    t = np.empty((c, n, th, tw, 4, 4), dtype=xp.dtype)
    for ty in range(th):
        for tx in range(tw):
            t[:, :, ty, tx] = xp[:, :, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4].transpose(1, 0, 2, 3)
    return t.reshape(c, n * th * tw, 4, 4)


@pytest.mark.parametrize("dtype", DTYPES)
# (20, 20): two groups of whole tile rows; (1, 300): one row cut into pieces
@pytest.mark.parametrize("th,tw", [(1, 1), (3, 5), (2, 40), (4, 33), (20, 20), (1, 300)])
def test_input_transform_is_bt_d_b(th, tw, dtype):
    rng = rng_for("input", th, tw)
    xp = rng.standard_normal((2, 3, 2 * th + 2, 2 * tw + 2)).astype(dtype)
    v = np.full((16, 3, 2 * th * tw), np.nan, dtype=dtype)
    _winograd.input_transform(xp, v, th, tw, 2)
    expected = BT @ tiles_of(xp.astype(np.float64), th, tw) @ BT.T
    assert_allclose(cells(v), expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
# 67: 34 tiles (one group of rows); 515, 1030: 258 and 515 tiles, rows cut into pieces
@pytest.mark.parametrize("out_h,out_w", [(1, 1), (4, 6), (5, 7), (3, 67), (3, 515), (2, 1030),
                                         (41, 40)])   # 21 tile rows of 20: two row groups
def test_output_transform_is_at_m_a_cropped(out_h, out_w, dtype):
    th, tw = (out_h + 1) // 2, (out_w + 1) // 2
    rng = rng_for("output", out_h, out_w)
    m = rng.standard_normal((16, 3, 2 * th * tw)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    out = np.full((2, 3, out_h, out_w), np.nan, dtype=dtype)
    _winograd.output_transform(m, b, out, th, tw, 2)
    y = AT @ cells(m.astype(np.float64)) @ AT.T                       # (3, T, 2, 2)
    full = y.reshape(3, 2, th, tw, 2, 2).transpose(1, 0, 2, 4, 3, 5).reshape(2, 3, 2 * th, 2 * tw)
    expected = full[:, :, :out_h, :out_w] + b[:, None, None]
    assert_allclose(out, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_h,out_w", [(1, 1), (4, 6), (5, 7), (3, 67), (3, 515), (2, 1030),
                                         (41, 40)])
def test_output_adjoint_is_the_transpose_of_output_transform(out_h, out_w, dtype):
    """<output_transform(m), dy> == <m, output_adjoint(dy)> (bias zero)."""
    th, tw = (out_h + 1) // 2, (out_w + 1) // 2
    rng = rng_for("oadj", out_h, out_w)
    m = rng.standard_normal((16, 3, 2 * th * tw))
    dy = rng.standard_normal((2, 3, out_h, out_w))
    y = np.empty_like(dy)
    _winograd.output_transform(m, np.zeros(3), y, th, tw, 1)
    dm = np.full(m.shape, np.nan, dtype=dtype)
    _winograd.output_adjoint(dy.astype(dtype), dm, th, tw, 2)
    assert_allclose(np.vdot(y, dy), np.vdot(m, dm.astype(np.float64)),
                    rtol=1e-5 if dtype is np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pad,th,tw", [((2, 3, 5, 7), 1, 3, 4), ((1, 2, 14, 14), 2, 8, 8),
                                             ((2, 2, 3, 70), 0, 1, 34), ((1, 2, 2, 2), 3, 3, 3),
                                             ((1, 2, 5, 517), 1, 3, 259),    # rows cut in pieces
                                             ((1, 1, 3, 1030), 0, 1, 514),
                                             ((1, 2, 40, 40), 1, 20, 20)])   # two row groups
def test_input_adjoint_is_the_transpose_of_input_transform(shape, pad, th, tw, dtype):
    """<input_transform(pad(x)), dv> == <x, input_adjoint(dv)>, through the crop."""
    n, c, h, w = shape
    hp, wp = 2 * th + 2, 2 * tw + 2
    rng = rng_for("iadj", shape, pad)
    x = rng.standard_normal(shape)
    xp = np.zeros((n, c, hp, wp))
    xp[:, :, pad:pad + h, pad:pad + w] = x
    v = np.empty((16, c, n * th * tw))
    _winograd.input_transform(xp, v, th, tw, 1)
    dv = rng.standard_normal(v.shape).astype(dtype)
    dx = np.full(shape, np.nan, dtype=dtype)
    acc = np.full((n, c, hp, wp), np.nan, dtype=dtype)   # scratch: the kernel clears it
    _winograd.input_adjoint(dv, acc, dx, pad, th, tw, 2)
    assert_allclose(np.vdot(v, dv.astype(np.float64)), np.vdot(x, dx.astype(np.float64)),
                    rtol=1e-5 if dtype is np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pad,hp,wp", [((3, 2, 7, 7), 1, 10, 10), ((2, 1, 5, 9), 0, 6, 12),
                                             ((1, 3, 2, 3), 3, 8, 9)])
def test_pad_planes_writes_the_window_and_nothing_else(shape, pad, hp, wp, dtype):
    rng = rng_for("pad", shape, pad)
    x = rng.standard_normal(shape).astype(dtype)
    xp = np.full((shape[0] + 1, shape[1], hp, wp), 7.0, dtype=dtype)
    _winograd.pad_planes(x, xp, pad, 2)
    expected = np.full_like(xp, 7.0)
    expected[:shape[0], :, pad:pad + shape[2], pad:pad + shape[3]] = x
    assert_array_equal(xp, expected)
    with pytest.raises(ValueError, match="cannot hold x"):
        _winograd.pad_planes(x, np.zeros((shape[0], shape[1], pad + shape[2] - 1, wp), dtype),
                             pad, 1)
    with pytest.raises(ValueError, match="cannot hold x"):
        _winograd.pad_planes(x, xp[:shape[0] - 1], pad, 1)


def test_cells_must_have_contiguous_rows():
    xp = np.zeros((1, 2, 4, 4))
    bad = np.zeros((16, 4, 1))[:, ::2]               # rows 2 apart: not (rows, tiles) contiguous
    with pytest.raises(ValueError, match=r"v must be \(16, rows, tiles\)"):
        _winograd.input_transform(xp, bad, 1, 1, 1)
    with pytest.raises(ValueError, match=r"dm must be \(16, rows, tiles\)"):
        _winograd.output_adjoint(np.zeros((1, 2, 2, 2)), np.zeros((8, 2, 1)), 1, 1, 1)


# ----------------------------------------------------------------------------- convolution
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_and_backward_match_the_reference(case, dtype, tol):
    x, W, b, pad = problem(case, dtype)
    out = F.conv2d_forward(x, W, b, 1, pad, algorithm="winograd")
    assert out.dtype == x.dtype and out.flags.c_contiguous
    assert_allclose(out, conv2d_ref(x, W, b, 1, pad), **tol(dtype, long_sum=True, scale=10))
    dout = rng_for("dout", case).standard_normal(out.shape).astype(dtype)
    got = F.conv2d_backward(dout, x, W, 1, pad, algorithm="winograd")
    for name, g, r in zip(("dx", "dW", "db"), got, conv2d_backward_ref(dout, x, W, 1, pad)):
        assert g.dtype == x.dtype and g.shape == r.shape, name
        assert_allclose(g, r, err_msg=name, **tol(dtype, long_sum=True, scale=10))


def test_backward_without_dx():
    x, W, b, pad = problem(CASES[1], np.float64)
    dout = np.cos(F.conv2d_forward(x, W, b, 1, pad))
    dx, dW, db = F.conv2d_backward(dout, x, W, 1, pad, need_dx=False, algorithm="winograd")
    full = F.conv2d_backward(dout, x, W, 1, pad, algorithm="winograd")
    assert dx is None
    assert_array_equal(dW, full[1])
    assert_array_equal(db, full[2])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_noncontiguous_and_readonly_input(layout, tol):
    x, W, b, pad = problem(CASES[0], np.float32)
    dout = rng_for("layout").standard_normal((2, 3, 7, 5)).astype(np.float32)
    args = [with_layout(a, layout) for a in (x, W, dout)]
    before = [np.array(a) for a in args]
    out = F.conv2d_forward(args[0], args[1], b, 1, pad, algorithm="winograd")
    grads = F.conv2d_backward(args[2], args[0], args[1], 1, pad, algorithm="winograd")
    assert_allclose(out, conv2d_ref(x, W, b, 1, pad), **tol(np.float32, long_sum=True, scale=10))
    for g, r in zip(grads, conv2d_backward_ref(dout, x, W, 1, pad)):
        assert_allclose(g, r, **tol(np.float32, long_sum=True, scale=10))
    for a, c in zip(args, before):
        assert_array_equal(a, c)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[4]], ids=case_id)
def test_gradcheck_float64(case):
    x, W, b, pad = problem(case, np.float64)
    out = F.conv2d_forward(x, W, b, 1, pad, algorithm="winograd")
    dout = rng_for("gc", case).standard_normal(out.shape)
    dx, dW, db = F.conv2d_backward(dout, x, W, 1, pad, algorithm="winograd")

    def loss(x_, W_, b_):
        return np.sum(F.conv2d_forward(x_, W_, b_, 1, pad, algorithm="winograd") * dout)

    assert_grad_close(dx, numerical_grad(lambda v: loss(v, W, b), x), "dx")
    assert_grad_close(dW, numerical_grad(lambda v: loss(x, v, b), W), "dW")
    assert_grad_close(db, numerical_grad(lambda v: loss(x, W, v), b), "db")


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_do_not_depend_on_n_threads(dtype):
    """The micro-batch grid depends on shapes only: 1, 2 and 3 threads give the same bits."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((37, 8, 9, 10)).astype(dtype)
    W = rng.standard_normal((6, 8, 3, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    dout = rng.standard_normal((37, 6, 9, 10)).astype(dtype)
    runs = [(F.conv2d_forward(x, W, b, 1, 1, algorithm="winograd", n_threads=t),)
            + F.conv2d_backward(dout, x, W, 1, 1, algorithm="winograd", n_threads=t)
            for t in (1, 2, 3)]
    for other in runs[1:]:
        for a, c in zip(runs[0], other):
            assert_array_equal(a, c)


def test_weight_gradient_groups_many_micro_batches(monkeypatch):
    """With more micro-batches than the terms' memory allows (small cell buffers: one sample
    each; no room for terms beyond the minimum of WINOGRAD_DU_GROUPS), the weight-gradient
    terms are summed in fixed groups: memory for 8 terms, not 41; the gradients still match
    im2col and do not depend on the thread count."""
    monkeypatch.setattr(F, "WINOGRAD_BUFFER_BYTES", 1)
    monkeypatch.setattr(F, "WINOGRAD_DU_BYTES", 1)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((41, 8, 6, 7))
    W = rng.standard_normal((5, 8, 3, 3))
    dout = rng.standard_normal((41, 5, 6, 7))
    assert F._WinogradPlan(x.shape, 5, 1, 6, 7, 8).n_micro == 41 > F.WINOGRAD_DU_GROUPS
    allocated = []
    real_empty = np.empty
    monkeypatch.setattr(F.np, "empty", lambda shape, *a, **k: allocated.append(shape)
                        or real_empty(shape, *a, **k))
    runs = [F.conv2d_backward(dout, x, W, 1, 1, algorithm="winograd", n_threads=t)
            for t in (1, 2, 3)]
    monkeypatch.setattr(F.np, "empty", real_empty)
    assert (F.WINOGRAD_DU_GROUPS, 16, 5, 8) in allocated
    assert not any(len(s) == 4 and s[1:] == (16, 5, 8) and s[0] > F.WINOGRAD_DU_GROUPS
                   for s in allocated if isinstance(s, tuple))
    ref = F.conv2d_backward(dout, x, W, 1, 1, algorithm="im2col")
    for got, want in zip(runs[0], ref):
        assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    for other in runs[1:]:
        for a, c in zip(runs[0], other):
            assert_array_equal(a, c)


def test_plan_uses_several_micro_batches_and_separates_cells():
    plan = F._WinogradPlan((100, 32, 14, 14), 32, 2, 16, 16, 4)
    sizes = np.diff(plan.bounds)
    assert plan.n_micro >= 8 and len(sizes) == plan.n_micro and sizes.sum() == 100
    assert sizes.max() - sizes.min() <= 1 and plan.step == sizes.max()   # threads share evenly
    assert F._WinogradPlan((3, 32, 14, 14), 32, 2, 16, 16, 4).bounds == [0, 1, 2, 3]
    buf = plan.cells(32, np.dtype(np.float32))
    assert (buf.strides[0] // 64) % 2 == 1         # an odd number of cache lines apart
    assert plan.view(buf, 32, plan.step).shape == (16, 32, plan.step * plan.tiles)


def test_non_finite_input_gives_non_finite_output_at_the_same_places():
    """An inf or NaN reaches exactly the outputs whose windows hold it (inf may become NaN:
    the transforms subtract inputs)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 8, 7))
    W = rng.standard_normal((3, 4, 3, 3))
    b = rng.standard_normal(3)
    x[0, 1, 2, 3] = np.inf
    x[1, 0, 7, 0] = -np.inf
    x[1, 3, 4, 4] = np.nan
    got = F.conv2d_forward(x, W, b, 1, 1, algorithm="winograd")
    ref = F.conv2d_forward(x, W, b, 1, 1, algorithm="im2col")
    assert_array_equal(np.isfinite(got), np.isfinite(ref))
    finite = np.isfinite(ref)
    assert_allclose(got[finite], ref[finite], rtol=1e-12, atol=1e-12)
    with np.errstate(invalid="ignore"):          # inf - inf in dW, as expected
        dx, dW, db = F.conv2d_backward(np.ones_like(got), x, W, 1, 1, algorithm="winograd")
    assert np.isfinite(dx).all() and np.isfinite(db).all()
    assert not np.isfinite(dW).all()


# ----------------------------------------------------------------------------- selection
def test_auto_picks_winograd_for_3x3_stride_1_with_enough_channels(monkeypatch):
    calls = []
    original = F._winograd_forward
    monkeypatch.setattr(F, "_winograd_forward", lambda *a: calls.append(a) or original(*a))
    rng = np.random.default_rng(0)
    b = np.zeros(2)
    for channels, k, stride, expected in [(F.WINOGRAD_MIN_CHANNELS, 3, 1, 1),
                                          (F.WINOGRAD_MIN_CHANNELS - 1, 3, 1, 0),
                                          (8, 5, 1, 0), (8, 3, 2, 0)]:
        calls.clear()
        x = rng.standard_normal((1, channels, 6, 6))
        F.conv2d_forward(x, rng.standard_normal((2, channels, k, k)), b, stride, 1)
        assert len(calls) == expected, (channels, k, stride)


def test_auto_runs_one_filter_one_tile_layers(tol):
    """(16, 1, 1) cell arrays: NumPy gives their length-1 axes arbitrary strides."""
    rng = np.random.default_rng(2)
    c = F.WINOGRAD_MIN_CHANNELS
    for n in (1, 8, 9):
        x = rng.standard_normal((n, c, 2, 2))
        W = rng.standard_normal((1, c, 3, 3))
        out = F.conv2d_forward(x, W, np.zeros(1), 1, 1)
        assert_allclose(out, conv2d_ref(x, W, np.zeros(1), 1, 1), rtol=1e-12, atol=1e-12)
        dx, dW, db = F.conv2d_backward(np.ones_like(out), x, W, 1, 1)
        for g, r in zip((dx, dW, db), conv2d_backward_ref(np.ones_like(out), x, W, 1, 1)):
            assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_auto_and_im2col_agree(tol):
    x, W, b, pad = problem(((3, F.WINOGRAD_MIN_CHANNELS, 8, 8), 4, 1), np.float32)
    auto = F.conv2d_forward(x, W, b, 1, pad)          # Winograd
    assert_allclose(auto, F.conv2d_forward(x, W, b, 1, pad, algorithm="im2col"),
                    **tol(np.float32, long_sum=True, scale=10))


@pytest.mark.parametrize("algorithm,W_shape,stride,match", [
    ("fast", (2, 4, 3, 3), 1, r"algorithm must be one of 'auto', 'im2col', 'winograd', got 'fast'"),
    (None, (2, 4, 3, 3), 1, r"algorithm must be one of .* got None"),
    ("winograd", (2, 4, 5, 5), 1, r"needs a 3x3 filter and stride 1, got a 5x5 filter"),
    ("winograd", (2, 4, 3, 3), 2, r"needs a 3x3 filter and stride 1, got a 3x3 filter and stride 2"),
])
def test_bad_algorithm_is_a_clear_error(algorithm, W_shape, stride, match):
    x = np.zeros((1, 4, 6, 6))
    W = np.zeros(W_shape)
    with pytest.raises(ValueError, match=match):
        F.conv2d_forward(x, W, np.zeros(2), stride, 1, algorithm=algorithm)
    with pytest.raises(ValueError, match=match):
        side = F.conv_output_size(6, W_shape[2], stride, 1)
        F.conv2d_backward(np.zeros((1, 2, side, side)), x, W, stride, 1, algorithm=algorithm)
    with pytest.raises(ValueError, match=match):
        Convolution(W, np.zeros(2), stride, 1, algorithm=algorithm)
    with pytest.raises(ValueError, match=match):
        Conv2D(2, W_shape[2], stride, 1, algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["im2col", "winograd"])
def test_layer_passes_its_algorithm_down(monkeypatch, algorithm):
    seen = []
    for name in ("conv2d_forward", "conv2d_backward"):
        original = getattr(F, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(kwargs["algorithm"])
            return _original(*args, **kwargs)
        monkeypatch.setattr(F, name, spy)
    rng = np.random.default_rng(0)
    layer = Convolution(rng.standard_normal((2, 4, 3, 3)), np.zeros(2), 1, 1, algorithm=algorithm)
    out = layer.forward(rng.standard_normal((2, 4, 5, 5)))
    layer.backward(np.ones_like(out))
    assert seen == [algorithm, algorithm]
    assert layer.get_config()["algorithm"] == algorithm


# ----------------------------------------------------------------------------- property
@st.composite
def winograd_problems(draw):
    """Small random 3x3 stride-1 convolutions (any pad that leaves an output)."""
    n, c, fn = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    pad = draw(st.integers(0, 3))
    h = draw(st.integers(max(1, 3 - 2 * pad), 9))
    w = draw(st.integers(max(1, 3 - 2 * pad), 9))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return (n, c, h, w), fn, pad, seed


@given(winograd_problems())
def test_winograd_equals_im2col_on_random_shapes(problem):
    """Both algorithms, float64: forward and all three gradients agree to rounding."""
    shape, fn, pad, seed = problem
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    W = rng.standard_normal((fn, shape[1], 3, 3))
    b = rng.standard_normal(fn)
    out = F.conv2d_forward(x, W, b, 1, pad, algorithm="winograd")
    ref = F.conv2d_forward(x, W, b, 1, pad, algorithm="im2col")
    assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    got = F.conv2d_backward(dout, x, W, 1, pad, algorithm="winograd")
    want = F.conv2d_backward(dout, x, W, 1, pad, algorithm="im2col")
    for g, r in zip(got, want):
        assert_allclose(g, r, rtol=1e-10, atol=1e-10)
