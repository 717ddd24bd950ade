"""Bad input to cnn_core.functional: a ValueError/TypeError naming the argument and the value.

Dtype rule (cnn_core._dtype), checked here too: float32 and float64 are kept;
float16 is converted to float32; ints, unsigned ints and bools (and Python
lists of numbers) are converted to float64; complex, object and string input
is refused with a TypeError.
"""
import re

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import cnn_core
from cnn_core import functional as F

from _reference import im2col_ref, maxpool2d_ref, out_size

X_SHAPE = (2, 3, 7, 5)


def ones(shape=X_SHAPE, dtype=np.float64):
    return np.ones(shape, dtype=dtype)


def word(name):
    """A regex matching ``name`` as a whole word (so "x" does not match inside "newaxis")."""
    return rf"(?<![\w.]){re.escape(name)}(?!\w)"


# Each entry: name -> function(x) calling the wrapper with x as its main array input,
# every other argument valid.  Used for the checks shared by all of them.
def _conv_fwd(x):
    return F.conv2d_forward(x, ones((4, 3, 3, 3)), np.zeros(4), 1, 1)


def _bn_fwd(x):
    c = x.shape[1] if np.ndim(x) > 1 else 1
    return F.batchnorm_forward(x, np.ones(c), np.zeros(c), np.zeros(c), np.ones(c))


def _bn_bwd(x):
    c = x.shape[1] if np.ndim(x) > 1 else 1
    return F.batchnorm_backward(np.ones(np.shape(x)), x, np.ones(c), np.zeros(c), np.ones(c))


X_CALLS = {
    "im2col": lambda x: F.im2col(x, 3, 3, 1, 1),
    "conv2d_forward": _conv_fwd,
    "maxpool2d_forward": lambda x: F.maxpool2d_forward(x, 2, 2, 2, 0),
    "avgpool2d_forward": lambda x: F.avgpool2d_forward(x, 3, 3, 1, 1),
    "batchnorm_stats": lambda x: F.batchnorm_stats(x),
    "batchnorm_forward": _bn_fwd,
    "batchnorm_backward": _bn_bwd,
}


# ----------------------------------------------------------------------------- ndim
@pytest.mark.parametrize("name", sorted(X_CALLS))
@pytest.mark.parametrize("shape", [(3, 7, 5), (1, 2, 3, 7, 5)], ids=["3d", "5d"])
def test_wrong_ndim_of_x(name, shape):
    with pytest.raises(ValueError, match=word("x") + r".*" + re.escape(str(shape))):
        X_CALLS[name](np.ones(shape))


def test_wrong_ndim_of_other_arrays():
    x = ones()
    with pytest.raises(ValueError, match=word("W") + r".*\(4, 3, 3\)"):
        F.conv2d_forward(x, ones((4, 3, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=word("cols") + r".*\(6, 7, 8\)"):
        F.col2im(np.ones((6, 7, 8)), X_SHAPE, 3, 3)
    with pytest.raises(ValueError, match=word("dout") + r".*\(2, 4, 7\)"):
        F.conv2d_backward(np.ones((2, 4, 7)), ones(), ones((4, 3, 3, 3)), 1, 1)
    with pytest.raises(ValueError, match=word("dout") + r".*\(2, 3, 3\)"):
        F.maxpool2d_backward(np.ones((2, 3, 3)), np.zeros((2, 3, 3), np.intp), X_SHAPE)
    with pytest.raises(ValueError, match=word("dout") + r".*\(2, 3, 7\)"):
        F.avgpool2d_backward(np.ones((2, 3, 7)), X_SHAPE, 3, 3, 1, 1)
    with pytest.raises(ValueError, match=word("x") + r".*\(2, 3, 7\)"):
        F.batchnorm_stats(np.ones((2, 3, 7)))


# ----------------------------------------------------------------------------- dtype
BAD_DTYPES = [
    (np.complex128, "complex128"),
    (np.complex64, "complex64"),
    (object, "object"),
    ("U3", "<U3"),
]


@pytest.mark.parametrize("name", sorted(X_CALLS))
@pytest.mark.parametrize("bad, shown", BAD_DTYPES, ids=[s for _, s in BAD_DTYPES])
def test_non_real_dtype_is_a_type_error(name, bad, shown):
    x = np.ones(X_SHAPE).astype(bad)
    with pytest.raises(TypeError, match=word("x") + r".*" + re.escape(shown)):
        X_CALLS[name](x)


def test_non_real_dtype_of_other_arrays():
    x = ones()
    W, b = ones((4, 3, 3, 3)), np.zeros(4)
    with pytest.raises(TypeError, match=word("W") + ".*complex128"):
        F.conv2d_forward(x, W.astype(complex), b)
    with pytest.raises(TypeError, match=word("b") + ".*object"):
        F.conv2d_forward(x, W, b.astype(object))
    with pytest.raises(TypeError, match=word("cols") + ".*complex128"):
        F.col2im(np.ones((70, 27), complex), X_SHAPE, 3, 3, 1, 1)
    with pytest.raises(TypeError, match=word("dout") + ".*complex128"):
        F.maxpool2d_backward(np.ones((2, 3, 3, 2), complex), np.zeros((2, 3, 3, 2), np.intp),
                             X_SHAPE)
    with pytest.raises(TypeError, match=word("dout") + ".*<U1"):
        F.avgpool2d_backward(np.full((2, 3, 7, 5), "a"), X_SHAPE, 3, 3, 1, 1)
    with pytest.raises(TypeError, match=word("gamma") + ".*complex128"):
        F.batchnorm_forward(x, np.ones(3, complex), np.zeros(3), np.zeros(3), np.ones(3))


CONVERTED = [  # input dtype -> output dtype, the documented rule
    (np.int64, np.float64), (np.int32, np.float64), (np.uint8, np.float64),
    (np.bool_, np.float64), (np.float16, np.float32),
    (np.float32, np.float32), (np.float64, np.float64),
]


@pytest.mark.parametrize("in_dtype, out_dtype", CONVERTED, ids=[np.dtype(d).name for d, _ in CONVERTED])
def test_ints_bools_and_float16_are_converted(in_dtype, out_dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=X_SHAPE).astype(in_dtype)
    x64 = x.astype(np.float64)

    cols = F.im2col(x, 3, 3, 1, 1)
    assert cols.dtype == out_dtype
    assert_array_equal(cols, im2col_ref(x64, 3, 3, 1, 1))

    out, argmax = F.maxpool2d_forward(x, 3, 3, 2, 1)
    assert out.dtype == out_dtype
    out_ref, argmax_ref = maxpool2d_ref(x64, 3, 3, 2, 1)
    assert_array_equal(out, out_ref)
    assert_array_equal(argmax, argmax_ref)

    assert F.avgpool2d_forward(x, 2, 2, 2, 0).dtype == out_dtype
    assert F.col2im(cols, X_SHAPE, 3, 3, 1, 1).dtype == out_dtype
    assert F.maxpool2d_backward(out, argmax, X_SHAPE).dtype == out_dtype
    dout = F.avgpool2d_forward(x, 2, 2, 2, 0)
    assert F.avgpool2d_backward(dout, X_SHAPE, 2, 2, 2, 0).dtype == out_dtype

    # All arrays of one call are brought to one dtype: x, W and b all of in_dtype here.
    W, b = np.ones((4, 3, 3, 3), in_dtype), np.zeros(4, in_dtype)
    out = F.conv2d_forward(x, W, b, 1, 1)
    assert out.dtype == out_dtype
    dx, dW, db = F.conv2d_backward(out, x, W, 1, 1)
    assert dx.dtype == dW.dtype == db.dtype == out_dtype

    mean, var = F.batchnorm_stats(x)
    assert mean.dtype == var.dtype == np.float64   # statistics are always float64
    g = np.ones(3, in_dtype)
    y, inv_std = F.batchnorm_forward(x, g, np.zeros(3, in_dtype), mean, var)
    assert y.dtype == out_dtype
    dx, dgamma, dbeta = F.batchnorm_backward(y, x, g, mean, inv_std)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == out_dtype


def test_python_lists_are_converted_to_float64():
    x = np.arange(2 * 1 * 4 * 4).reshape(2, 1, 4, 4).tolist()
    out, _ = F.maxpool2d_forward(x, 2, 2, 2, 0)
    assert out.dtype == np.float64
    assert_array_equal(out[0, 0], [[5.0, 7.0], [13.0, 15.0]])


def test_mixed_float_dtypes_promote_to_float64():
    x = ones(dtype=np.float32)
    out = F.conv2d_forward(x, ones((4, 3, 3, 3)), np.zeros(4, np.float32), 1, 1)
    assert out.dtype == np.float64


# ----------------------------------------------------------------------------- convolution shapes
def test_mismatched_channels_between_x_and_W():
    with pytest.raises(ValueError, match=word("W") + r" has 2 input channels.*" + word("x") + " has 3"):
        F.conv2d_forward(ones(), ones((4, 2, 3, 3)), np.zeros(4))


@pytest.mark.parametrize("b_shape", [(3,), (5,), (4, 1), (), (1, 4)], ids=str)
def test_b_of_wrong_shape(b_shape):
    # b_shape=() FAILS (bug 2 of the report): as_float_array uses np.ascontiguousarray, which
    # turns a 0-d array into shape (1,), so the message says "got (1,)" instead of "got ()"
    # (and a scalar b is silently accepted when W has a single filter).
    with pytest.raises(ValueError, match=word("b") + r" must have shape \(4,\).*got " + re.escape(str(b_shape))):
        F.conv2d_forward(ones(), ones((4, 3, 3, 3)), np.zeros(b_shape))


@pytest.mark.parametrize("name", ["im2col", "batchnorm_stats"])
def test_zero_d_input_reports_its_real_shape(name):
    """A 0-d x must be reported as shape (), not as the (1,) that np.ascontiguousarray makes of it.

    FAILS (bug 2 of the report): cnn_core._dtype.as_float_array promotes 0-d arrays to 1-d.
    """
    with pytest.raises(ValueError, match=word("x") + r".*got shape \(\)"):
        X_CALLS[name](np.array(3.0))


def test_W_with_a_zero_size_dimension():
    with pytest.raises(ValueError, match=word("W") + r".*zero-size.*\(0, 3, 3, 3\)"):
        F.conv2d_forward(ones(), ones((0, 3, 3, 3)), np.zeros(0))


def test_conv2d_backward_shape_mismatches():
    x, W, b = ones(), ones((4, 3, 3, 3)), np.zeros(4)
    out = F.conv2d_forward(x, W, b, 1, 1)
    with pytest.raises(ValueError, match=word("dout") + r" must have shape \(2, 4, 7, 5\).*"
                       r"got \(2, 5, 7, 5\)"):
        F.conv2d_backward(np.ones((2, 5, 7, 5)), x, W, 1, 1)
    with pytest.raises(ValueError, match=word("dout") + r" must have shape.*got \(2, 4, 7, 4\)"):
        F.conv2d_backward(out[..., :-1], x, W, 1, 1)
    with pytest.raises(ValueError, match=word("W") + r" has 3 input channels.*" + word("x")):
        F.conv2d_backward(out, x[:, :2], W, 1, 1)


# ----------------------------------------------------------------------------- hyper-parameters
BAD_INTS = [  # value, error type, how the value is shown
    (0, ValueError, "0"), (-1, ValueError, "-1"), (-3, ValueError, "-3"),
    (1.5, TypeError, "1.5"), (2.0, TypeError, "2.0"), (True, TypeError, "True"),
    (np.True_, TypeError, repr(np.True_)), ("2", TypeError, "'2'"), (None, TypeError, "None"),
]

# name -> function(**{argument: value}) with every other argument valid.
HYPER_CALLS = {
    "im2col": lambda **kw: F.im2col(ones(), **{"kernel_h": 3, "kernel_w": 3, "stride": 1, "pad": 1, **kw}),
    "col2im": lambda **kw: F.col2im(np.ones((70, 27)), X_SHAPE,
                                     **{"kernel_h": 3, "kernel_w": 3, "stride": 1, "pad": 1, **kw}),
    "conv2d_forward": lambda **kw: F.conv2d_forward(ones(), ones((4, 3, 3, 3)), np.zeros(4),
                                                    **{"stride": 1, "pad": 1, **kw}),
    "conv2d_backward": lambda **kw: F.conv2d_backward(
        np.ones((2, 4, 7, 5)), ones(), ones((4, 3, 3, 3)), **{"stride": 1, "pad": 1, **kw}),
    "maxpool2d_forward": lambda **kw: F.maxpool2d_forward(
        ones(), **{"pool_h": 3, "pool_w": 3, "stride": 1, "pad": 1, **kw}),
    "avgpool2d_forward": lambda **kw: F.avgpool2d_forward(
        ones(), **{"pool_h": 3, "pool_w": 3, "stride": 1, "pad": 1, **kw}),
    "avgpool2d_backward": lambda **kw: F.avgpool2d_backward(
        np.ones((2, 3, 7, 5)), X_SHAPE, **{"pool_h": 3, "pool_w": 3, "stride": 1, "pad": 1, **kw}),
}
KERNEL_ARGS = {"im2col": ("kernel_h", "kernel_w"), "col2im": ("kernel_h", "kernel_w"),
               "maxpool2d_forward": ("pool_h", "pool_w"), "avgpool2d_forward": ("pool_h", "pool_w"),
               "avgpool2d_backward": ("pool_h", "pool_w")}


def _bad_value_match(arg, shown):
    return word(arg) + r".*got " + re.escape(shown)


@pytest.mark.parametrize("value, error, shown", BAD_INTS, ids=[repr(v) for v, _, _ in BAD_INTS])
@pytest.mark.parametrize("name", sorted(HYPER_CALLS))
def test_bad_stride(name, value, error, shown):
    with pytest.raises(error, match=_bad_value_match("stride", shown)):
        HYPER_CALLS[name](stride=value)


@pytest.mark.parametrize("value, error, shown",
                         [(-1, ValueError, "-1"), (-2, ValueError, "-2"), (1.0, TypeError, "1.0"),
                          (True, TypeError, "True"), (None, TypeError, "None")], ids=repr)
@pytest.mark.parametrize("name", sorted(HYPER_CALLS))
def test_bad_pad(name, value, error, shown):
    with pytest.raises(error, match=_bad_value_match("pad", shown)):
        HYPER_CALLS[name](pad=value)


@pytest.mark.parametrize("value, error, shown", BAD_INTS[:6], ids=[repr(v) for v, _, _ in BAD_INTS[:6]])
@pytest.mark.parametrize("name", sorted(KERNEL_ARGS))
def test_bad_window_size(name, value, error, shown):
    for arg in KERNEL_ARGS[name]:
        with pytest.raises(error, match=_bad_value_match(arg, shown)):
            HYPER_CALLS[name](**{arg: value})


@pytest.mark.parametrize("kh, kw", [(10, 3), (3, 8), (12, 12)])
@pytest.mark.parametrize("name", sorted(HYPER_CALLS))
def test_window_larger_than_padded_input(name, kh, kw):
    """With pad=1 the padded input is 9x7."""
    if name in KERNEL_ARGS:
        a, b = KERNEL_ARGS[name]
        call = lambda: HYPER_CALLS[name](**{a: kh, b: kw, "pad": 1})  # noqa: E731
    elif name == "conv2d_forward":
        call = lambda: F.conv2d_forward(ones(), ones((4, 3, kh, kw)), np.zeros(4), 1, 1)  # noqa: E731
    else:  # conv2d_backward: the window comes from W, the input size from x_shape
        call = lambda: F.conv2d_backward(np.ones((2, 4, 1, 1)), ones(),  # noqa: E731
                                         ones((4, 3, kh, kw)), 1, 1)
    with pytest.raises(ValueError, match=rf"(kernel|pooling window) {kh}x{kw} is larger than "
                                         r"the padded input 9x7"):
        call()


@pytest.mark.parametrize("pool_h, pool_w, pad", [(2, 2, 2), (3, 3, 3), (3, 2, 2), (1, 1, 1)])
@pytest.mark.parametrize("name", ["maxpool2d_forward", "avgpool2d_forward", "avgpool2d_backward"])
def test_pad_not_smaller_than_pooling_window(name, pool_h, pool_w, pad):
    with pytest.raises(ValueError, match=word("pad") + rf".*{pool_h}x{pool_w}.*pad={pad}"):
        HYPER_CALLS[name](pool_h=pool_h, pool_w=pool_w, pad=pad)


def test_pad_may_exceed_a_convolution_window():
    """Unlike pooling, a convolution may pad by more than its window (rows of zeros)."""
    assert F.im2col(ones(), 1, 1, 1, 2).shape == (2 * 11 * 9, 3)


# ----------------------------------------------------------------------------- empty input
EMPTY_SHAPES = {
    "empty batch": ((0, 3, 7, 5), "empty batch"),
    "zero channels": ((2, 0, 7, 5), "zero-size"),
    "zero height": ((2, 3, 0, 5), "zero-size"),
    "zero width": ((2, 3, 7, 0), "zero-size"),
}


@pytest.mark.parametrize("which", sorted(EMPTY_SHAPES))
@pytest.mark.parametrize("name", sorted(X_CALLS))
def test_empty_input(name, which):
    """N=0 or any zero-size dim: a ValueError naming x and its shape (not numpy's reshape error).

    FAILS for batchnorm_* with N=0 or C=0 on 4-D x (bug 1 of the report): functional._bn_view
    calls x.reshape(N, C, -1) before _check_batch, and numpy cannot infer -1 for a size-0 array,
    so the user sees "cannot reshape array of size 0 into shape (0,3,newaxis)".
    """
    shape, what = EMPTY_SHAPES[which]
    with pytest.raises(ValueError, match=word("x") + rf".*{what}.*" + re.escape(str(shape))):
        X_CALLS[name](np.ones(shape))


@pytest.mark.parametrize("shape, what", [((0, 4), "empty batch"), ((3, 0), "zero-size")], ids=str)
@pytest.mark.parametrize("name", ["batchnorm_stats", "batchnorm_forward", "batchnorm_backward"])
def test_empty_2d_batchnorm_input(name, shape, what):
    with pytest.raises(ValueError, match=word("x") + rf".*{what}.*" + re.escape(str(shape))):
        X_CALLS[name](np.ones(shape))


# ----------------------------------------------------------------------------- n_threads
N_THREADS_CALLS = {   # name -> function(n_threads), every other argument valid
    "im2col": lambda t: F.im2col(ones(), 3, 3, 1, 1, n_threads=t),
    "col2im": lambda t: F.col2im(np.ones((70, 27)), X_SHAPE, 3, 3, 1, 1, n_threads=t),
    "conv2d_forward": lambda t: F.conv2d_forward(ones(), ones((4, 3, 3, 3)), np.zeros(4), 1, 1,
                                                 n_threads=t),
    "conv2d_backward": lambda t: F.conv2d_backward(np.ones((2, 4, 7, 5)), ones(),
                                                   ones((4, 3, 3, 3)), 1, 1, n_threads=t),
    "maxpool2d_forward": lambda t: F.maxpool2d_forward(ones(), 3, 3, 1, 1, n_threads=t),
    "maxpool2d_backward": lambda t: F.maxpool2d_backward(np.ones((2, 3, 7, 5)),
                                                         np.zeros((2, 3, 7, 5), np.intp), X_SHAPE,
                                                         n_threads=t),
    "avgpool2d_forward": lambda t: F.avgpool2d_forward(ones(), 3, 3, 1, 1, n_threads=t),
    "avgpool2d_backward": lambda t: F.avgpool2d_backward(np.ones((2, 3, 7, 5)), X_SHAPE, 3, 3, 1, 1,
                                                         n_threads=t),
    "batchnorm_stats": lambda t: F.batchnorm_stats(ones(), n_threads=t),
    "batchnorm_forward": lambda t: F.batchnorm_forward(ones(), np.ones(3), np.zeros(3), np.zeros(3),
                                                       np.ones(3), n_threads=t),
    "batchnorm_backward": lambda t: F.batchnorm_backward(ones(), ones(), np.ones(3), np.zeros(3),
                                                         np.ones(3), n_threads=t),
}


@pytest.mark.parametrize("value, error, shown",
                         [(0, ValueError, "0"), (-2, ValueError, "-2"), (1.0, TypeError, "1.0"),
                          (True, TypeError, "True")], ids=repr)
@pytest.mark.parametrize("name", sorted(N_THREADS_CALLS))
def test_bad_n_threads(name, value, error, shown):
    with pytest.raises(error, match=_bad_value_match("n_threads", shown)):
        N_THREADS_CALLS[name](value)


@pytest.mark.parametrize("name", sorted(N_THREADS_CALLS))
def test_valid_calls_of_the_n_threads_table(name):
    """The table above is valid apart from n_threads (so the errors are really about it)."""
    N_THREADS_CALLS[name](1)


@pytest.mark.parametrize("value, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                          ("2", TypeError)], ids=repr)
def test_bad_set_num_threads(value, error, restore_num_threads):
    before = cnn_core.get_num_threads()
    with pytest.raises(error, match=r"\bn\b.*got " + re.escape(repr(value))):
        cnn_core.set_num_threads(value)
    assert cnn_core.get_num_threads() == before


# ----------------------------------------------------------------------------- max-pool argmax
def _pool():
    x = np.random.default_rng(0).standard_normal(X_SHAPE)
    return F.maxpool2d_forward(x, 3, 3, 2, 1)


@pytest.mark.parametrize("bad", ["int32", "float64", "uint64", "shape", "3d"])
def test_bad_argmax_dtype_or_shape(bad):
    out, argmax = _pool()
    argmax = {"int32": argmax.astype(np.int32), "float64": argmax.astype(np.float64),
              "uint64": argmax.astype(np.uint64), "shape": argmax[:, :, :-1],
              "3d": argmax[0]}[bad]
    with pytest.raises(ValueError, match=word("argmax") + r".*intp.*got " + re.escape(str(argmax.dtype))
                       + r" " + re.escape(str(argmax.shape))):
        F.maxpool2d_backward(out, argmax, X_SHAPE)


@pytest.mark.parametrize("index", [-1, 35, 10**6])
def test_argmax_out_of_the_plane(index):
    out, argmax = _pool()
    argmax = argmax.copy()
    argmax[1, 2, 0, 1] = index
    with pytest.raises(ValueError, match=word("argmax") + r".*outside an 7x5 plane"):
        F.maxpool2d_backward(out, argmax, X_SHAPE)


def test_maxpool_backward_dout_and_x_shape_disagree():
    out, argmax = _pool()
    with pytest.raises(ValueError, match=word("dout") + r" shape \(2, 3, 4, 3\).*" + word("x_shape")):
        F.maxpool2d_backward(out, argmax, (2, 4, 7, 5))


# ----------------------------------------------------------------------------- x_shape
BAD_X_SHAPES = [
    ((2, 3, 7), ValueError), ((2, 3, 7, 5, 1), ValueError), ((2, 3, 0, 5), ValueError),
    ((0, 3, 7, 5), ValueError), ((2, -3, 7, 5), ValueError), ((2, 3, 7.0, 5), TypeError),
    (None, TypeError), ("abcd", TypeError), (7, TypeError),
]
X_SHAPE_CALLS = {
    "col2im": lambda s: F.col2im(np.ones((70, 27)), s, 3, 3, 1, 1),
    "maxpool2d_backward": lambda s: F.maxpool2d_backward(np.ones((2, 3, 7, 5)),
                                                         np.zeros((2, 3, 7, 5), np.intp), s),
    "avgpool2d_backward": lambda s: F.avgpool2d_backward(np.ones((2, 3, 7, 5)), s, 3, 3, 1, 1),
}


@pytest.mark.parametrize("shape, error", BAD_X_SHAPES, ids=[repr(s) for s, _ in BAD_X_SHAPES])
@pytest.mark.parametrize("name", sorted(X_SHAPE_CALLS))
def test_bad_x_shape(name, shape, error):
    with pytest.raises(error, match=word("x_shape") + r".*got " + re.escape(repr(shape))):
        X_SHAPE_CALLS[name](shape)


@pytest.mark.parametrize("name", sorted(X_SHAPE_CALLS))
def test_valid_calls_of_the_x_shape_table(name):
    X_SHAPE_CALLS[name](X_SHAPE)


def test_x_shape_that_does_not_fit_cols_or_dout():
    with pytest.raises(ValueError, match=word("cols") + r" must have shape \(70, 27\).*got \(69, 27\)"):
        F.col2im(np.ones((69, 27)), X_SHAPE, 3, 3, 1, 1)
    with pytest.raises(ValueError, match=word("dout") + r" must have shape \(2, 3, 7, 5\).*got \(2, 3, 7, 4\)"):
        F.avgpool2d_backward(np.ones((2, 3, 7, 4)), X_SHAPE, 3, 3, 1, 1)


# ----------------------------------------------------------------------------- im2col out=
@pytest.mark.parametrize("bad", ["shape", "dtype", "noncontiguous", "readonly"])
def test_bad_im2col_out(bad):
    good = np.empty((70, 27))
    out = {"shape": np.empty((70, 26)), "dtype": np.empty((70, 27), np.float32),
           "noncontiguous": np.empty((27, 70)).T, "readonly": good}[bad]
    if bad == "readonly":
        out.setflags(write=False)
    with pytest.raises(ValueError, match=word("out") + r" must be a writeable C-contiguous float64 "
                                         r"array of shape \(70, 27\), got " + re.escape(str(out.dtype))):
        F.im2col(ones(), 3, 3, 1, 1, out=out)


def test_im2col_out_not_an_array():
    with pytest.raises(TypeError, match=word("out") + r" must be a numpy array, got list"):
        F.im2col(ones(), 3, 3, 1, 1, out=[[0.0] * 27] * 70)


# ----------------------------------------------------------------------------- batch-norm parameters
@pytest.mark.parametrize("arg", ["gamma", "beta", "mean", "var"])
def test_batchnorm_forward_parameter_of_wrong_shape(arg):
    params = dict(gamma=np.ones(3), beta=np.zeros(3), mean=np.zeros(3), var=np.ones(3))
    params[arg] = np.ones(4)
    with pytest.raises(ValueError, match=word(arg) + r" must have shape \(3,\), got \(4,\)"):
        F.batchnorm_forward(ones(), **params)


@pytest.mark.parametrize("arg", ["gamma", "mean", "inv_std"])
def test_batchnorm_backward_parameter_of_wrong_shape(arg):
    params = dict(gamma=np.ones(3), mean=np.zeros(3), inv_std=np.ones(3))
    params[arg] = np.ones((3, 1))
    with pytest.raises(ValueError, match=word(arg) + r" must have shape \(3,\), got \(3, 1\)"):
        F.batchnorm_backward(ones(), ones(), **params)


def test_batchnorm_backward_dout_of_wrong_shape():
    with pytest.raises(ValueError, match=word("dout") + r" must have x's shape.*got \(2, 3, 7, 4\)"):
        F.batchnorm_backward(np.ones((2, 3, 7, 4)), ones(), np.ones(3), np.zeros(3), np.ones(3))


@pytest.mark.parametrize("eps", [-1e-5, np.nan, np.inf], ids=repr)
def test_batchnorm_bad_eps(eps):
    with pytest.raises(ValueError, match=word("eps") + r".*got " + re.escape(repr(eps))):
        F.batchnorm_forward(ones(), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), eps=eps)


# ----------------------------------------------------------------------------- conv_output_size
@pytest.mark.parametrize("size, kernel, stride, pad", [(7, 3, 1, 1), (5, 2, 2, 1), (7, 3, 3, 2),
                                                       (4, 1, 3, 2), (3, 7, 1, 2)])
def test_conv_output_size(size, kernel, stride, pad):
    assert F.conv_output_size(size, kernel, stride, pad) == out_size(size, kernel, stride, pad)


@pytest.mark.parametrize("kwargs, error, arg", [
    (dict(input_size=0, kernel_size=1), ValueError, "input_size"),
    (dict(input_size=5, kernel_size=0), ValueError, "kernel_size"),
    (dict(input_size=5, kernel_size=3, stride=0), ValueError, "stride"),
    (dict(input_size=5, kernel_size=3, stride=1.5), TypeError, "stride"),
    (dict(input_size=5, kernel_size=3, pad=-1), ValueError, "pad"),
    (dict(input_size=5, kernel_size=8, pad=1), ValueError, "kernel_size"),
], ids=lambda v: repr(v) if not isinstance(v, dict) else "-".join(f"{k}={v[k]}" for k in v))
def test_conv_output_size_errors(kwargs, error, arg):
    with pytest.raises(error, match=word(arg)):
        F.conv_output_size(**kwargs)
