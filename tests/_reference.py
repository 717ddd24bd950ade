"""Slow, obviously-correct NumPy references for the cnn_core kernels.

Every function here is written with plain Python loops over the definition
(the way Keras keeps ``np_maxpool2d`` in its tests) and is never optimised:
the point is that a reader can check each line against the maths.  They
compute in the dtype they are given, except where noted (batch-norm
statistics and sums are accumulated in float64, like the kernels).

Shapes: x is ``(N, C, H, W)``, a convolution weight ``(FN, C, KH, KW)``,
``OH = (H + 2*pad - KH) // stride + 1`` and likewise ``OW``.
"""
import math

import numpy as np


def out_size(size, kernel, stride, pad):
    """Number of window positions along one axis (floor mode)."""
    return (size + 2 * pad - kernel) // stride + 1


def _pad(x, pad, value):
    """x (N, C, H, W) with ``pad`` cells of ``value`` on each side of H and W."""
    n_batch, n_channels, height, width = x.shape
    padded = np.full((n_batch, n_channels, height + 2 * pad, width + 2 * pad), value, dtype=x.dtype)
    for n in range(n_batch):
        for c in range(n_channels):
            for h in range(height):
                for w in range(width):
                    padded[n, c, h + pad, w + pad] = x[n, c, h, w]
    return padded


# ----------------------------------------------------------------------------- im2col / col2im
def im2col_ref(x, kh, kw, stride, pad):
    """cols[(n*OH + oh)*OW + ow, (c*KH + i)*KW + j] = x_pad[n, c, oh*S + i, ow*S + j]."""
    n_batch, n_channels, height, width = x.shape
    oh_n, ow_n = out_size(height, kh, stride, pad), out_size(width, kw, stride, pad)
    x_pad = _pad(x, pad, 0)
    cols = np.zeros((n_batch * oh_n * ow_n, n_channels * kh * kw), dtype=x.dtype)
    for n in range(n_batch):
        for oh in range(oh_n):
            for ow in range(ow_n):
                row = (n * oh_n + oh) * ow_n + ow
                for c in range(n_channels):
                    for i in range(kh):
                        for j in range(kw):
                            col = (c * kh + i) * kw + j
                            cols[row, col] = x_pad[n, c, oh * stride + i, ow * stride + j]
    return cols


def col2im_ref(cols, x_shape, kh, kw, stride, pad):
    """Adjoint of im2col_ref: every cols entry is added back to the x cell it was copied from."""
    n_batch, n_channels, height, width = x_shape
    oh_n, ow_n = out_size(height, kh, stride, pad), out_size(width, kw, stride, pad)
    x_pad = np.zeros((n_batch, n_channels, height + 2 * pad, width + 2 * pad), dtype=cols.dtype)
    for n in range(n_batch):
        for oh in range(oh_n):
            for ow in range(ow_n):
                row = (n * oh_n + oh) * ow_n + ow
                for c in range(n_channels):
                    for i in range(kh):
                        for j in range(kw):
                            col = (c * kh + i) * kw + j
                            x_pad[n, c, oh * stride + i, ow * stride + j] += cols[row, col]
    return x_pad[:, :, pad:pad + height, pad:pad + width].copy()


# ----------------------------------------------------------------------------- convolution
def conv2d_ref(x, W, b, stride, pad):
    """out[n, f, oh, ow] = b[f] + sum_{c,i,j} W[f, c, i, j] * x_pad[n, c, oh*S + i, ow*S + j].

    Direct loops over output positions (not via im2col); sums in float64.
    """
    n_batch, n_channels, height, width = x.shape
    n_filters, _, kh, kw = W.shape
    oh_n, ow_n = out_size(height, kh, stride, pad), out_size(width, kw, stride, pad)
    x_pad = _pad(x.astype(np.float64), pad, 0.0)
    W64 = W.astype(np.float64)
    out = np.zeros((n_batch, n_filters, oh_n, ow_n), dtype=np.float64)
    for n in range(n_batch):
        for f in range(n_filters):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    acc = float(b[f])
                    for c in range(n_channels):
                        for i in range(kh):
                            for j in range(kw):
                                acc += W64[f, c, i, j] * x_pad[n, c, oh * stride + i, ow * stride + j]
                    out[n, f, oh, ow] = acc
    return out.astype(x.dtype)


def conv2d_backward_ref(dout, x, W, stride, pad):
    """(dx, dW, db) of conv2d_ref, by differentiating its loops term by term (float64 sums)."""
    n_batch, n_channels, height, width = x.shape
    n_filters, _, kh, kw = W.shape
    _, _, oh_n, ow_n = dout.shape
    x_pad = _pad(x.astype(np.float64), pad, 0.0)
    dx_pad = np.zeros_like(x_pad)
    dW = np.zeros(W.shape, dtype=np.float64)
    db = np.zeros(n_filters, dtype=np.float64)
    for n in range(n_batch):
        for f in range(n_filters):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    g = float(dout[n, f, oh, ow])
                    db[f] += g
                    for c in range(n_channels):
                        for i in range(kh):
                            for j in range(kw):
                                h, w = oh * stride + i, ow * stride + j
                                dW[f, c, i, j] += g * x_pad[n, c, h, w]
                                dx_pad[n, c, h, w] += g * float(W[f, c, i, j])
    dx = dx_pad[:, :, pad:pad + height, pad:pad + width]
    return dx.astype(x.dtype), dW.astype(x.dtype), db.astype(x.dtype)


# ----------------------------------------------------------------------------- pooling
def maxpool2d_ref(x, kh, kw, stride, pad):
    """Max pooling -> (out, argmax).

    Padding is -inf so a padded cell never wins.  The window is scanned in
    row-major order: the first NaN wins; otherwise the first maximum (ties go to
    the earlier cell).  argmax is the flat index h*W + w in the unpadded plane.
    """
    n_batch, n_channels, height, width = x.shape
    oh_n, ow_n = out_size(height, kh, stride, pad), out_size(width, kw, stride, pad)
    x_pad = _pad(x, pad, -np.inf)
    out = np.empty((n_batch, n_channels, oh_n, ow_n), dtype=x.dtype)
    argmax = np.empty((n_batch, n_channels, oh_n, ow_n), dtype=np.intp)
    for n in range(n_batch):
        for c in range(n_channels):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    best, best_hw = None, None
                    for i in range(kh):
                        for j in range(kw):
                            hp, wp = oh * stride + i, ow * stride + j
                            if hp < pad or hp >= pad + height or wp < pad or wp >= pad + width:
                                continue  # a padded (-inf) cell never wins, even over a real -inf
                            v = x_pad[n, c, hp, wp]
                            if best is None:
                                take = True
                            elif math.isnan(best):
                                take = False  # the first NaN stays
                            elif math.isnan(v):
                                take = True
                            else:
                                take = v > best  # strict: ties keep the first
                            if take:
                                best, best_hw = v, (hp - pad, wp - pad)
                    out[n, c, oh, ow] = best
                    argmax[n, c, oh, ow] = best_hw[0] * width + best_hw[1]
    return out, argmax


def maxpool2d_backward_ref(dout, argmax, x_shape):
    """dx[n, c].flat[argmax[n, c, oh, ow]] += dout[n, c, oh, ow], windows in row-major order."""
    n_batch, n_channels, height, width = x_shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for n in range(n_batch):
        for c in range(n_channels):
            for oh in range(dout.shape[2]):
                for ow in range(dout.shape[3]):
                    k = int(argmax[n, c, oh, ow])
                    dx[n, c, k // width, k % width] += dout[n, c, oh, ow]
    return dx


def _real_cells(oh, ow, kh, kw, stride, pad, height, width):
    """The (h, w) cells of the unpadded plane inside window (oh, ow)."""
    cells = []
    for i in range(kh):
        for j in range(kw):
            h, w = oh * stride - pad + i, ow * stride - pad + j
            if 0 <= h < height and 0 <= w < width:
                cells.append((h, w))
    return cells


def avgpool2d_ref(x, kh, kw, stride, pad, count_include_pad=True):
    """Window mean; divides by kh*kw (padding counted) or by the number of real cells."""
    n_batch, n_channels, height, width = x.shape
    oh_n, ow_n = out_size(height, kh, stride, pad), out_size(width, kw, stride, pad)
    out = np.empty((n_batch, n_channels, oh_n, ow_n), dtype=x.dtype)
    for n in range(n_batch):
        for c in range(n_channels):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    cells = _real_cells(oh, ow, kh, kw, stride, pad, height, width)
                    total = 0.0
                    for h, w in cells:
                        total += float(x[n, c, h, w])
                    count = kh * kw if count_include_pad else len(cells)
                    out[n, c, oh, ow] = total / count
    return out


def avgpool2d_backward_ref(dout, x_shape, kh, kw, stride, pad, count_include_pad=True):
    """Each window's dout / count is added to each real cell of the window."""
    n_batch, n_channels, height, width = x_shape
    dx = np.zeros(x_shape, dtype=np.float64)
    for n in range(n_batch):
        for c in range(n_channels):
            for oh in range(dout.shape[2]):
                for ow in range(dout.shape[3]):
                    cells = _real_cells(oh, ow, kh, kw, stride, pad, height, width)
                    count = kh * kw if count_include_pad else len(cells)
                    for h, w in cells:
                        dx[n, c, h, w] += float(dout[n, c, oh, ow]) / count
    return dx.astype(dout.dtype)


# ----------------------------------------------------------------------------- batch norm
def _bn_groups(x):
    """For each channel (4-D) or feature (2-D) c, the list of values x[..., c, ...]."""
    if x.ndim == 2:
        return [[float(x[n, d]) for n in range(x.shape[0])] for d in range(x.shape[1])]
    groups = []
    for c in range(x.shape[1]):
        values = []
        for n in range(x.shape[0]):
            for h in range(x.shape[2]):
                for w in range(x.shape[3]):
                    values.append(float(x[n, c, h, w]))
        groups.append(values)
    return groups


def batchnorm_stats_ref(x):
    """Per-channel (4-D) or per-feature (2-D) mean and biased variance, float64, two passes."""
    groups = _bn_groups(x)
    mean = np.empty(len(groups))
    var = np.empty(len(groups))
    for c, values in enumerate(groups):
        m = math.fsum(values) / len(values)
        mean[c] = m
        var[c] = math.fsum((v - m) ** 2 for v in values) / len(values)
    return mean, var


def batchnorm_forward_ref(x, gamma, beta, mean, var, eps=1e-7):
    """out = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c]; returns (out, inv_std)."""
    inv_std = np.empty(len(mean))
    for c in range(len(mean)):
        inv_std[c] = 1.0 / math.sqrt(float(var[c]) + eps)
    out = np.empty(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        c = idx[1]
        out[idx] = (float(x[idx]) - mean[c]) * inv_std[c] * float(gamma[c]) + float(beta[c])
    return out.astype(x.dtype), inv_std


def batchnorm_backward_ref(dout, x, gamma, mean, inv_std):
    """Training-mode gradient -> (dx, dgamma, dbeta), derived from scratch.

    With M values per channel, xhat = (x - mean) * inv_std and y = gamma*xhat + beta,
    where mean and var are the batch statistics (so they depend on x):

        dbeta   = sum dout
        dgamma  = sum dout * xhat
        dxhat   = dout * gamma
        dvar    = sum dxhat * (x - mean) * (-1/2) * inv_std**3
        dmean   = sum dxhat * (-inv_std) + dvar * sum(-2 (x - mean)) / M
        dx      = dxhat * inv_std + dvar * 2 (x - mean) / M + dmean / M

    Written out step by step (the book's computational-graph route), not the
    simplified closed form the kernel uses.
    """
    n_channels = len(mean)
    M = x.size // n_channels
    dbeta = np.zeros(n_channels)
    dgamma = np.zeros(n_channels)
    dvar = np.zeros(n_channels)
    dmean = np.zeros(n_channels)
    sum_centered = np.zeros(n_channels)
    for idx in np.ndindex(x.shape):
        c = idx[1]
        xc = float(x[idx]) - mean[c]
        g = float(dout[idx])
        dbeta[c] += g
        dgamma[c] += g * xc * inv_std[c]
        dvar[c] += g * float(gamma[c]) * xc * -0.5 * inv_std[c] ** 3
        dmean[c] += g * float(gamma[c]) * -inv_std[c]
        sum_centered[c] += -2.0 * xc
    for c in range(n_channels):
        dmean[c] += dvar[c] * sum_centered[c] / M
    dx = np.empty(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        c = idx[1]
        xc = float(x[idx]) - mean[c]
        dxhat = float(dout[idx]) * float(gamma[c])
        dx[idx] = dxhat * inv_std[c] + dvar[c] * 2.0 * xc / M + dmean[c] / M
    return dx.astype(x.dtype), dgamma.astype(x.dtype), dbeta.astype(x.dtype)
