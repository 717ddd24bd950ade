"""The book's stateless functions: activations, losses and numerical differentiation.

Names, signatures, defaults and formulas are those of *Deep Learning from
Scratch* (chapters 3 and 4, ``common/functions.py``, ``common/gradient.py``).
Where the book's one-liner misbehaves this module keeps the formula and fixes
the failure, saying so in the docstring:

* ``sigmoid`` never overflows (``exp`` is only taken of ``-|x|``);
* ``cross_entropy_error`` accepts soft labels as well as one-hot and index labels;
* ``numerical_gradient`` works on integer input (in float64) instead of
  silently truncating the ``+h`` perturbation to zero;
* ``gradient_descent`` does not modify ``init_x``.

Float32 and float64 input keeps its dtype; other numbers become float64 (the one
dtype rule of :mod:`cnn_core._dtype`).  Bad arguments raise a ``ValueError`` or
``TypeError`` that names the argument and the value received.
"""
import math
import numbers

import numpy as np

from ._dtype import as_float_array

__all__ = [
    "identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "tanh", "softmax",
    "sum_squared_error", "cross_entropy_error", "softmax_cross_entropy", "softmax_loss",
    "numerical_diff", "numerical_gradient", "gradient_descent",
]

# The book's delta inside the log of cross_entropy_error: log(0) would be -inf.
CROSS_ENTROPY_DELTA = 1e-7
# The book's step for central differences: small, yet far above float64 rounding.
NUMERICAL_H = 1e-4


def _as_float(x, name="x"):
    """``x`` by the dtype rule, keeping its shape (``np.ascontiguousarray`` makes 0-d input 1-d)."""
    return as_float_array(x, name).reshape(np.shape(x))


def _float_input(x, name="x"):
    """(array, was_scalar): ``x`` by the dtype rule, remembering whether it was 0-d."""
    arr = _as_float(x, name)
    return arr, arr.ndim == 0


def _out(arr, was_scalar):
    """Return a NumPy scalar for scalar input, as the book's ``np.exp`` expressions do."""
    return arr[()] if was_scalar else arr


# ----------------------------------------------------------------------------- activations
def identity_function(x):
    """h(x) = x: the output activation for regression (returns ``x`` itself)."""
    return x


def step_function(x):
    """h(x) = 1 if x > 0 else 0, as an int array (the book's ``dtype=int``)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"x must be a real numeric array, got dtype {arr.dtype}")
    return np.array(arr > 0, dtype=int)


def sigmoid(x):
    """h(x) = 1 / (1 + exp(-x)), without overflow for any x.

    The book's ``1 / (1 + np.exp(-x))`` overflows (and warns) for x < -709 in
    float64 (x < -88 in float32).  Here ``exp`` only sees ``-|x|`` <= 0:
    sigmoid(x) = 1 / (1 + z) for x >= 0 and z / (1 + z) for x < 0, z = exp(-|x|).
    Both branches are exact rewritings, so no precision is lost; an ``exp``
    that underflows to 0 gives the correctly rounded 0 or 1, so underflow is
    not reported either.
    """
    arr, was_scalar = _float_input(x)
    with np.errstate(under="ignore"):
        z = np.exp(-np.abs(arr))
        denom = 1 + z
        out = np.where(arr >= 0, 1 / denom, z / denom)
    return _out(out.astype(arr.dtype, copy=False), was_scalar)


def sigmoid_grad(x):
    """d sigmoid / dx = (1 - sigmoid(x)) * sigmoid(x)."""
    y = sigmoid(x)
    return (1.0 - y) * y


def relu(x):
    """h(x) = max(0, x)."""
    arr, was_scalar = _float_input(x)
    return _out(np.maximum(arr, 0, dtype=arr.dtype), was_scalar)


def tanh(x):
    """h(x) = tanh(x)."""
    arr, was_scalar = _float_input(x)
    return _out(np.tanh(arr), was_scalar)


def softmax(x):
    """y_k = exp(x_k - max x) / sum_i exp(x_i - max x) over the last axis.

    ``x`` is 1-D (K,) or a batch (N, K) (any leading axes work).  Subtracting
    the row maximum (the book's overflow guard) leaves the result unchanged.
    """
    arr = _as_float(x, "x")
    if arr.ndim == 0:
        raise ValueError(f"x must be 1-D (K,) or a batch (N, K), got a scalar {x!r}")
    if arr.shape[-1] == 0:
        raise ValueError(f"x must have at least one class on its last axis, got shape {arr.shape}")
    shifted = arr - np.max(arr, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- losses
def sum_squared_error(y, t):
    """E = 0.5 * sum((y - t)**2), summed over everything, batch included (as the book)."""
    y_arr = _as_float(y, "y")
    t_arr = _as_float(t, "t")
    if y_arr.shape != t_arr.shape:
        raise ValueError(f"y and t must have the same shape, got y {y_arr.shape} and "
                         f"t {t_arr.shape}")
    return 0.5 * np.sum((y_arr - t_arr) ** 2)


def _index_labels(t, n_samples, n_classes):
    """Validated index labels as intp, shape (n_samples,)."""
    if t.dtype.kind not in "iu":
        if t.dtype.kind == "f" and np.all(np.isfinite(t)) and np.all(t == np.round(t)):
            t = t.astype(np.intp)
        else:
            raise TypeError(f"index labels t must be integers, got dtype {t.dtype}")
    t = t.reshape(-1)
    if t.size != n_samples:
        raise ValueError(f"t must hold {n_samples} index label(s) or one-hot rows of "
                         f"{n_classes} classes, got {t.size} label(s)")
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        raise ValueError(f"index labels t must be in [0, {n_classes}), got values in "
                         f"[{t.min()}, {t.max()}]")
    return t.astype(np.intp, copy=False)


def cross_entropy_error(y, t):
    """E = -(1/N) sum_n sum_k t_nk log(y_nk + 1e-7), the book's delta included.

    ``y`` is (K,) or (N, K) probabilities.  ``t`` is either one-hot (or soft)
    labels of ``y``'s shape, or index labels: a scalar or (1,) for 1-D ``y``,
    (N,) for a batch.  The loss is averaged over the batch.

    The book converts one-hot ``t`` to indices with ``argmax``, which silently
    mistreats soft labels; here a ``t`` shaped like ``y`` enters as ``t * log``.
    Each row is summed first, so one-hot and index labels give bit-identical
    results.
    """
    y_arr = _as_float(y, "y")
    if y_arr.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D (K,) or 2-D (N, K), got shape {y_arr.shape}")
    t_arr = np.asarray(t)
    if t_arr.dtype.kind not in "biuf":
        raise TypeError(f"t must be numeric labels, got dtype {t_arr.dtype}")
    y2 = y_arr.reshape(1, -1) if y_arr.ndim == 1 else y_arr
    n_samples, n_classes = y2.shape
    if n_samples == 0:
        raise ValueError(f"y must hold at least one sample, got shape {y_arr.shape}")
    if t_arr.shape in (y_arr.shape, y2.shape):          # one-hot or soft labels
        t2 = as_float_array(t_arr, "t", dtype=y2.dtype).reshape(y2.shape)
        per_sample = -np.sum(t2 * np.log(y2 + CROSS_ENTROPY_DELTA), axis=1)
    else:                                                # index labels
        labels = _index_labels(t_arr, n_samples, n_classes)
        per_sample = -np.log(y2[np.arange(n_samples), labels] + CROSS_ENTROPY_DELTA)
    # (the cast keeps y's dtype under NumPy 1's promotion rules too)
    return y2.dtype.type(np.sum(per_sample) / n_samples)


def softmax_cross_entropy(x, t):
    """cross_entropy_error(softmax(x), t): the book's ``softmax_loss(X, t)``."""
    return cross_entropy_error(softmax(x), t)


softmax_loss = softmax_cross_entropy   # the book's name


# ------------------------------------------------------------------ numerical differentiation
def _check_h(h):
    if isinstance(h, bool) or not isinstance(h, numbers.Real) or not (math.isfinite(h) and h > 0):
        raise ValueError(f"h must be a positive finite float, got {h!r}")
    return float(h)


def _check_callable(f):
    if not callable(f):
        raise TypeError(f"f must be a callable f(x) returning a scalar, got {type(f).__name__}")


def _scalar(value, where):
    """f's return value as a Python float, or a clear error."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise ValueError(f"f must return a real scalar, got {type(value).__name__} with shape "
                         f"{arr.shape} and dtype {arr.dtype} at {where}")
    return float(arr.reshape(()))


def numerical_diff(f, x, h=NUMERICAL_H):
    """df/dx at x by the central difference (f(x + h) - f(x - h)) / (2 h), h = 1e-4."""
    _check_callable(f)
    h = _check_h(h)
    return (f(x + h) - f(x - h)) / (2 * h)


def numerical_gradient(f, x, h=NUMERICAL_H):
    """The gradient of the scalar function ``f`` at ``x`` by central differences.

    Each entry ``x[idx]`` is set to ``x[idx] + h``, then ``x[idx] - h``, and
    restored (bit for bit, even if ``f`` raises).  A writable float32/float64
    ndarray ``x`` is perturbed **in place**, as in the book, so ``f`` may ignore
    its argument and read the array through another reference (the book's
    ``lambda W: net.loss(x, t)``).  Any other ``x`` (integers, lists, scalars,
    float16, read-only arrays) is first copied to floats by the dtype rule:
    the book's version would write ``3 + 1e-4`` into an int array as 3 and
    return a gradient of zeros.

    Returns a float array of ``x``'s shape (the dtype of the perturbed array).
    """
    _check_callable(f)
    h = _check_h(h)
    in_place = (isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64)
                and x.flags.writeable)
    work = x if in_place else np.array(_as_float(x, "x"), copy=True)
    grad = np.zeros(work.shape, dtype=work.dtype)
    for idx in np.ndindex(work.shape):
        saved = work[idx]
        try:
            work[idx] = float(saved) + h
            f_plus = _scalar(f(work), f"x[{idx}] + h")
            work[idx] = saved - h
            f_minus = _scalar(f(work), f"x[{idx}] - h")
        finally:
            work[idx] = saved
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad


def gradient_descent(f, init_x, lr=0.01, step_num=100):
    """Minimise ``f`` by x <- x - lr * numerical_gradient(f, x), ``step_num`` times.

    Returns ``(x, x_history)`` as the book's ``ch04/gradient_method.py`` does:
    the final x and an array of shape ``(step_num,) + x.shape`` holding x
    *before* each step (so ``x_history[0]`` is ``init_x``).  Unlike the book,
    ``init_x`` is copied, not modified.
    """
    _check_callable(f)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr < 0:
        raise ValueError(f"lr must be a finite float >= 0, got {lr!r}")
    if isinstance(step_num, bool) or not isinstance(step_num, numbers.Integral) or step_num < 0:
        raise ValueError(f"step_num must be an int >= 0, got {step_num!r}")
    x = np.array(_as_float(init_x, "init_x"), copy=True)
    x_history = np.empty((int(step_num),) + x.shape, dtype=x.dtype)
    for i in range(int(step_num)):
        x_history[i] = x
        x -= lr * numerical_gradient(f, x)
    return x, x_history
