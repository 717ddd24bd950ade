"""im2col / col2im in the book's layout.

cols has one row per output pixel (n, oh, ow) and one column per
(c, kh, kw), so a weight W of shape (FN, C, KH, KW) multiplies as
W.reshape(FN, -1).  Inputs are validated and allocated by
cnn_core.functional; these kernels only compute.
"""
from cython.parallel cimport prange
from _types cimport floating


cdef inline void _im2col_row(const floating[:, :, :, ::1] x, floating[:, ::1] cols,
                             Py_ssize_t n, Py_ssize_t oh, Py_ssize_t out_h, Py_ssize_t out_w,
                             Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                             Py_ssize_t stride, Py_ssize_t pad) noexcept nogil:
    """cols[(n*OH + oh)*OW + ow, (c*KH + i)*KW + j] := x_pad[n, c, oh*S + i, ow*S + j]

    Raw pointers and the range of fully interior windows hoisted out of the inner loop:
    per-element memoryview indexing and bounds tests made this 3x slower.  The OW rows
    written here (OW * C*KH*KW values) stay in L1 while each input row is reused."""
    cdef Py_ssize_t n_channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t k = cols.shape[1], kk = kernel_h * kernel_w
    cdef floating* dst0 = &cols[(n * out_h + oh) * out_w, 0]
    cdef const floating* src
    cdef floating* dst
    cdef Py_ssize_t c, i, j, h, w, ow, ow_lo, ow_hi
    # ow in [ow_lo, ow_hi): the whole window row lies inside [0, W)
    ow_lo = 0 if pad <= 0 else (pad - 1) // stride + 1   # ceil(P / S), without overflow
    ow_hi = 0 if width + pad - kernel_w < 0 else (width + pad - kernel_w) // stride + 1
    if ow_hi > out_w:
        ow_hi = out_w
    if ow_lo > ow_hi:
        ow_lo = ow_hi
    for c in range(n_channels):
        for i in range(kernel_h):
            h = oh * stride - pad + i
            if h < 0 or h >= height:
                for ow in range(out_w):
                    dst = dst0 + ow * k + c * kk + i * kernel_w
                    for j in range(kernel_w):
                        dst[j] = 0
                continue
            src = &x[n, c, h, 0]
            for ow in range(out_w):
                dst = dst0 + ow * k + c * kk + i * kernel_w
                w = ow * stride - pad
                if ow >= ow_lo and ow < ow_hi:
                    for j in range(kernel_w):
                        dst[j] = src[w + j]
                else:
                    for j in range(kernel_w):
                        dst[j] = src[w + j] if 0 <= w + j < width else 0


def im2col(const floating[:, :, :, ::1] x not None,   # IN  (N, C, H, W)
           floating[:, ::1] cols not None,             # OUT (N*OH*OW, C*KH*KW)
           Py_ssize_t kernel_h, Py_ssize_t kernel_w,
           Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t out_h, Py_ssize_t out_w,
           int n_threads=1):
    cdef Py_ssize_t n_batch = x.shape[0], r
    # One task per (n, oh): each owns OW whole rows of cols, so writes are disjoint.
    with nogil:
        for r in prange(n_batch * out_h, schedule='static', num_threads=n_threads):
            _im2col_row(x, cols, r // out_h, r % out_h, out_h, out_w, kernel_h, kernel_w,
                        stride, pad)


cdef inline void _col2im_image(const floating[:, ::1] cols, floating[:, :, :, ::1] dx,
                               Py_ssize_t n, Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                               Py_ssize_t stride, Py_ssize_t pad,
                               Py_ssize_t out_h, Py_ssize_t out_w) noexcept nogil:
    """dx[n, c, oh*S + i - P, ow*S + j - P] += cols[(n*OH + oh)*OW + ow, (c*KH + i)*KW + j]

    One task per image: it streams its rows of cols in order (each read once, contiguous)
    and scatters into dx[n], which stays in cache (C*H*W values)."""
    cdef Py_ssize_t n_channels = dx.shape[1], height = dx.shape[2], width = dx.shape[3]
    cdef Py_ssize_t plane = height * width, k = cols.shape[1]
    cdef floating* img = &dx[n, 0, 0, 0]
    cdef const floating* src
    cdef floating* drow
    cdef Py_ssize_t c, i, j, h, w, oh, ow, p
    for p in range(n_channels * plane):
        img[p] = 0
    for oh in range(out_h):
        for ow in range(out_w):
            src = &cols[(n * out_h + oh) * out_w + ow, 0]
            w = ow * stride - pad
            for c in range(n_channels):
                for i in range(kernel_h):
                    h = oh * stride - pad + i
                    if h < 0 or h >= height:
                        continue
                    drow = img + c * plane + h * width
                    for j in range(kernel_w):
                        if 0 <= w + j < width:
                            drow[w + j] += src[(c * kernel_h + i) * kernel_w + j]


def col2im(const floating[:, ::1] cols not None,       # IN  (N*OH*OW, C*KH*KW)
           floating[:, :, :, ::1] dx not None,         # OUT (N, C, H, W), overwritten
           Py_ssize_t kernel_h, Py_ssize_t kernel_w,
           Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t out_h, Py_ssize_t out_w,
           int n_threads=1):
    cdef Py_ssize_t n
    # One task per image: overlapping windows of an image are summed by one thread in a
    # fixed order, so the result does not depend on the thread count.
    with nogil:
        for n in prange(dx.shape[0], schedule='static', num_threads=n_threads):
            _col2im_image(cols, dx, n, kernel_h, kernel_w, stride, pad, out_h, out_w)


# ----------------------------------------------------------------------------------------
# The per-sample transposed layout used inside the convolution:
#     cols_t[n, (c*KH + i)*KW + j, oh*OW + ow] = x_pad[n, c, oh*S + i, ow*S + j]
# so that W (FN, K) @ cols_t[n] (K, OH*OW) is sample n's output in NCHW order with no
# transpose, and the inner loops run along output rows: contiguous reads of x (stride 1
# convolutions copy whole runs) and contiguous writes.  Measured on the DeepConvNet
# layers, this beats the book's layout (whose rows gather C planes per output pixel).

cdef inline void _valid_ow(Py_ssize_t j, Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t width,
                           Py_ssize_t out_w, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """[lo, hi) := the ow for which 0 <= ow*S - P + j < W."""
    cdef Py_ssize_t a = pad - j, b = width + pad - j   # need a <= ow*S < b
    lo[0] = 0 if a <= 0 else (a - 1) // stride + 1   # ceil(a / S), without overflow
    hi[0] = 0 if b <= 0 else (b - 1) // stride + 1
    if hi[0] > out_w:
        hi[0] = out_w
    if lo[0] > hi[0]:
        lo[0] = hi[0]


cdef inline void _same_rows(Py_ssize_t i, Py_ssize_t pad, Py_ssize_t height, Py_ssize_t out_h,
                            Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """[lo, hi) := the oh for which 0 <= oh - P + i < H (stride 1); lo <= hi <= OH."""
    lo[0] = pad - i if pad > i else 0
    if lo[0] > out_h:
        lo[0] = out_h
    hi[0] = height + pad - i
    if hi[0] > out_h:
        hi[0] = out_h
    if hi[0] < lo[0]:
        hi[0] = lo[0]


cdef inline void _same_run(Py_ssize_t i, Py_ssize_t j, Py_ssize_t pad, Py_ssize_t height,
                           Py_ssize_t width, Py_ssize_t out_h, Py_ssize_t* r_lo,
                           Py_ssize_t* r_hi, Py_ssize_t* lo, Py_ssize_t* hi, Py_ssize_t* start,
                           Py_ssize_t* length, Py_ssize_t* q_lo, Py_ssize_t* q_hi) noexcept nogil:
    """The one run of cols row (i, j) in a stride-1, OW == W convolution: its valid rows
    [r_lo, r_hi), its valid columns [lo, hi) (the others wrapped around a row end), and the
    run itself: cols_row[r_lo*W + q] <-> plane[start + q], q in [0, length), of which
    [q_lo, q_hi) lies inside the plane (0 <= q_lo <= q_hi <= length)."""
    _same_rows(i, pad, height, out_h, r_lo, r_hi)
    _valid_ow(j, 1, pad, width, width, lo, hi)
    start[0] = (r_lo[0] - pad + i) * width + (j - pad)
    length[0] = (r_hi[0] - r_lo[0]) * width
    q_lo[0] = -start[0] if start[0] < 0 else 0
    if q_lo[0] > length[0]:
        q_lo[0] = length[0]
    q_hi[0] = height * width - start[0] if start[0] + length[0] > height * width else length[0]
    if q_hi[0] < q_lo[0]:
        q_hi[0] = q_lo[0]


cdef inline void _zero_wrapped(floating* d, Py_ssize_t rows, Py_ssize_t width,
                               Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """d[oh*W + ow] := 0 for oh < rows and ow outside [lo, hi)."""
    cdef Py_ssize_t oh, ow
    for oh in range(rows):
        for ow in range(lo):
            d[oh * width + ow] = 0
        for ow in range(hi, width):
            d[oh * width + ow] = 0


cdef inline void _im2col_t_plane_same(const floating* plane, floating* dst,
                                      Py_ssize_t height, Py_ssize_t width,
                                      Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                      Py_ssize_t pad, Py_ssize_t out_h) noexcept nogil:
    """Stride 1 with OW == W (a "same" width, 2P == KW - 1): for a fixed (i, j) the valid
    rows of the cols row are ONE contiguous run of x shifted by (i - P)*W + (j - P), so it
    is copied in one long loop, then the cells that wrapped around a row end (ow - P + j
    outside [0, W)) are zeroed.  Short rows (DeepConvNet's 8- and 14-wide planes) cost a
    loop set-up each in the general form."""
    cdef Py_ssize_t n_pix = out_h * width
    cdef Py_ssize_t i, j, q, r_lo, r_hi, lo, hi, start, length, q_lo, q_hi
    cdef floating* d
    for i in range(kernel_h):
        for j in range(kernel_w):
            _same_run(i, j, pad, height, width, out_h, &r_lo, &r_hi, &lo, &hi,
                      &start, &length, &q_lo, &q_hi)
            d = dst + (i * kernel_w + j) * n_pix
            for q in range(r_lo * width):
                d[q] = 0
            for q in range(r_hi * width, n_pix):
                d[q] = 0
            d += r_lo * width
            for q in range(q_lo):
                d[q] = 0
            for q in range(q_lo, q_hi):
                d[q] = plane[start + q]
            for q in range(q_hi, length):
                d[q] = 0
            _zero_wrapped(d, r_hi - r_lo, width, lo, hi)


cdef inline void _im2col_t_plane(const floating[:, :, :, ::1] x, floating[:, :, ::1] cols,
                                 Py_ssize_t n, Py_ssize_t c,
                                 Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                 Py_ssize_t stride, Py_ssize_t pad,
                                 Py_ssize_t out_h, Py_ssize_t out_w) noexcept nogil:
    """cols[n, (c*KH + i)*KW + j, oh*OW + ow] := x_pad[n, c, oh*S + i, ow*S + j]

    Raw pointers, and a separate unit-stride copy loop that the compiler vectorises:
    the memoryview form ran at ~10 GB/s on the DeepConvNet layers."""
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3], n_pix = out_h * out_w
    cdef const floating* plane = &x[n, c, 0, 0]
    cdef floating* dst
    cdef const floating* src
    cdef Py_ssize_t i, j, oh, ow, h, lo, hi, w0
    if stride == 1 and out_w == width:
        _im2col_t_plane_same(plane, &cols[n, c * kernel_h * kernel_w, 0], height, width,
                             kernel_h, kernel_w, pad, out_h)
        return
    for i in range(kernel_h):
        for j in range(kernel_w):
            dst = &cols[n, (c * kernel_h + i) * kernel_w + j, 0]
            _valid_ow(j, stride, pad, width, out_w, &lo, &hi)
            w0 = j - pad
            for oh in range(out_h):
                h = oh * stride - pad + i
                if h < 0 or h >= height:
                    for ow in range(out_w):
                        dst[ow] = 0
                else:
                    for ow in range(lo):
                        dst[ow] = 0
                    src = plane + h * width + w0     # x[n, c, h, ow*S + w0] = src[ow*S]
                    if stride == 1:
                        for ow in range(lo, hi):
                            dst[ow] = src[ow]
                    else:
                        for ow in range(lo, hi):
                            dst[ow] = src[ow * stride]
                    for ow in range(hi, out_w):
                        dst[ow] = 0
                dst += out_w


def im2col_t(const floating[:, :, :, ::1] x not None,    # IN  (N, C, H, W)
             floating[:, :, ::1] cols not None,          # OUT (N, C*KH*KW, OH*OW)
             Py_ssize_t kernel_h, Py_ssize_t kernel_w,
             Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t out_h, Py_ssize_t out_w,
             int n_threads=1):
    cdef Py_ssize_t n_channels = x.shape[1], p
    # One task per (n, c): it owns rows c*KH*KW .. (c+1)*KH*KW - 1 of cols[n].
    with nogil:
        for p in prange(x.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            _im2col_t_plane(x, cols, p // n_channels, p % n_channels,
                            kernel_h, kernel_w, stride, pad, out_h, out_w)


cdef inline void _col2im_t_plane_same(floating* src, floating* plane,
                                      Py_ssize_t height, Py_ssize_t width,
                                      Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                      Py_ssize_t pad, Py_ssize_t out_h) noexcept nogil:
    """The adjoint of _im2col_t_plane_same: the cols entries of wrapped cells are set to 0
    (cols is the convolution's scratch buffer), then each (i, j) row is added to the plane
    in one long run.  Every dx cell receives its terms in the general loop's order."""
    cdef Py_ssize_t n_pix = out_h * width
    cdef Py_ssize_t i, j, q, r_lo, r_hi, lo, hi, start, length, q_lo, q_hi
    cdef floating* s
    for i in range(kernel_h):
        for j in range(kernel_w):
            _same_run(i, j, pad, height, width, out_h, &r_lo, &r_hi, &lo, &hi,
                      &start, &length, &q_lo, &q_hi)
            s = src + (i * kernel_w + j) * n_pix + r_lo * width
            _zero_wrapped(s, r_hi - r_lo, width, lo, hi)
            for q in range(q_lo, q_hi):
                plane[start + q] += s[q]


cdef inline void _col2im_t_plane(floating[:, :, ::1] cols, floating[:, :, :, ::1] dx,
                                 Py_ssize_t n, Py_ssize_t c,
                                 Py_ssize_t kernel_h, Py_ssize_t kernel_w,
                                 Py_ssize_t stride, Py_ssize_t pad,
                                 Py_ssize_t out_h, Py_ssize_t out_w) noexcept nogil:
    """dx[n, c, oh*S + i - P, ow*S + j - P] += cols[n, (c*KH + i)*KW + j, oh*OW + ow]

    Summed over (i, j, oh, ow) in this fixed order; raw pointers and a unit-stride loop
    the compiler vectorises (as in _im2col_t_plane)."""
    cdef Py_ssize_t height = dx.shape[2], width = dx.shape[3], p
    cdef floating* plane = &dx[n, c, 0, 0]
    cdef floating* dst
    cdef const floating* src
    cdef Py_ssize_t i, j, oh, ow, h, lo, hi, w0
    for p in range(height * width):
        plane[p] = 0
    if stride == 1 and out_w == width:
        _col2im_t_plane_same(&cols[n, c * kernel_h * kernel_w, 0], plane, height, width,
                             kernel_h, kernel_w, pad, out_h)
        return
    for i in range(kernel_h):
        for j in range(kernel_w):
            src = &cols[n, (c * kernel_h + i) * kernel_w + j, 0]
            _valid_ow(j, stride, pad, width, out_w, &lo, &hi)
            w0 = j - pad
            for oh in range(out_h):
                h = oh * stride - pad + i
                if h >= 0 and h < height:
                    dst = plane + h * width + w0     # dx[n, c, h, ow*S + w0] = dst[ow*S]
                    if stride == 1:
                        for ow in range(lo, hi):
                            dst[ow] += src[ow]
                    else:
                        for ow in range(lo, hi):
                            dst[ow * stride] += src[ow]
                src += out_w


def col2im_t(floating[:, :, ::1] cols not None,     # IN  (N, C*KH*KW, OH*OW), scratch: a
                                                   # "same" convolution zeroes wrapped cells
             floating[:, :, :, ::1] dx not None,          # OUT (N, C, H, W), overwritten
             Py_ssize_t kernel_h, Py_ssize_t kernel_w,
             Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t out_h, Py_ssize_t out_w,
             int n_threads=1):
    cdef Py_ssize_t n_channels = dx.shape[1], p
    # One task per (n, c) plane of dx, summed in a fixed order (thread-count independent).
    with nogil:
        for p in prange(dx.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            _col2im_t_plane(cols, dx, p // n_channels, p % n_channels,
                            kernel_h, kernel_w, stride, pad, out_h, out_w)
