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


cdef inline bint _maxpool2x2_plane(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                                   Py_ssize_t[:, :, :, ::1] argmax,
                                   Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """The book's 2x2, stride 2, pad 0 pooling, written so that the compiler vectorises it.

    The max of each window first, then the first cell equal to it, by arithmetic on the
    comparisons: no branch depends on the data (running selects compiled to branches that
    mispredicted on random input: 11 ns per window; 2 ns with this arithmetic in 64-bit
    ints, 0.8 ns in 32-bit ints, which pack as densely as the float32 lanes).  The caller
    takes this path only for planes of fewer than 2**31 cells.  NaN is not handled here:
    the return value says whether the plane held one, and the caller then redoes the
    plane with the exact general loop, where the first NaN wins."""
    cdef Py_ssize_t width = x.shape[3], out_h = out.shape[2], out_w = out.shape[3]
    cdef const floating* xp = &x[n, c, 0, 0]
    cdef floating* op = &out[n, c, 0, 0]
    cdef Py_ssize_t* ap = &argmax[n, c, 0, 0]
    cdef const floating* row0
    cdef const floating* row1
    cdef floating* orow
    cdef Py_ssize_t* arow
    cdef Py_ssize_t oh, ow
    cdef int w32 = <int>width, base, not0, not1, not2
    cdef floating a0, a1, a2, a3, m
    cdef int nan = 0
    for oh in range(out_h):
        row0 = xp + 2 * oh * width
        row1 = row0 + width
        base = <int>(2 * oh * width)
        orow = op + oh * out_w
        arow = ap + oh * out_w
        for ow in range(out_w):
            a0 = row0[2 * ow]
            a1 = row0[2 * ow + 1]
            a2 = row1[2 * ow]
            a3 = row1[2 * ow + 1]
            m = a0 if a0 >= a1 else a1
            m = m if m >= a2 else a2
            m = m if m >= a3 else a3
            orow[ow] = m
            not0 = a0 != m
            not1 = a1 != m
            not2 = a2 != m
            # first cell equal to the max: 0, 1, width or width + 1
            arow[ow] = base + 2 * <int>ow + not0 * ((1 - not1) + not1 * (w32 + not2))
            nan |= (a0 != a0) | (a1 != a1) | (a2 != a2) | (a3 != a3)
    return nan != 0


def maxpool_forward(const floating[:, :, :, ::1] x not None,    # IN  (N, C, H, W)
                    floating[:, :, :, ::1] out not None,        # OUT (N, C, OH, OW)
                    Py_ssize_t[:, :, :, ::1] argmax not None,   # OUT (N, C, OH, OW)
                    Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                    Py_ssize_t stride, Py_ssize_t pad, int n_threads=1):
    cdef Py_ssize_t n_channels = x.shape[1], p
    cdef bint fast = (kernel_h == 2 and kernel_w == 2 and stride == 2 and pad == 0
                      and x.shape[2] * x.shape[3] < 2147483647)   # 32-bit cell indices
    with nogil:
        for p in prange(x.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            if not fast or _maxpool2x2_plane(x, out, argmax, p // n_channels, p % n_channels):
                _maxpool_plane(x, out, argmax, p // n_channels, p % n_channels,
                               kernel_h, kernel_w, stride, pad)


cdef inline void _maxpool_backward_plane(const floating[:, :, :, ::1] dout,
                                         const Py_ssize_t[:, :, :, ::1] argmax,
                                         floating[:, :, :, ::1] dx,
                                         Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """dx[n, c].flat[argmax[n, c, oh, ow]] += dout[n, c, oh, ow]"""
    cdef Py_ssize_t plane = dx.shape[2] * dx.shape[3], n_out = dout.shape[2] * dout.shape[3], i
    cdef floating* dp = &dx[n, c, 0, 0]
    cdef const floating* gp = &dout[n, c, 0, 0]
    cdef const Py_ssize_t* ap = &argmax[n, c, 0, 0]
    for i in range(plane):
        dp[i] = 0
    for i in range(n_out):
        dp[ap[i]] += gp[i]


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


# ----------------------------------------------------------------------------- 2x2 codes
cdef inline bint _max2x2_codes_plane(const floating* xp, Py_ssize_t width, floating* op,
                                     int* cp, Py_ssize_t out_h,
                                     Py_ssize_t out_w) noexcept nogil:
    """2x2 stride-2 max pooling of one plane; cp gets the winner's place in its window
    (0, 1: top row; 2, 3: bottom row), the first cell equal to the max.  Returns whether
    the plane held a NaN (the caller then redoes it with :func:`_max2x2_codes_exact`)."""
    cdef const floating* row0
    cdef const floating* row1
    cdef Py_ssize_t oh, ow
    cdef floating a0, a1, a2, a3, top, bottom, total
    cdef int low, right0, right1, nan = 0
    for oh in range(out_h):
        row0 = xp + 2 * oh * width
        row1 = row0 + width
        for ow in range(out_w):
            a0 = row0[2 * ow]
            a1 = row0[2 * ow + 1]
            a2 = row1[2 * ow]
            a3 = row1[2 * ow + 1]
            top = a0 if a0 >= a1 else a1
            bottom = a2 if a2 >= a3 else a3
            low = top < bottom            # the bottom row wins only if strictly larger
            op[oh * out_w + ow] = bottom if top < bottom else top
            right0 = a0 < a1
            right1 = a2 < a3
            cp[oh * out_w + ow] = low * (2 + right1) + (1 - low) * right0
            total = a0 + a1 + a2 + a3     # NaN if any is (or from inf - inf: redone too)
            nan |= total != total
    return nan != 0


cdef inline void _max2x2_codes_exact(const floating* xp, Py_ssize_t width, floating* op,
                                     int* cp, Py_ssize_t out_h,
                                     Py_ssize_t out_w) noexcept nogil:
    """The same with the general rule (:func:`_wins`: the first NaN wins)."""
    cdef Py_ssize_t oh, ow, i
    cdef floating v, best
    cdef int code
    cdef bint take
    for oh in range(out_h):
        for ow in range(out_w):
            best = xp[2 * oh * width + 2 * ow]
            code = 0
            for i in range(1, 4):
                v = xp[(2 * oh + i // 2) * width + 2 * ow + i % 2]
                take = _wins(v, best)
                code = <int>i if take else code
                best = v if take else best
            op[oh * out_w + ow] = best
            cp[oh * out_w + ow] = code


cdef _check_2x2(Py_ssize_t* big, Py_ssize_t* small, Py_ssize_t* codes, str big_name,
                str small_name):
    """small and codes must be (N, C, H//2, W//2) for big (N, C, H, W)."""
    cdef Py_ssize_t i
    for i in range(4):
        if codes[i] != small[i] or small[i] != (big[i] if i < 2 else big[i] // 2):
            raise ValueError(f"{small_name} and codes must be (N, C, H//2, W//2) for "
                             f"{big_name} ({big[0]}, {big[1]}, {big[2]}, {big[3]}), got "
                             f"({small[0]}, {small[1]}, {small[2]}, {small[3]}) and "
                             f"({codes[0]}, {codes[1]}, {codes[2]}, {codes[3]})")


def maxpool2x2_forward(const floating[:, :, :, ::1] x not None,      # IN  (N, C, H, W)
                       floating[:, :, :, ::1] out not None,          # OUT (N, C, H//2, W//2)
                       int[:, :, :, ::1] codes not None,   # OUT (N, C, H//2, W//2)
                       int n_threads=1):
    """2x2 stride-2 max pooling; ``codes`` holds each winner's place in its window."""
    cdef Py_ssize_t n_channels = x.shape[1], p, n, c
    cdef Py_ssize_t width = x.shape[3], out_h = out.shape[2], out_w = out.shape[3]
    _check_2x2(x.shape, out.shape, codes.shape, "x", "out")
    with nogil:
        for p in prange(x.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            n = p // n_channels
            c = p % n_channels
            if _max2x2_codes_plane(&x[n, c, 0, 0], width, &out[n, c, 0, 0],
                                   &codes[n, c, 0, 0], out_h, out_w):
                _max2x2_codes_exact(&x[n, c, 0, 0], width, &out[n, c, 0, 0],
                                    &codes[n, c, 0, 0], out_h, out_w)


cdef inline int _max2x2_backward_plane(const floating* gp, const int* cp, floating* dp,
                                       Py_ssize_t height, Py_ssize_t width,
                                       Py_ssize_t out_h, Py_ssize_t out_w) noexcept nogil:
    """Each dx cell written once: the window's gradient (+ 0, which turns -0.0 into 0.0 as
    the general path's scatter-add does) at its winner, 0 elsewhere.  One loop per dx
    row: GCC vectorises each (with all four stores in one loop it would not if-convert:
    scalar and mispredicted, 8x slower than the scatter-add).  Returns 1 if a code was
    outside 0..3 (its window then got zeros: the caller raises)."""
    cdef floating* d0
    cdef floating* d1
    cdef Py_ssize_t oh, ow, w
    cdef floating g, zero = 0
    cdef int k, bad = 0
    for oh in range(out_h):
        d0 = dp + 2 * oh * width
        d1 = d0 + width
        for ow in range(out_w):
            g = gp[oh * out_w + ow] + zero
            k = cp[oh * out_w + ow]
            d0[2 * ow] = g if k == 0 else zero
            d0[2 * ow + 1] = g if k == 1 else zero
            bad |= <unsigned int>k > 3
        for ow in range(out_w):
            g = gp[oh * out_w + ow] + zero
            k = cp[oh * out_w + ow]
            d1[2 * ow] = g if k == 2 else zero
            d1[2 * ow + 1] = g if k == 3 else zero
        for w in range(2 * out_w, width):
            d0[w] = 0
            d1[w] = 0
    for w in range(2 * out_h * width, height * width):
        dp[w] = 0
    return bad


def maxpool2x2_backward(const floating[:, :, :, ::1] dout not None,          # IN  (N, C, OH, OW)
                        const int[:, :, :, ::1] codes not None,    # IN  (N, C, OH, OW)
                        floating[:, :, :, ::1] dx not None,                  # OUT (N, C, H, W)
                        int n_threads=1):
    cdef Py_ssize_t n_channels = dx.shape[1], p, n, c
    cdef Py_ssize_t height = dx.shape[2], width = dx.shape[3]
    cdef Py_ssize_t out_h = dout.shape[2], out_w = dout.shape[3]
    cdef int bad = 0
    _check_2x2(dx.shape, dout.shape, codes.shape, "dx", "dout")
    with nogil:
        for p in prange(dx.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            n = p // n_channels
            c = p % n_channels
            bad |= _max2x2_backward_plane(&dout[n, c, 0, 0], &codes[n, c, 0, 0],
                                          &dx[n, c, 0, 0], height, width, out_h, out_w)
    if bad:
        raise ValueError("codes must hold window places 0..3")
