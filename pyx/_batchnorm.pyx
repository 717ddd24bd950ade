"""Batch Normalization kernels over x viewed as (N, C, L).

L = H*W for (N, C, H, W) input (statistics per channel) and L = 1 for (N, D)
input (statistics per feature).  Sums accumulate in float64 whatever the
input dtype.  Every prange task owns whole channels of the reductions or
whole (n, c) rows of the elementwise passes, so results are independent of
the thread count.
"""
from cython.parallel cimport prange
from _types cimport floating


cdef inline void _stats_channel(const floating[:, :, ::1] x, double[::1] mean, double[::1] var,
                                Py_ssize_t c) noexcept nogil:
    """mean[c] := mean of x[:, c, :]; var[c] := biased variance, in one shifted pass."""
    cdef Py_ssize_t n, l, n_batch = x.shape[0], length = x.shape[2]
    cdef double shift = x[0, c, 0], s1 = 0, s2 = 0, d
    cdef double count = <double>(n_batch * length)
    for n in range(n_batch):
        for l in range(length):
            d = x[n, c, l] - shift
            s1 = s1 + d
            s2 = s2 + d * d
    s1 = s1 / count
    mean[c] = shift + s1
    d = s2 / count - s1 * s1
    var[c] = 0.0 if d < 0 else d   # round-off can make it slightly negative; NaN stays NaN


def batchnorm_stats(const floating[:, :, ::1] x not None,   # IN  (N, C, L)
                    double[::1] mean not None,              # OUT (C,)
                    double[::1] var not None,               # OUT (C,)
                    int n_threads=1):
    cdef Py_ssize_t c
    with nogil:
        for c in prange(x.shape[1], schedule='static', num_threads=n_threads):
            _stats_channel(x, mean, var, c)


def batchnorm_forward(const floating[:, :, ::1] x not None,      # IN  (N, C, L)
                      const double[::1] mean not None,           # IN  (C,)
                      const double[::1] inv_std not None,        # IN  (C,)
                      const floating[::1] gamma not None,        # IN  (C,)
                      const floating[::1] beta not None,         # IN  (C,)
                      floating[:, :, ::1] out not None,          # OUT (N, C, L)
                      int n_threads=1):
    """out[n, c, l] := (x[n, c, l] - mean[c]) * inv_std[c] * gamma[c] + beta[c]"""
    cdef Py_ssize_t p, n, c, l, n_channels = x.shape[1], length = x.shape[2]
    cdef double scale, offset
    with nogil:
        for p in prange(x.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            n = p // n_channels
            c = p % n_channels
            scale = inv_std[c] * gamma[c]
            offset = beta[c] - mean[c] * scale
            for l in range(length):
                out[n, c, l] = <floating>(x[n, c, l] * scale + offset)


cdef inline void _backward_reduce_channel(const floating[:, :, ::1] x,
                                          const floating[:, :, ::1] dout,
                                          const double[::1] mean, const double[::1] inv_std,
                                          double[::1] dgamma, double[::1] dbeta,
                                          Py_ssize_t c) noexcept nogil:
    """dbeta[c] := sum dout[:, c, :]; dgamma[c] := sum dout * xhat over (n, l)."""
    cdef Py_ssize_t n, l
    cdef double sb = 0, sg = 0, m = mean[c], g
    for n in range(x.shape[0]):
        for l in range(x.shape[2]):
            g = dout[n, c, l]
            sb = sb + g
            sg = sg + g * (x[n, c, l] - m)
    dbeta[c] = sb
    dgamma[c] = sg * inv_std[c]


def batchnorm_backward_reduce(const floating[:, :, ::1] x not None,     # IN  (N, C, L)
                              const floating[:, :, ::1] dout not None,  # IN  (N, C, L)
                              const double[::1] mean not None,          # IN  (C,)
                              const double[::1] inv_std not None,       # IN  (C,)
                              double[::1] dgamma not None,              # OUT (C,)
                              double[::1] dbeta not None,               # OUT (C,)
                              int n_threads=1):
    cdef Py_ssize_t c
    with nogil:
        for c in prange(x.shape[1], schedule='static', num_threads=n_threads):
            _backward_reduce_channel(x, dout, mean, inv_std, dgamma, dbeta, c)


def batchnorm_backward_dx(const floating[:, :, ::1] x not None,      # IN  (N, C, L)
                          const floating[:, :, ::1] dout not None,   # IN  (N, C, L)
                          const double[::1] mean not None,           # IN  (C,)
                          const double[::1] inv_std not None,        # IN  (C,)
                          const floating[::1] gamma not None,        # IN  (C,)
                          const double[::1] dgamma not None,         # IN  (C,)
                          const double[::1] dbeta not None,          # IN  (C,)
                          floating[:, :, ::1] dx not None,           # OUT (N, C, L)
                          int n_threads=1):
    """dx := gamma*inv_std/M * (M*dout - dbeta - xhat*dgamma), M = N*L, training mode."""
    cdef Py_ssize_t p, n, c, l, n_channels = x.shape[1], length = x.shape[2]
    cdef double count = <double>(x.shape[0] * length), k, xhat_scale, a, b
    with nogil:
        for p in prange(x.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            n = p // n_channels
            c = p % n_channels
            k = gamma[c] * inv_std[c]
            xhat_scale = inv_std[c] * dgamma[c] / count
            a = dbeta[c] / count
            b = mean[c]
            for l in range(length):
                dx[n, c, l] = <floating>(k * (dout[n, c, l] - a - (x[n, c, l] - b) * xhat_scale))
