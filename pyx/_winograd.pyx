"""Winograd F(2x2, 3x3) transforms for stride-1 3x3 convolutions.

A 3x3 correlation of a 4x4 input tile d gives a 2x2 output tile

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, over 16 cells xi = 4i + j)

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).  Summed over
input channels, the 16 cells are 16 independent matrix products
``M[xi] (FN, T) = U[xi] (FN, C) @ V[xi] (C, T)`` over all tiles T; those go to BLAS
(cnn_core.functional), with 2.25x fewer multiply-adds than im2col's product.  This module
holds only the data transforms and their adjoints (for the backward pass):

    input_transform     x (zero-padded planes) -> V = B^T d B per tile
    output_transform    M -> Y = A^T M A per tile, + bias, cropped to (OH, OW)
    output_adjoint      dY -> dM = A dY A^T per tile (the gradient of output_transform)
    input_adjoint       dV -> dx = sum over tiles of B dV B^T (the gradient of input_transform)

The 16 cells of V, M and their gradients are (16, channels, tiles) arrays whose first
stride may exceed channels * tiles (the caller spaces the cells to keep them out of the same
cache sets).  Tile t of sample n is ``(n * TH + ty) * TW + tx``; tile (ty, tx) reads padded rows
2ty..2ty+3 and columns 2tx..2tx+3 and writes output rows 2ty, 2ty+1 and columns 2tx, 2tx+1.
The transforms use only +-1 (the 1/2 of G is in the weights), so they add no rounding of
their own beyond the sums.  Every kernel runs one task per (sample, channel) plane, which
owns its slice of the output: results do not depend on the thread count.  Inputs are
validated and allocated by cnn_core.functional; these kernels only compute.
"""
from cython.parallel cimport prange
from libc.string cimport memcpy, memset
from _types cimport floating


cdef Py_ssize_t _cell_stride(Py_ssize_t* shape, Py_ssize_t* strides, Py_ssize_t itemsize,
                             str name) except -1:
    """The element distance between cells of a (16, rows, tiles) array, whose (rows, tiles)
    block must be C-contiguous (checked here, before any nogil code)."""
    # (the strides of length-1 dimensions are never used, and NumPy may set them to anything)
    if (shape[0] != 16 or (shape[2] > 1 and strides[2] != itemsize)
            or (shape[1] > 1 and strides[1] != shape[2] * itemsize)
            or strides[0] < shape[1] * shape[2] * itemsize or strides[0] % itemsize):
        raise ValueError(f"{name} must be (16, rows, tiles) with C-contiguous rows, got shape "
                         f"{(shape[0], shape[1], shape[2])} and strides {(strides[0], strides[1], strides[2])}")
    return strides[0] // itemsize


DEF GROUP = 256     # tiles per block: whole tile rows while they fit, else pieces of a row
                    # (the block's scratch, 8-16 KB, stays in L1)


cdef inline Py_ssize_t _group_span(Py_ssize_t tiles_w) noexcept nogil:
    """Tiles per row piece of a block: a whole tile row if it fits in GROUP, else GROUP."""
    return tiles_w if tiles_w <= GROUP else GROUP


cdef inline Py_ssize_t _group_rows(Py_ssize_t ty0, Py_ssize_t tiles_h,
                                   Py_ssize_t tiles_w) noexcept nogil:
    """Tile rows in the block starting at row ty0: as many whole rows as fit in GROUP tiles
    (their cells are contiguous), or 1 when a row is cut into pieces."""
    if tiles_w > GROUP:
        return 1
    return min(GROUP // tiles_w, tiles_h - ty0)


cdef inline void _input_plane(const floating* src, Py_ssize_t width,
                              floating* v, Py_ssize_t cell, Py_ssize_t tiles_h,
                              Py_ssize_t tiles_w) noexcept nogil:
    """v[xi * cell + ty * TW + tx] := (B^T d B)[xi] for the plane's tiles (src is padded).

    Per block of tiles (as in _output_plane): B along the columns of each input row once
    (rows 2ty..2ty+3 of consecutive tiles overlap by two), stored by tile with even and odd
    rows apart, so that row 2ty+2 of tile (ty, tx) sits one tile row after row 2ty.  Then
    B^T down the rows is 16 loops over the whole block, one output cell each.  (A single
    loop over tiles writing 16 streams stayed scalar; per-row loops were 4-14 tiles long.)"""
    cdef floating xe[4][GROUP + GROUP]     # xe[j][(h - 2ty0) / 2 * nt + tx], even rows h
    cdef floating xo[4][GROUP + GROUP]     # odd rows
    cdef const floating* row
    cdef floating* o
    cdef floating* dst0
    cdef floating* dst1
    cdef floating* dst2
    cdef floating* dst3
    cdef Py_ssize_t ty0, n_rows, t0, nt, span, length, h, tx, c, k, j
    span = _group_span(tiles_w)
    ty0 = 0
    while ty0 < tiles_h:
        n_rows = _group_rows(ty0, tiles_h, tiles_w)
        t0 = 0
        while t0 < tiles_w:
            nt = min(span, tiles_w - t0)
            length = n_rows * nt
            for h in range(2 * n_rows + 2):     # B along the columns of each input row
                row = src + (2 * ty0 + h) * width + 2 * t0
                k = (h // 2) * nt
                if h % 2 == 0:
                    dst0 = &xe[0][k]
                    dst1 = &xe[1][k]
                    dst2 = &xe[2][k]
                    dst3 = &xe[3][k]
                else:
                    dst0 = &xo[0][k]
                    dst1 = &xo[1][k]
                    dst2 = &xo[2][k]
                    dst3 = &xo[3][k]
                for tx in range(nt):
                    c = 2 * tx
                    dst0[tx] = row[c] - row[c + 2]
                    dst1[tx] = row[c + 1] + row[c + 2]
                    dst2[tx] = row[c + 2] - row[c + 1]
                    dst3[tx] = row[c + 1] - row[c + 3]
            o = v + ty0 * tiles_w + t0          # then B^T down the rows: 0-2, 1+2, 2-1, 1-3
            for j in range(4):
                for k in range(length):
                    o[j * cell + k] = xe[j][k] - xe[j][k + nt]
                for k in range(length):
                    o[(4 + j) * cell + k] = xo[j][k] + xe[j][k + nt]
                for k in range(length):
                    o[(8 + j) * cell + k] = xe[j][k + nt] - xo[j][k]
                for k in range(length):
                    o[(12 + j) * cell + k] = xo[j][k] - xo[j][k + nt]
            t0 += nt
        ty0 += n_rows


def pad_planes(const floating[:, :, :, ::1] x not None,    # IN  (N, C, H, W)
               floating[:, :, :, ::1] xp not None,         # OUT (>= N, C, HP, WP)
               Py_ssize_t pad, int n_threads=1):
    """xp[n, c, pad:pad+H, pad:pad+W] := x[n, c], row by row; the rest of xp is untouched
    (the caller keeps its border zero).  NumPy's strided copy took 0.16 ms per 100 samples
    of DeepConvNet's (64, 7, 7) planes: 7-float rows, each a loop of its own."""
    cdef Py_ssize_t n_channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t wp = xp.shape[3], p, n, c, h
    cdef const floating* src
    cdef floating* dst
    if (xp.shape[0] < x.shape[0] or xp.shape[1] != n_channels or pad < 0
            or pad + height > xp.shape[2] or pad + width > wp):
        raise ValueError(f"xp ({xp.shape[0]}, {xp.shape[1]}, {xp.shape[2]}, {wp}) cannot hold "
                         f"x ({x.shape[0]}, {n_channels}, {height}, {width}) padded by {pad}")
    with nogil:
        for p in prange(x.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            n = p // n_channels
            c = p % n_channels
            src = &x[n, c, 0, 0]
            dst = &xp[n, c, pad, pad]
            for h in range(height):
                memcpy(dst + h * wp, src + h * width, width * sizeof(floating))


def input_transform(const floating[:, :, :, ::1] xp not None,   # IN  (N, C, HP, WP), padded
                    floating[:, :, :] v not None,               # OUT (16, C, N*TH*TW), rows contiguous
                    Py_ssize_t tiles_h, Py_ssize_t tiles_w, int n_threads=1):
    """HP >= 2*TH + 2 and WP >= 2*TW + 2 (checked by the caller)."""
    cdef Py_ssize_t n_channels = xp.shape[1], n_tiles = tiles_h * tiles_w
    cdef Py_ssize_t cell = _cell_stride(v.shape, v.strides, sizeof(floating), "v"), p, n, c
    with nogil:
        for p in prange(xp.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            n = p // n_channels
            c = p % n_channels
            _input_plane(&xp[n, c, 0, 0], xp.shape[3], &v[0, c, n * n_tiles], cell,
                         tiles_h, tiles_w)


cdef inline void _output_plane(const floating* m, Py_ssize_t cell, floating bias,
                               floating* out, Py_ssize_t out_h, Py_ssize_t out_w,
                               Py_ssize_t tiles_h, Py_ssize_t tiles_w) noexcept nogil:
    """out[2ty + p, 2tx + q] := (A^T m A)[p, q] + bias, cropped to (OH, OW).

    Per block of tiles (whole tile rows, as many as fit in GROUP tiles, or a piece of one
    long row), A^T along the columns into a local scratch (a_i: output column 0, b_i:
    column 1) in loops over the whole block, then along the rows into the output, one row
    per loop.  The long first loops matter on small planes: an 8x8 output is 4 tiles wide."""
    cdef floating a[4][GROUP]
    cdef floating b[4][GROUP]
    cdef const floating* mi
    cdef floating* row
    cdef Py_ssize_t ty0, ty, r, n_rows, t0, nt, span, length, n_full, tx, i, k
    cdef Py_ssize_t full_w = out_w // 2
    span = _group_span(tiles_w)
    ty0 = 0
    while ty0 < tiles_h:
        n_rows = _group_rows(ty0, tiles_h, tiles_w)
        t0 = 0
        while t0 < tiles_w:
            nt = min(span, tiles_w - t0)
            length = n_rows * nt                # contiguous in m: whole rows, or one piece
            for i in range(4):
                mi = m + 4 * i * cell + ty0 * tiles_w + t0
                for k in range(length):
                    a[i][k] = mi[k] + mi[cell + k] + mi[2 * cell + k]
                for k in range(length):
                    b[i][k] = mi[cell + k] - mi[2 * cell + k] - mi[3 * cell + k]
            n_full = min(nt, full_w - t0)       # tiles with both output columns inside OW
            for r in range(n_rows):
                ty = ty0 + r
                k = r * nt
                row = out + 2 * ty * out_w + 2 * t0
                for tx in range(n_full):
                    row[2 * tx] = a[0][k + tx] + a[1][k + tx] + a[2][k + tx] + bias
                    row[2 * tx + 1] = b[0][k + tx] + b[1][k + tx] + b[2][k + tx] + bias
                if n_full < nt:                 # odd OW: the last tile's left column
                    row[2 * n_full] = a[0][k + n_full] + a[1][k + n_full] + a[2][k + n_full] + bias
                if 2 * ty + 1 >= out_h:         # odd OH: the last tile row's top row only
                    continue
                row += out_w
                for tx in range(n_full):
                    row[2 * tx] = a[1][k + tx] - a[2][k + tx] - a[3][k + tx] + bias
                    row[2 * tx + 1] = b[1][k + tx] - b[2][k + tx] - b[3][k + tx] + bias
                if n_full < nt:
                    row[2 * n_full] = a[1][k + n_full] - a[2][k + n_full] - a[3][k + n_full] + bias
            t0 += nt
        ty0 += n_rows


def output_transform(const floating[:, :, :] m not None,       # IN  (16, FN, N*TH*TW), rows contiguous
                     const floating[::1] b not None,           # IN  (FN,) bias
                     floating[:, :, :, ::1] out not None,      # OUT (N, FN, OH, OW)
                     Py_ssize_t tiles_h, Py_ssize_t tiles_w, int n_threads=1):
    cdef Py_ssize_t n_filters = out.shape[1], n_tiles = tiles_h * tiles_w
    cdef Py_ssize_t cell = _cell_stride(m.shape, m.strides, sizeof(floating), "m"), p, n, f
    with nogil:
        for p in prange(out.shape[0] * n_filters, schedule='static', num_threads=n_threads):
            n = p // n_filters
            f = p % n_filters
            _output_plane(&m[0, f, n * n_tiles], cell, b[f], &out[n, f, 0, 0],
                          out.shape[2], out.shape[3], tiles_h, tiles_w)


cdef inline void _output_adjoint_plane(const floating* dy, Py_ssize_t out_h, Py_ssize_t out_w,
                                       floating* dm, Py_ssize_t cell, Py_ssize_t tiles_h,
                                       Py_ssize_t tiles_w) noexcept nogil:
    """dm[xi * cell + ty * TW + tx] := (A dY A^T)[xi], dY cells outside (OH, OW) being 0.

    With dY = [[z0, w0], [z1, w1]], A along the columns gives e_p = (z_p, z_p + w_p,
    z_p - w_p, -w_p) for rows p = 0, 1; A along the rows gives cell rows
    (e_0, e_0 + e_1, e_0 - e_1, -e_1).  The tile values of a block (as in _output_plane)
    are gathered into a local scratch row by row, then each of the 16 cells is one loop
    over the whole block."""
    cdef floating z0[GROUP]
    cdef floating w0[GROUP]
    cdef floating z1[GROUP]
    cdef floating w1[GROUP]
    cdef const floating* row0
    cdef const floating* row1
    cdef floating* o
    cdef Py_ssize_t ty0, ty, r, n_rows, t0, nt, span, length, n_full, tx, k, c
    cdef Py_ssize_t full_w = out_w // 2
    cdef bint has_row1
    span = _group_span(tiles_w)
    ty0 = 0
    while ty0 < tiles_h:
        n_rows = _group_rows(ty0, tiles_h, tiles_w)
        t0 = 0
        while t0 < tiles_w:
            nt = min(span, tiles_w - t0)
            length = n_rows * nt
            n_full = min(nt, full_w - t0)
            for r in range(n_rows):
                ty = ty0 + r
                k = r * nt
                row0 = dy + 2 * ty * out_w + 2 * t0
                has_row1 = 2 * ty + 1 < out_h
                for tx in range(n_full):
                    z0[k + tx] = row0[2 * tx]
                    w0[k + tx] = row0[2 * tx + 1]
                if has_row1:
                    row1 = row0 + out_w
                    for tx in range(n_full):
                        z1[k + tx] = row1[2 * tx]
                        w1[k + tx] = row1[2 * tx + 1]
                else:
                    for tx in range(nt):
                        z1[k + tx] = 0
                        w1[k + tx] = 0
                if n_full < nt:                 # odd OW: the last tile has no right column
                    c = k + n_full
                    z0[c] = row0[2 * n_full]
                    w0[c] = 0
                    z1[c] = row0[out_w + 2 * n_full] if has_row1 else 0
                    w1[c] = 0
            o = dm + ty0 * tiles_w + t0
            for k in range(length):
                o[k] = z0[k]
            for k in range(length):
                o[cell + k] = z0[k] + w0[k]
            for k in range(length):
                o[2 * cell + k] = z0[k] - w0[k]
            for k in range(length):
                o[3 * cell + k] = -w0[k]
            for k in range(length):
                o[4 * cell + k] = z0[k] + z1[k]
            for k in range(length):
                o[5 * cell + k] = (z0[k] + w0[k]) + (z1[k] + w1[k])
            for k in range(length):
                o[6 * cell + k] = (z0[k] - w0[k]) + (z1[k] - w1[k])
            for k in range(length):
                o[7 * cell + k] = -w0[k] - w1[k]
            for k in range(length):
                o[8 * cell + k] = z0[k] - z1[k]
            for k in range(length):
                o[9 * cell + k] = (z0[k] + w0[k]) - (z1[k] + w1[k])
            for k in range(length):
                o[10 * cell + k] = (z0[k] - w0[k]) - (z1[k] - w1[k])
            for k in range(length):
                o[11 * cell + k] = w1[k] - w0[k]
            for k in range(length):
                o[12 * cell + k] = -z1[k]
            for k in range(length):
                o[13 * cell + k] = -(z1[k] + w1[k])
            for k in range(length):
                o[14 * cell + k] = w1[k] - z1[k]
            for k in range(length):
                o[15 * cell + k] = w1[k]
            t0 += nt
        ty0 += n_rows


def output_adjoint(const floating[:, :, :, ::1] dy not None,   # IN  (N, FN, OH, OW)
                   floating[:, :, :] dm not None,               # OUT (16, FN, N*TH*TW), rows contiguous
                   Py_ssize_t tiles_h, Py_ssize_t tiles_w, int n_threads=1):
    cdef Py_ssize_t n_filters = dy.shape[1], n_tiles = tiles_h * tiles_w
    cdef Py_ssize_t cell = _cell_stride(dm.shape, dm.strides, sizeof(floating), "dm"), p, n, f
    with nogil:
        for p in prange(dy.shape[0] * n_filters, schedule='static', num_threads=n_threads):
            n = p // n_filters
            f = p % n_filters
            _output_adjoint_plane(&dy[n, f, 0, 0], dy.shape[2], dy.shape[3],
                                  &dm[0, f, n * n_tiles], cell, tiles_h, tiles_w)


cdef inline void _input_adjoint_plane(const floating* dv, Py_ssize_t cell,
                                      floating* acc, Py_ssize_t width,
                                      Py_ssize_t tiles_h, Py_ssize_t tiles_w) noexcept nogil:
    """acc (a zeroed padded plane, row length ``width``) += B dV B^T over the tiles.

    Per block of tiles (as in _output_plane), B along the columns into a local scratch in
    loops over the whole block: p[i][j] is a tile's column-j contribution for row i
    (columns 2, 3 overlap the next tile's 0, 1).  Then, per tile row, each column pair
    (2k, 2k+1) gathers tile k's columns 0, 1 and tile k-1's columns 2, 3 (a row cut into
    pieces carries the previous piece's last tile), so no loop depends on itself through
    memory; B along the rows adds the four rows, one loop each.  The rows 2ty+2, 2ty+3
    shared with the next tile row are added to again when that row comes."""
    cdef floating p[4][4][GROUP]
    cdef floating qe[4][GROUP + 1]
    cdef floating qo[4][GROUP + 1]
    cdef floating carry2[4]
    cdef floating carry3[4]
    cdef const floating* d
    cdef floating* r0
    cdef floating* r1
    cdef floating* r2
    cdef floating* r3
    cdef Py_ssize_t ty0, ty, r, n_rows, t0, nt, span, length, n, i, k, kb
    span = _group_span(tiles_w)
    ty0 = 0
    while ty0 < tiles_h:
        n_rows = _group_rows(ty0, tiles_h, tiles_w)
        t0 = 0
        while t0 < tiles_w:
            nt = min(span, tiles_w - t0)
            length = n_rows * nt
            for i in range(4):                  # B along the columns, tile by tile
                d = dv + 4 * i * cell + ty0 * tiles_w + t0
                for k in range(length):
                    p[i][0][k] = d[k]
                for k in range(length):
                    p[i][1][k] = d[cell + k] - d[2 * cell + k] + d[3 * cell + k]
                for k in range(length):
                    p[i][2][k] = d[cell + k] + d[2 * cell + k] - d[k]
                for k in range(length):
                    p[i][3][k] = -d[3 * cell + k]
                if t0 == 0:
                    carry2[i] = 0
                    carry3[i] = 0
            # column pairs 2k, 2k+1 of each row; 2*TW, 2*TW + 1 get the last tile's 2, 3
            n = nt + 1 if t0 + nt == tiles_w else nt
            for r in range(n_rows):
                ty = ty0 + r
                kb = r * nt
                for i in range(4):
                    qe[i][0] = p[i][0][kb] + carry2[i]
                    qo[i][0] = p[i][1][kb] + carry3[i]
                    for k in range(1, nt):
                        qe[i][k] = p[i][0][kb + k] + p[i][2][kb + k - 1]
                        qo[i][k] = p[i][1][kb + k] + p[i][3][kb + k - 1]
                    if n > nt:
                        qe[i][nt] = p[i][2][kb + nt - 1]
                        qo[i][nt] = p[i][3][kb + nt - 1]
                r0 = acc + 2 * ty * width + 2 * t0
                r1 = r0 + width
                r2 = r1 + width
                r3 = r2 + width
                for k in range(n):              # then B along the rows
                    r0[2 * k] += qe[0][k]
                    r0[2 * k + 1] += qo[0][k]
                for k in range(n):
                    r1[2 * k] += qe[1][k] - qe[2][k] + qe[3][k]
                    r1[2 * k + 1] += qo[1][k] - qo[2][k] + qo[3][k]
                for k in range(n):
                    r2[2 * k] += qe[1][k] + qe[2][k] - qe[0][k]
                    r2[2 * k + 1] += qo[1][k] + qo[2][k] - qo[0][k]
                for k in range(n):
                    r3[2 * k] -= qe[3][k]
                    r3[2 * k + 1] -= qo[3][k]
            for i in range(4):                  # a row cut into pieces: carry its last tile
                carry2[i] = p[i][2][nt - 1]
                carry3[i] = p[i][3][nt - 1]
            t0 += nt
        ty0 += n_rows


def input_adjoint(const floating[:, :, :] dv not None,        # IN  (16, C, N*TH*TW), rows contiguous
                  floating[:, :, :, ::1] acc not None,         # scratch (N, C, HP, WP)
                  floating[:, :, :, ::1] dx not None,          # OUT (N, C, H, W)
                  Py_ssize_t pad, Py_ssize_t tiles_h, Py_ssize_t tiles_w, int n_threads=1):
    """dx[n, c] := the (pad, pad)-offset (H, W) window of the accumulated padded plane.
    HP >= 2*TH + 2, WP >= 2*TW + 2 and pad + H <= HP, pad + W <= WP (checked by the caller)."""
    cdef Py_ssize_t n_channels = dx.shape[1], n_tiles = tiles_h * tiles_w
    cdef Py_ssize_t cell = _cell_stride(dv.shape, dv.strides, sizeof(floating), "dv"), p, n, c, h, w
    cdef Py_ssize_t hp = acc.shape[2], wp = acc.shape[3], height = dx.shape[2], width = dx.shape[3]
    cdef floating* plane
    cdef floating* dst
    with nogil:
        for p in prange(dx.shape[0] * n_channels, schedule='static', num_threads=n_threads):
            n = p // n_channels
            c = p % n_channels
            plane = &acc[n, c, 0, 0]
            memset(plane, 0, hp * wp * sizeof(floating))
            _input_adjoint_plane(&dv[0, c, n * n_tiles], cell, plane, wp, tiles_h, tiles_w)
            dst = &dx[n, c, 0, 0]
            for h in range(height):
                for w in range(width):
                    dst[h * width + w] = plane[(h + pad) * wp + pad + w]
