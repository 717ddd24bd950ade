"""Max and average pooling, forward and backward, computed directly (no im2col).

Padding follows PyTorch and ONNX: in max pooling a padded cell never wins
(the wrapper guarantees every window holds a real cell); average pooling
divides by the whole window (padding counted) unless count_include_pad is off.
argmax holds the flat index h*W + w of the winning cell inside its (n, c) plane.
Every prange task owns whole (n, c) planes of its output, so threads never
write the same memory and the result does not depend on the thread count.
"""
from cython.parallel cimport prange
from _types cimport floating


cdef inline bint _wins(floating a, floating best) noexcept nogil:
    """a replaces the running max: larger, or the first NaN (NaN propagates, as in PyTorch).
    Bitwise, not short-circuit, so that the callers' selects compile without branches: on
    random data the branchy form mispredicted about half the time (measured 5 ns per input
    element for 2x2 pooling)."""
    return (a > best) | ((a != a) & (best == best))


cdef inline void _maxpool_plane(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                                Py_ssize_t[:, :, :, ::1] argmax, Py_ssize_t n, Py_ssize_t c,
                                Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                Py_ssize_t stride, Py_ssize_t pad) noexcept nogil:
    """out[n, c, oh, ow] := max over real cells of x[n, c, oh*S-P+i, ow*S-P+j]; NaN wins."""
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_h = out.shape[2], out_w = out.shape[3]
    cdef const floating* xp = &x[n, c, 0, 0]
    cdef floating* op = &out[n, c, 0, 0]
    cdef Py_ssize_t* ap = &argmax[n, c, 0, 0]
    cdef Py_ssize_t oh, ow, h, w, h0, w0, h1, w1, best_idx
    cdef floating v, best
    cdef bint take
    for oh in range(out_h):
        h0 = oh * stride - pad
        h1 = min(h0 + kernel_h, height)
        h0 = max(h0, 0)
        for ow in range(out_w):
            w0 = ow * stride - pad
            w1 = min(w0 + kernel_w, width)
            w0 = max(w0, 0)
            best_idx = h0 * width + w0
            best = xp[best_idx]
            for h in range(h0, h1):
                for w in range(w0, w1):
                    v = xp[h * width + w]
                    take = _wins(v, best)
                    best_idx = h * width + w if take else best_idx
                    best = v if take else best
            op[oh * out_w + ow] = best
            ap[oh * out_w + ow] = best_idx


cdef inline void _maxpool2x2_plane(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                                   Py_ssize_t[:, :, :, ::1] argmax,
                                   Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """The book's 2x2, stride 2, pad 0 pooling without the general window bookkeeping.

    Raw pointers to the (n, c) planes: indexing the memoryviews per element re-derived
    the 4-D offsets and measured 4x slower than average pooling over the same data."""
    cdef Py_ssize_t width = x.shape[3], out_h = out.shape[2], out_w = out.shape[3]
    cdef const floating* xp = &x[n, c, 0, 0]
    cdef floating* op = &out[n, c, 0, 0]
    cdef Py_ssize_t* ap = &argmax[n, c, 0, 0]
    cdef const floating* row0
    cdef const floating* row1
    cdef Py_ssize_t oh, ow, k, best_idx
    cdef floating a, best
    cdef bint take
    for oh in range(out_h):
        row0 = xp + 2 * oh * width
        row1 = row0 + width
        for ow in range(out_w):
            k = 2 * oh * width + 2 * ow
            best = row0[2 * ow]
            best_idx = k
            a = row0[2 * ow + 1]
            take = _wins(a, best)
            best_idx = k + 1 if take else best_idx
            best = a if take else best
            a = row1[2 * ow]
            take = _wins(a, best)
            best_idx = k + width if take else best_idx
            best = a if take else best
            a = row1[2 * ow + 1]
            take = _wins(a, best)
            best_idx = k + width + 1 if take else best_idx
            best = a if take else best
            op[oh * out_w + ow] = best
            ap[oh * out_w + ow] = best_idx


def maxpool_forward(const floating[:, :, :, ::1] x not None,    # IN  (N, C, H, W)
                    floating[:, :, :, ::1] out not None,        # OUT (N, C, OH, OW)
                    Py_ssize_t[:, :, :, ::1] argmax not None,   # OUT (N, C, OH, OW)
                    Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                    Py_ssize_t stride, Py_ssize_t pad, int n_threads=1):
    cdef Py_ssize_t n_channels = x.shape[1], p
    cdef bint fast = kernel_h == 2 and kernel_w == 2 and stride == 2 and pad == 0
    with nogil:
        for p in prange(x.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            if fast:
                _maxpool2x2_plane(x, out, argmax, p // n_channels, p % n_channels)
            else:
                _maxpool_plane(x, out, argmax, p // n_channels, p % n_channels,
                               kernel_h, kernel_w, stride, pad)


cdef inline void _maxpool_backward_plane(const floating[:, :, :, ::1] dout,
                                         const Py_ssize_t[:, :, :, ::1] argmax,
                                         floating[:, :, :, ::1] dx,
                                         Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """dx[n, c].flat[argmax[n, c, oh, ow]] += dout[n, c, oh, ow]"""
    cdef Py_ssize_t width = dx.shape[3], oh, ow, k, h, w
    for h in range(dx.shape[2]):
        for w in range(width):
            dx[n, c, h, w] = 0
    for oh in range(dout.shape[2]):
        for ow in range(dout.shape[3]):
            k = argmax[n, c, oh, ow]
            dx[n, c, k // width, k % width] += dout[n, c, oh, ow]


def maxpool_backward(const floating[:, :, :, ::1] dout not None,      # IN  (N, C, OH, OW)
                     const Py_ssize_t[:, :, :, ::1] argmax not None,  # IN  (N, C, OH, OW)
                     floating[:, :, :, ::1] dx not None,              # OUT (N, C, H, W)
                     int n_threads=1):
    cdef Py_ssize_t n_channels = dx.shape[1], p
    with nogil:
        for p in prange(dx.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            _maxpool_backward_plane(dout, argmax, dx, p // n_channels, p % n_channels)


cdef inline void _avgpool_plane(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                                Py_ssize_t n, Py_ssize_t c,
                                Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                Py_ssize_t stride, Py_ssize_t pad,
                                bint count_include_pad) noexcept nogil:
    """out[n, c, oh, ow] := sum of the window's real cells / (KH*KW or the real-cell count)"""
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t oh, ow, h, w, h0, w0, h1, w1
    cdef double acc
    for oh in range(out.shape[2]):
        h0 = oh * stride - pad
        h1 = min(h0 + kernel_h, height)
        h0 = max(h0, 0)
        for ow in range(out.shape[3]):
            w0 = ow * stride - pad
            w1 = min(w0 + kernel_w, width)
            w0 = max(w0, 0)
            acc = 0
            for h in range(h0, h1):
                for w in range(w0, w1):
                    acc = acc + x[n, c, h, w]
            if count_include_pad:
                out[n, c, oh, ow] = <floating>(acc / (kernel_h * kernel_w))
            else:
                out[n, c, oh, ow] = <floating>(acc / ((h1 - h0) * (w1 - w0)))


def avgpool_forward(const floating[:, :, :, ::1] x not None,   # IN  (N, C, H, W)
                    floating[:, :, :, ::1] out not None,       # OUT (N, C, OH, OW)
                    Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                    Py_ssize_t stride, Py_ssize_t pad,
                    bint count_include_pad=True, int n_threads=1):
    cdef Py_ssize_t n_channels = x.shape[1], p
    with nogil:
        for p in prange(x.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            _avgpool_plane(x, out, p // n_channels, p % n_channels,
                           kernel_h, kernel_w, stride, pad, count_include_pad)


cdef inline void _avgpool_backward_plane(const floating[:, :, :, ::1] dout,
                                         floating[:, :, :, ::1] dx,
                                         Py_ssize_t n, Py_ssize_t c,
                                         Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                         Py_ssize_t stride, Py_ssize_t pad,
                                         bint count_include_pad) noexcept nogil:
    """dx[n, c, h, w] += dout[n, c, oh, ow] / window size, for each window holding (h, w)"""
    cdef Py_ssize_t height = dx.shape[2], width = dx.shape[3]
    cdef Py_ssize_t oh, ow, h, w, h0, w0, h1, w1
    cdef floating g
    for h in range(height):
        for w in range(width):
            dx[n, c, h, w] = 0
    for oh in range(dout.shape[2]):
        h0 = oh * stride - pad
        h1 = min(h0 + kernel_h, height)
        h0 = max(h0, 0)
        for ow in range(dout.shape[3]):
            w0 = ow * stride - pad
            w1 = min(w0 + kernel_w, width)
            w0 = max(w0, 0)
            if count_include_pad:
                g = <floating>(dout[n, c, oh, ow] / <double>(kernel_h * kernel_w))
            else:
                g = <floating>(dout[n, c, oh, ow] / <double>((h1 - h0) * (w1 - w0)))
            for h in range(h0, h1):
                for w in range(w0, w1):
                    dx[n, c, h, w] += g


def avgpool_backward(const floating[:, :, :, ::1] dout not None,   # IN  (N, C, OH, OW)
                     floating[:, :, :, ::1] dx not None,           # OUT (N, C, H, W)
                     Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                     Py_ssize_t stride, Py_ssize_t pad,
                     bint count_include_pad=True, int n_threads=1):
    cdef Py_ssize_t n_channels = dx.shape[1], p
    with nogil:
        for p in prange(dx.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            _avgpool_backward_plane(dout, dx, p // n_channels, p % n_channels,
                                    kernel_h, kernel_w, stride, pad, count_include_pad)
