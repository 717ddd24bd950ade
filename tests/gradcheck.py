"""Central-difference gradient checking (float64, tiny shapes).

``numerical_grad`` perturbs one entry of ``x`` at a time in place (and puts it
back), calling ``f(x)`` on the perturbed array, as the book's
``numerical_gradient(f, x)`` does.
"""
import numpy as np


def numerical_grad(f, x, eps=1e-6):
    """d f / d x by the central difference (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).

    ``f(x)`` returns a float; the float64 array ``x`` is modified in place during
    the call and restored entry by entry.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks run in float64, got {x.dtype}")
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)   # views: x must be contiguous
    if not np.shares_memory(flat_x, x):
        raise ValueError("x must be contiguous so that it can be perturbed in place")
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + eps
        f_plus = float(f(x))
        flat_x[i] = saved - eps
        f_minus = float(f(x))
        flat_x[i] = saved
        flat_g[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def max_rel_error(analytic, numeric):
    """max |analytic - numeric| relative to the larger of the two gradients' max magnitudes."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(numeric)), 1e-300)
    return float(np.max(np.abs(analytic - numeric)) / scale)


def assert_grad_close(analytic, numeric, name, max_error=1e-6):
    """Both the normwise max relative error and the elementwise allclose must pass."""
    assert analytic.shape == numeric.shape, f"{name}: shape {analytic.shape} != {numeric.shape}"
    err = max_rel_error(analytic, numeric)
    assert err < max_error, f"{name}: max relative error {err:.3e} >= {max_error:.0e}"
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)
