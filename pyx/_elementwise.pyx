"""Elementwise passes of a training step, fused into one pass each: ReLU forward and
backward, and the Adam update.

Inputs are flat C-contiguous arrays of one dtype (the wrapper checks).  Each prange
task owns a contiguous block of the output, every element is computed by the same
expression whatever the thread count, so results do not depend on it.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf
from _types cimport floating

#: elements per prange task: large enough to amortise scheduling, small enough to balance
cdef enum:
    BLOCK = 16384


def relu_forward(const floating[::1] x not None,   # IN  (n,)
                 floating[::1] out not None,       # OUT (n,): x where x > 0 or NaN, else 0
                 int n_threads=1):
    cdef Py_ssize_t n = x.shape[0], n_blocks = (n + BLOCK - 1) // BLOCK, blk, i, end
    cdef floating v
    with nogil:
        for blk in prange(n_blocks, schedule='static', num_threads=n_threads):
            end = min(n, (blk + 1) * BLOCK)
            for i in range(blk * BLOCK, end):
                v = x[i]
                out[i] = 0 if v <= 0 else v        # NaN propagates, as np.maximum(x, 0)


def relu_backward(const floating[::1] dout not None,   # IN  (n,)
                  const floating[::1] out not None,    # IN  (n,): the forward's output
                  floating[::1] dx not None,           # OUT (n,): dout where out > 0, else 0
                  int n_threads=1):
    cdef Py_ssize_t n = dout.shape[0], n_blocks = (n + BLOCK - 1) // BLOCK, blk, i, end
    cdef floating g, o
    with nogil:
        for blk in prange(n_blocks, schedule='static', num_threads=n_threads):
            end = min(n, (blk + 1) * BLOCK)
            for i in range(blk * BLOCK, end):
                # both loads before the select: a conditional load of dout compiled to a
                # branch, mispredicted on half the elements (7.2 ms against 0.2 at 1.7M)
                g = dout[i]
                o = out[i]
                dx[i] = g if o > 0 else 0


def adam_update(floating[::1] param not None,        # IN/OUT (n,)
                const floating[::1] grad not None,   # IN     (n,)
                floating[::1] m not None,            # IN/OUT (n,) first moment
                floating[::1] v not None,            # IN/OUT (n,) second moment
                double lr_t, double beta1, double beta2, double eps, int n_threads=1):
    """m += (1-beta1)(g-m); v += (1-beta2)(g*g-v); param -= lr_t*m / (sqrt(v)+eps),
    in the parameters' dtype and in this order (NumPy's order for the same formula)."""
    cdef Py_ssize_t n = param.shape[0], n_blocks = (n + BLOCK - 1) // BLOCK, blk, i, end
    cdef floating c1 = <floating>(1.0 - beta1), c2 = <floating>(1.0 - beta2)
    cdef floating lr = <floating>lr_t, e = <floating>eps
    cdef floating g, mi, vi, pi, root
    if n == 0:
        return
    cdef floating* pp = &param[0]
    cdef const floating* gp = &grad[0]
    cdef floating* mp = &m[0]
    cdef floating* vp = &v[0]
    with nogil:
        for blk in prange(n_blocks, schedule='static', num_threads=n_threads):
            end = min(n, (blk + 1) * BLOCK)
            for i in range(blk * BLOCK, end):
                g = gp[i]
                mi = mp[i]
                vi = vp[i]
                pi = pp[i]
                mi = mi + c1 * (g - mi)
                vi = vi + c2 * (g * g - vi)
                mp[i] = mi
                vp[i] = vi
                if floating is float:
                    root = sqrtf(vi)      # (sqrt in double then rounded: not vectorised)
                else:
                    root = sqrt(vi)
                pp[i] = pi - lr * mi / (root + e)
