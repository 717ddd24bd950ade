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
from libc.string cimport memset
from _types cimport floating


cdef Py_ssize_t _cell_stride(Py_ssize_t* shape, Py_ssize_t* strides, Py_ssize_t itemsize,
                             str name) except -1:
    """The element distance between cells of a (16, rows, tiles) array, whose (rows, tiles)
    block must be C-contiguous (checked here, before any nogil code)."""
    if (shape[0] != 16 or strides[2] != itemsize or strides[1] != shape[2] * itemsize
            or strides[0] < shape[1] * shape[2] * itemsize or strides[0] % itemsize):
        raise ValueError(f"{name} must be (16, rows, tiles) with C-contiguous rows, got shape "
                         f"{(shape[0], shape[1], shape[2])} and strides {(strides[0], strides[1], strides[2])}")
    return strides[0] // itemsize


DEF BLOCK = 32      # tiles per block of a tile row: the block's scratch stays in L1


cdef inline void _input_plane(const floating* src, Py_ssize_t width,
                              floating* v, Py_ssize_t cell, Py_ssize_t tiles_h,
                              Py_ssize_t tiles_w) noexcept nogil:
    """v[xi * cell + ty * TW + tx] := (B^T d B)[xi] for the plane's tiles (src is padded).

    Two passes per block of tiles: B^T down the four rows into a local scratch (contiguous),
    then B along the columns, one output cell per loop.  Written as one loop over tiles with
    16 output streams, gcc could not prove the streams apart from the input and left it
    scalar; each loop here has one output and vectorizes."""
    cdef floating s[4][2 * BLOCK + 2]
    cdef const floating* r0
    cdef const floating* r1
    cdef const floating* r2
    cdef const floating* r3
    cdef floating* o
    cdef floating* si
    cdef Py_ssize_t ty, t0, nt, q, tx, i
    for ty in range(tiles_h):
        for t0 in range(0, tiles_w, BLOCK):
            nt = min(BLOCK, tiles_w - t0)
            r0 = src + 2 * ty * width + 2 * t0
            r1 = r0 + width
            r2 = r1 + width
            r3 = r2 + width
            for q in range(2 * nt + 2):         # B^T along the rows
                s[0][q] = r0[q] - r2[q]
                s[1][q] = r1[q] + r2[q]
                s[2][q] = r2[q] - r1[q]
                s[3][q] = r1[q] - r3[q]
            for i in range(4):                  # then B along the columns
                si = s[i]
                o = v + 4 * i * cell + ty * tiles_w + t0
                for tx in range(nt):
                    o[tx] = si[2 * tx] - si[2 * tx + 2]
                o += cell
                for tx in range(nt):
                    o[tx] = si[2 * tx + 1] + si[2 * tx + 2]
                o += cell
                for tx in range(nt):
                    o[tx] = si[2 * tx + 2] - si[2 * tx + 1]
                o += cell
                for tx in range(nt):
                    o[tx] = si[2 * tx + 1] - si[2 * tx + 3]


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


cdef inline void _output_tile(const floating* m, Py_ssize_t cell, floating* y00, floating* y01,
                              floating* y10, floating* y11) noexcept nogil:
    """The 2x2 tile A^T m A of the 16 cells m[xi * cell]."""
    cdef floating a0, a1, a2, a3, b0, b1, b2, b3
    a0 = m[0] + m[cell] + m[2 * cell]
    b0 = m[cell] - m[2 * cell] - m[3 * cell]
    a1 = m[4 * cell] + m[5 * cell] + m[6 * cell]
    b1 = m[5 * cell] - m[6 * cell] - m[7 * cell]
    a2 = m[8 * cell] + m[9 * cell] + m[10 * cell]
    b2 = m[9 * cell] - m[10 * cell] - m[11 * cell]
    a3 = m[12 * cell] + m[13 * cell] + m[14 * cell]
    b3 = m[13 * cell] - m[14 * cell] - m[15 * cell]
    y00[0] = a0 + a1 + a2
    y01[0] = b0 + b1 + b2
    y10[0] = a1 - a2 - a3
    y11[0] = b1 - b2 - b3


cdef inline void _output_plane(const floating* m, Py_ssize_t cell, floating bias,
                               floating* out, Py_ssize_t out_h, Py_ssize_t out_w,
                               Py_ssize_t tiles_h, Py_ssize_t tiles_w) noexcept nogil:
    """out[2ty + p, 2tx + q] := (A^T m A)[p, q] + bias, cropped to (OH, OW)."""
    cdef Py_ssize_t ty, tx, h
    cdef floating y00, y01, y10, y11
    cdef floating* row0
    cdef floating* row1
    cdef const floating* mt
    cdef Py_ssize_t full_w = out_w // 2
    for ty in range(tiles_h):
        h = 2 * ty
        row0 = out + h * out_w
        row1 = row0 + out_w
        mt = m + ty * tiles_w
        if h + 1 < out_h:
            for tx in range(full_w):
                _output_tile(mt + tx, cell, &y00, &y01, &y10, &y11)
                row0[2 * tx] = y00 + bias
                row0[2 * tx + 1] = y01 + bias
                row1[2 * tx] = y10 + bias
                row1[2 * tx + 1] = y11 + bias
            if full_w < tiles_w:            # odd OW: the last tile's left column only
                _output_tile(mt + full_w, cell, &y00, &y01, &y10, &y11)
                row0[2 * full_w] = y00 + bias
                row1[2 * full_w] = y10 + bias
        else:                               # odd OH: the last tile row's top row only
            for tx in range(full_w):
                _output_tile(mt + tx, cell, &y00, &y01, &y10, &y11)
                row0[2 * tx] = y00 + bias
                row0[2 * tx + 1] = y01 + bias
            if full_w < tiles_w:
                _output_tile(mt + full_w, cell, &y00, &y01, &y10, &y11)
                row0[2 * full_w] = y00 + bias


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


cdef inline void _adjoint_tile(floating z0, floating w0, floating z1, floating w1,
                               floating* o, Py_ssize_t cell) noexcept nogil:
    """o[xi * cell] := (A dY A^T)[xi] for dY = [[z0, w0], [z1, w1]]."""
    cdef floating e0, e1, e2, e3, f0, f1, f2, f3
    e0 = z0                 # A along the columns, top row
    e1 = z0 + w0
    e2 = z0 - w0
    e3 = -w0
    f0 = z1                 # bottom row
    f1 = z1 + w1
    f2 = z1 - w1
    f3 = -w1
    o[0] = e0               # then along the rows
    o[cell] = e1
    o[2 * cell] = e2
    o[3 * cell] = e3
    o[4 * cell] = e0 + f0
    o[5 * cell] = e1 + f1
    o[6 * cell] = e2 + f2
    o[7 * cell] = e3 + f3
    o[8 * cell] = e0 - f0
    o[9 * cell] = e1 - f1
    o[10 * cell] = e2 - f2
    o[11 * cell] = e3 - f3
    o[12 * cell] = -f0
    o[13 * cell] = -f1
    o[14 * cell] = -f2
    o[15 * cell] = -f3


cdef inline void _output_adjoint_plane(const floating* dy, Py_ssize_t out_h, Py_ssize_t out_w,
                                       floating* dm, Py_ssize_t cell, Py_ssize_t tiles_h,
                                       Py_ssize_t tiles_w) noexcept nogil:
    """dm[xi * cell + ty * TW + tx] := (A dY A^T)[xi], dY cells outside (OH, OW) being 0."""
    cdef Py_ssize_t ty, tx, h, full_w = out_w // 2
    cdef const floating* row0
    cdef const floating* row1
    cdef floating* o
    for ty in range(tiles_h):
        h = 2 * ty
        row0 = dy + h * out_w
        row1 = row0 + out_w
        o = dm + ty * tiles_w
        if h + 1 < out_h:
            for tx in range(full_w):
                _adjoint_tile(row0[2 * tx], row0[2 * tx + 1], row1[2 * tx], row1[2 * tx + 1],
                              o + tx, cell)
            if full_w < tiles_w:
                _adjoint_tile(row0[2 * full_w], 0, row1[2 * full_w], 0, o + full_w, cell)
        else:
            for tx in range(full_w):
                _adjoint_tile(row0[2 * tx], row0[2 * tx + 1], 0, 0, o + tx, cell)
            if full_w < tiles_w:
                _adjoint_tile(row0[2 * full_w], 0, 0, 0, o + full_w, cell)


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
    """acc (a zeroed padded plane, row length ``width``) += B dV B^T over the tiles, in tile
    order.  Each column pair (2k, 2k+1) of a tile row gathers its terms from tiles k and k-1
    (so the loop over k carries no dependence through memory); the rows 2ty+2, 2ty+3 shared
    with the next tile row are added to when that row comes."""
    cdef Py_ssize_t ty, k
    cdef floating* r0
    cdef floating* r1
    cdef floating* r2
    cdef floating* r3
    cdef const floating* d
    cdef floating p00, p01, p02, p03, p10, p11, p12, p13
    cdef floating p20, p21, p22, p23, p30, p31, p32, p33
    cdef floating q00, q01, q10, q11, q20, q21, q30, q31   # columns 2k, 2k+1 per row i
    for ty in range(tiles_h):
        r0 = acc + 2 * ty * width
        r1 = r0 + width
        r2 = r1 + width
        r3 = r2 + width
        d = dv + ty * tiles_w
        for k in range(tiles_w + 1):
            # B along the columns: tile k's columns 0, 1 and tile k-1's columns 2, 3
            if k < tiles_w:
                p00 = d[k]
                p01 = d[cell + k] - d[2 * cell + k] + d[3 * cell + k]
                p10 = d[4 * cell + k]
                p11 = d[5 * cell + k] - d[6 * cell + k] + d[7 * cell + k]
                p20 = d[8 * cell + k]
                p21 = d[9 * cell + k] - d[10 * cell + k] + d[11 * cell + k]
                p30 = d[12 * cell + k]
                p31 = d[13 * cell + k] - d[14 * cell + k] + d[15 * cell + k]
            else:
                p00 = p01 = p10 = p11 = p20 = p21 = p30 = p31 = 0
            if k > 0:
                p02 = d[cell + k - 1] + d[2 * cell + k - 1] - d[k - 1]
                p03 = -d[3 * cell + k - 1]
                p12 = d[5 * cell + k - 1] + d[6 * cell + k - 1] - d[4 * cell + k - 1]
                p13 = -d[7 * cell + k - 1]
                p22 = d[9 * cell + k - 1] + d[10 * cell + k - 1] - d[8 * cell + k - 1]
                p23 = -d[11 * cell + k - 1]
                p32 = d[13 * cell + k - 1] + d[14 * cell + k - 1] - d[12 * cell + k - 1]
                p33 = -d[15 * cell + k - 1]
            else:
                p02 = p03 = p12 = p13 = p22 = p23 = p32 = p33 = 0
            q00 = p00 + p02
            q01 = p01 + p03
            q10 = p10 + p12
            q11 = p11 + p13
            q20 = p20 + p22
            q21 = p21 + p23
            q30 = p30 + p32
            q31 = p31 + p33
            # then B along the rows
            r0[2 * k] += q00
            r0[2 * k + 1] += q01
            r1[2 * k] += q10 - q20 + q30
            r1[2 * k + 1] += q11 - q21 + q31
            r2[2 * k] += q10 + q20 - q00
            r2[2 * k + 1] += q11 + q21 - q01
            r3[2 * k] -= q30
            r3[2 * k + 1] -= q31


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
