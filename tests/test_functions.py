"""cnn_core.functions against the book's printed values and simple references."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from cnn_core.functions import (cross_entropy_error, gradient_descent, identity_function,
                                numerical_diff, numerical_gradient, relu, sigmoid, sigmoid_grad,
                                softmax, softmax_cross_entropy, softmax_loss, step_function,
                                sum_squared_error, tanh)

FLOATS = [np.float32, np.float64]


def function_1(x):
    """The book's example function of section 4.3.2: y = 0.01 x^2 + 0.1 x."""
    return 0.01 * x ** 2 + 0.1 * x


def function_2(x):
    """The book's f(x0, x1) = x0^2 + x1^2."""
    return np.sum(x ** 2)


# ----------------------------------------------------------------------------- activations
def test_step_function_book_values():
    y = step_function(np.array([-1.0, 1.0, 2.0]))
    assert_array_equal(y, [0, 1, 1])
    assert y.dtype.kind == "i"
    assert_array_equal(step_function(np.array([0.0, -0.0, 1e-300])), [0, 0, 1])


def test_identity_function_returns_its_argument():
    x = np.array([1.0, -2.0])
    assert identity_function(x) is x


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_large_inputs_warn_nothing(dtype):
    x = np.array([-1000.0, -100.0, -1.0, 0.0, 1.0, 100.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            y = sigmoid(x)
            y_scalar_low, y_scalar_high = sigmoid(dtype(-1000)), sigmoid(dtype(1000))
    assert y.dtype == dtype
    assert y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5
    assert y_scalar_low == 0.0 and y_scalar_high == 1.0
    assert np.all(np.diff(y) >= 0)


def test_sigmoid_matches_book_formula_where_that_is_safe():
    x = np.linspace(-30, 30, 601)
    assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-15, atol=0)
    # The exact rewriting keeps relative precision for very negative x (1 + tanh would not).
    assert_allclose(sigmoid(-700.0), np.exp(-700.0), rtol=1e-14)


@pytest.mark.parametrize("dtype", FLOATS)
def test_activations_keep_float_dtype_and_promote_ints(dtype):
    x = np.array([[-2.0, 0.0], [0.5, 3.0]], dtype=dtype)
    for fn in (sigmoid, relu, tanh, softmax):
        assert fn(x).dtype == dtype, fn.__name__
        assert fn(x).shape == x.shape, fn.__name__
        assert fn(np.array([[1, 2], [3, 4]])).dtype == np.float64, fn.__name__


def test_scalar_input_gives_a_scalar():
    assert np.ndim(sigmoid(0.0)) == 0 and sigmoid(0.0) == 0.5
    assert np.ndim(relu(-3)) == 0 and relu(-3) == 0.0
    assert type(sigmoid(np.float32(2.0))) is np.float32


def test_relu_and_tanh_values():
    assert_array_equal(relu(np.array([-1.0, 0.0, 2.5])), [0.0, 0.0, 2.5])
    assert_allclose(tanh(np.array([-1.0, 0.0, 2.0])), np.tanh([-1.0, 0.0, 2.0]), rtol=0)


def test_sigmoid_grad_is_y_times_one_minus_y():
    x = np.array([-2.0, 0.0, 3.0])
    y = 1 / (1 + np.exp(-x))
    assert_allclose(sigmoid_grad(x), (1 - y) * y, rtol=1e-15)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20))
def test_sigmoid_is_symmetric_and_bounded(values):
    x = np.array(values)
    y = sigmoid(x)
    assert np.all((y >= 0) & (y <= 1))
    assert_allclose(y + sigmoid(-x), 1.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("fn", [sigmoid, relu, tanh, softmax])
def test_activations_refuse_non_numeric_input(fn):
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        fn(np.array(["a", "b"]))


# ----------------------------------------------------------------------------- softmax
def test_softmax_book_value():
    y = softmax(np.array([0.3, 2.9, 4.0]))
    assert_allclose(y, [0.01821127, 0.24519181, 0.73659691], rtol=0, atol=1e-8)
    assert np.sum(y) == pytest.approx(1.0, abs=1e-15)


def test_softmax_does_not_overflow_on_the_books_example():
    a = np.array([1010.0, 1000.0, 990.0])
    with np.errstate(all="raise"):
        y = softmax(a)
    assert_allclose(y, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09], rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_batch_rows_equal_1d(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype(dtype)
    y = softmax(x)
    assert y.dtype == dtype
    for row_in, row_out in zip(x, y):
        assert_array_equal(softmax(row_in), row_out)
    assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6 if dtype == np.float32 else 1e-15)
    assert_allclose(softmax(x + dtype(100)), y, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_softmax_refuses_scalars_and_empty_rows():
    with pytest.raises(ValueError, match="x must be 1-D"):
        softmax(1.0)
    with pytest.raises(ValueError, match="at least one class"):
        softmax(np.zeros((2, 0)))


# ----------------------------------------------------------------------------- losses
T_BOOK = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
Y_GOOD = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
Y_BAD = np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0])


def test_sum_squared_error_book_values():
    assert sum_squared_error(Y_GOOD, T_BOOK) == pytest.approx(0.0975, rel=1e-14)
    assert sum_squared_error(Y_BAD, T_BOOK) == pytest.approx(0.5975, rel=1e-14)


def test_sum_squared_error_sums_over_the_batch_as_the_book():
    y, t = np.stack([Y_GOOD, Y_BAD]), np.stack([T_BOOK, T_BOOK])
    assert sum_squared_error(y, t) == pytest.approx(0.0975 + 0.5975, rel=1e-14)
    with pytest.raises(ValueError, match="same shape"):
        sum_squared_error(y, T_BOOK)


def test_cross_entropy_error_book_values():
    assert cross_entropy_error(Y_GOOD, T_BOOK) == pytest.approx(0.510825457099338, rel=1e-14)
    assert cross_entropy_error(Y_BAD, T_BOOK) == pytest.approx(2.302584092994546, rel=1e-14)
    # the delta 1e-7 keeps log(0) finite
    assert cross_entropy_error(np.array([0.0, 1.0]), np.array([1, 0])) == pytest.approx(
        -np.log(1e-7), rel=1e-14)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_index_and_one_hot_labels_agree(dtype):
    rng = np.random.default_rng(1)
    y = softmax(rng.normal(size=(6, 4))).astype(dtype)
    labels = np.array([0, 3, 1, 1, 2, 0])
    one_hot = np.eye(4, dtype=dtype)[labels]
    e_index = cross_entropy_error(y, labels)
    e_onehot = cross_entropy_error(y, one_hot)
    assert e_index == e_onehot                  # bit-identical by construction
    assert e_index.dtype == dtype
    expected = -np.mean(np.log(y[np.arange(6), labels].astype(np.float64) + 1e-7))
    assert e_index == pytest.approx(expected, rel=1e-6 if dtype == np.float32 else 1e-14)
    # 1-D y: a scalar index, a (1,) index and one-hot agree too
    assert cross_entropy_error(Y_GOOD, 2) == cross_entropy_error(Y_GOOD, [2]) \
        == cross_entropy_error(Y_GOOD, T_BOOK)


def test_cross_entropy_soft_labels_use_t_log_y():
    y = np.array([[0.2, 0.8], [0.6, 0.4]])
    t = np.array([[0.5, 0.5], [1.0, 0.0]])
    expected = -(0.5 * np.log(0.2 + 1e-7) + 0.5 * np.log(0.8 + 1e-7) + np.log(0.6 + 1e-7)) / 2
    assert cross_entropy_error(y, t) == pytest.approx(expected, rel=1e-14)


def test_cross_entropy_refuses_bad_labels():
    y = softmax(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"must be in \[0, 4\)"):
        cross_entropy_error(y, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"must be in \[0, 4\)"):
        cross_entropy_error(y, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="3 index label"):
        cross_entropy_error(y, np.array([0, 1]))
    with pytest.raises(TypeError, match="index labels t must be integers"):
        cross_entropy_error(y, np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match="y must be 1-D"):
        cross_entropy_error(np.zeros((1, 2, 3)), np.array([0]))


def test_softmax_cross_entropy_is_the_books_softmax_loss():
    x = np.array([[0.3, 2.9, 4.0], [1.0, -1.0, 0.0]])
    t = np.array([2, 0])
    assert softmax_cross_entropy(x, t) == cross_entropy_error(softmax(x), t)
    assert softmax_loss is softmax_cross_entropy


# ------------------------------------------------------------------ numerical differentiation
def test_numerical_diff_book_values_exactly():
    assert numerical_diff(function_1, 5) == 0.1999999999990898
    assert numerical_diff(function_1, 10) == 0.2999999999986347


@pytest.mark.parametrize("point, expected", [((3.0, 4.0), (6.0, 8.0)), ((0.0, 2.0), (0.0, 4.0)),
                                             ((3.0, 0.0), (6.0, 0.0))])
def test_numerical_gradient_book_values(point, expected):
    x = np.array(point)
    grad = numerical_gradient(function_2, x)
    assert_allclose(grad, expected, rtol=1e-9, atol=1e-9)
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert_array_equal(x, point)                # restored


def test_numerical_gradient_integer_input_is_not_silently_wrong():
    x = np.array([3, 4])
    grad = numerical_gradient(function_2, x)
    assert_allclose(grad, [6.0, 8.0], rtol=1e-9)
    assert grad.dtype == np.float64
    assert_array_equal(x, [3, 4]) and x.dtype.kind == "i"
    assert_allclose(numerical_gradient(function_2, [3, 4]), [6.0, 8.0], rtol=1e-9)


def test_numerical_gradient_perturbs_float_arrays_in_place_like_the_book():
    # The book's networks pass f = lambda W: net.loss(x, t), which ignores its
    # argument and reads the weights through the network.
    weights = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = numerical_gradient(lambda _: np.sum(weights ** 3), weights)
    assert_allclose(grad, 3 * weights ** 2, rtol=1e-7)


def test_numerical_gradient_restores_bit_for_bit_even_when_f_raises():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2))
    original = x.copy()
    numerical_gradient(function_2, x)
    assert x.tobytes() == original.tobytes()
    calls = []

    def failing(v):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return np.sum(v)

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(failing, x)
    assert x.tobytes() == original.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numerical_gradient_any_shape(dtype):
    x = np.arange(1, 25, dtype=dtype).reshape(2, 3, 4) / 10
    grad = numerical_gradient(lambda v: np.sum(np.sin(v.astype(np.float64))), x)
    assert grad.shape == x.shape and grad.dtype == dtype
    assert_allclose(grad, np.cos(x.astype(np.float64)), rtol=1e-2 if dtype == np.float32 else 1e-7)
    g0 = numerical_gradient(lambda v: float(v) ** 2, np.array(1.5))
    assert g0.shape == () and g0 == pytest.approx(3.0, rel=1e-9)


def test_numerical_gradient_copies_read_only_input():
    x = np.array([3.0, 4.0])
    x.setflags(write=False)
    assert_allclose(numerical_gradient(function_2, x), [6.0, 8.0], rtol=1e-9)


def test_numerical_gradient_validates():
    with pytest.raises(ValueError, match="f must return a real scalar"):
        numerical_gradient(lambda v: v, np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="f must be a callable"):
        numerical_gradient(3, np.array([1.0]))
    with pytest.raises(ValueError, match="h must be a positive finite float"):
        numerical_gradient(function_2, np.array([1.0]), h=0)
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        numerical_gradient(function_2, np.array(["a"]))


def test_gradient_descent_book_example():
    init_x = np.array([-3.0, 4.0])
    x, x_history = gradient_descent(function_2, init_x, lr=0.1, step_num=100)
    assert_allclose(x, [0.0, 0.0], atol=1e-8)
    assert x_history.shape == (100, 2)
    assert_array_equal(x_history[0], [-3.0, 4.0])
    assert_array_equal(init_x, [-3.0, 4.0])           # not modified (unlike the book)
    # each step is x <- x - lr * grad, with grad = 2x for this f
    assert_allclose(x_history[1], 0.8 * x_history[0], rtol=1e-9)
    assert np.all(np.diff(np.linalg.norm(x_history, axis=1)) < 0)


def test_gradient_descent_learning_rates_too_large_and_too_small():
    big, _ = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=10.0, step_num=100)
    small, _ = gradient_descent(function_2, np.array([-3.0, 4.0]), lr=1e-10, step_num=100)
    assert np.max(np.abs(big)) > 1e12                 # the book: about -2.58e13
    assert_allclose(small, [-3.0, 4.0], atol=1e-6)    # the book: hardly moves


def test_gradient_descent_validates_and_handles_zero_steps():
    x, hist = gradient_descent(function_2, [1, 2], step_num=0)
    assert_array_equal(x, [1.0, 2.0]) and hist.shape == (0, 2)
    with pytest.raises(ValueError, match="lr must be a finite float >= 0"):
        gradient_descent(function_2, [1.0], lr=float("nan"))
    with pytest.raises(ValueError, match="step_num must be an int >= 0"):
        gradient_descent(function_2, [1.0], step_num=2.5)
    with pytest.raises(ValueError, match="step_num must be an int >= 0"):
        gradient_descent(function_2, [1.0], step_num=-1)
