"""Validated entry points to the compiled kernels.

This module is the only caller of the ``cnn_core._*`` extension modules.  It
checks shapes, dtypes and hyper-parameters, converts input by the one dtype
rule of :mod:`cnn_core._dtype`, allocates outputs and hands C-contiguous
arrays to the kernels, which then only compute (with the GIL released).
Every error is a ``ValueError``/``TypeError`` naming the argument and the
value received.

Shapes: x is ``(N, C, H, W)``, a convolution weight ``(FN, C, KH, KW)``.
"""
import math
import numbers
import operator
import sys

import numpy as np

from . import _batchnorm, _elementwise, _im2col, _pool, _winograd
from ._dtype import as_float_array, result_float_dtype
from ._threads import MAX_THREADS, get_num_threads
from ._workers import run_chunks, split_bounds

__all__ = [
    "conv_output_size", "im2col", "col2im", "conv2d_forward", "conv2d_backward",
    "maxpool2d_forward", "maxpool2d_backward", "maxpool2x2_forward", "maxpool2x2_backward",
    "maxpool2x2_argmax", "conv2d_maxpool_forward", "conv2d_maxpool_backward",
    "avgpool2d_forward", "avgpool2d_backward",
    "batchnorm_stats", "batchnorm_forward", "batchnorm_backward",
    "relu_forward", "relu_backward", "adam_update",
]


# ----------------------------------------------------------------------------- checks
def _int(name, value, minimum):
    """``value`` as a Python int >= minimum, or a clear error."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}") from None
    if v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if v > sys.maxsize:     # the kernels index with Py_ssize_t (C would raise OverflowError)
        raise ValueError(f"{name} must be an int <= {sys.maxsize}, got {value!r}")
    return v


def _pair(name, value, minimum):
    """An int or a pair of ints, as (h, w)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return _int(name, value[0], minimum), _int(name, value[1], minimum)
    v = _int(name, value, minimum)
    return v, v


def _array4d(name, x, dtype=None):
    arr = as_float_array(x, name, dtype)
    if arr.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {arr.shape}")
    return arr


def _common_dtype(*arrays_and_names):
    dtypes = []
    for name, a in arrays_and_names:
        d = result_float_dtype(np.asarray(a).dtype)
        if d is None:
            raise TypeError(f"{name} must be a real numeric array, got dtype {np.asarray(a).dtype}")
        dtypes.append(d)
    return np.result_type(*dtypes)


#: below this much work (output elements, or multiply-adds) a kernel runs on one thread:
#: waking a team costs more than it saves, and on a busy machine a late thread stalls the
#: whole region.
PARALLEL_MIN_WORK = 1 << 16

#: the same for the memory-bound kernels (pooling, batch norm, ReLU, Adam), counted in
#: array elements read or written.  A spinning OpenMP team starts a region in ~2 us: a ReLU
#: forward of 64k float32 took 5.3 us on one thread and 3.6 on two, 128k 10.0 and 5.8.
#: (Asleep, with OMP_WAIT_POLICY=PASSIVE, a team takes ~60 us to wake; that needed 2M.)
STREAM_MIN_WORK = 1 << 17


def _threads(n_threads, work=None, minimum=None):
    """Threads for one kernel call: ``n_threads`` if given, else the global setting,
    reduced to 1 for calls with less ``work`` than ``minimum`` (default
    :data:`PARALLEL_MIN_WORK`).  Results do not depend on the thread count, so this changes
    speed only."""
    if n_threads is not None:
        n_threads = _int("n_threads", n_threads, 1)
        if n_threads > MAX_THREADS:
            raise ValueError(f"n_threads must be an int <= {MAX_THREADS}, got {n_threads!r}")
        return n_threads
    if work is not None and work < (PARALLEL_MIN_WORK if minimum is None else minimum):
        return 1
    return get_num_threads()


def _stream_threads(n_threads, accesses):
    """:func:`_threads` for a memory-bound kernel touching ``accesses`` array elements."""
    return _threads(n_threads, accesses, STREAM_MIN_WORK)


def conv_output_size(input_size, kernel_size, stride=1, pad=0):
    """(input_size + 2*pad - kernel_size) // stride + 1, checked to be >= 1."""
    input_size = _int("input_size", input_size, 1)
    kernel_size = _int("kernel_size", kernel_size, 1)
    stride = _int("stride", stride, 1)
    pad = _int("pad", pad, 0)
    if kernel_size > input_size + 2 * pad:
        raise ValueError(
            f"kernel_size {kernel_size} is larger than the padded input "
            f"({input_size} + 2*{pad} = {input_size + 2 * pad})"
        )
    return (input_size + 2 * pad - kernel_size) // stride + 1


def _window_geometry(x_shape, kernel_h, kernel_w, stride, pad, kernel_name="kernel"):
    n_batch, n_channels, height, width = x_shape
    if max(height, width) + 2 * pad > sys.maxsize:    # kernel index arithmetic must not overflow
        raise ValueError(f"pad {pad} makes the padded input larger than {sys.maxsize} "
                         f"(H={height}, W={width})")
    if kernel_h > height + 2 * pad or kernel_w > width + 2 * pad:
        raise ValueError(
            f"{kernel_name} {kernel_h}x{kernel_w} is larger than the padded input "
            f"{height + 2 * pad}x{width + 2 * pad} (H={height}, W={width}, pad={pad})"
        )
    out_h = (height + 2 * pad - kernel_h) // stride + 1
    out_w = (width + 2 * pad - kernel_w) // stride + 1
    # N*C*OH*OW windows of KH*KW cells (im2col's size; the divisor of average pooling) must be
    # addressable: otherwise NumPy fails with a message naming no argument, or C overflows.
    if math.prod((n_batch, n_channels, out_h, out_w, kernel_h, kernel_w, 8)) > sys.maxsize:
        raise ValueError(f"{kernel_name} {kernel_h}x{kernel_w} with stride={stride}, pad={pad} "
                         f"gives {out_h}x{out_w} windows per plane of x {tuple(x_shape)}: "
                         f"too large to index")
    return out_h, out_w


def _check_batch(name, x):
    if x.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch (shape {x.shape})")
    if 0 in x.shape[1:]:
        raise ValueError(f"{name} has a zero-size dimension (shape {x.shape})")


# ----------------------------------------------------------------------------- im2col
def im2col(x, kernel_h, kernel_w, stride=1, pad=0, *, out=None, n_threads=None):
    """Unfold ``x (N, C, H, W)`` into ``(N*OH*OW, C*KH*KW)``, the book's layout.

    Rows are output pixels ``(n, oh, ow)``, columns ``(c, kh, kw)``.  ``out``, if
    given, must be a C-contiguous array of that shape and x's dtype; it is filled
    and returned.
    """
    x = _array4d("x", x)
    _check_batch("x", x)
    kernel_h = _int("kernel_h", kernel_h, 1)
    kernel_w = _int("kernel_w", kernel_w, 1)
    stride = _int("stride", stride, 1)
    pad = _int("pad", pad, 0)
    out_h, out_w = _window_geometry(x.shape, kernel_h, kernel_w, stride, pad)
    n_batch, n_channels = x.shape[:2]
    shape = (n_batch * out_h * out_w, n_channels * kernel_h * kernel_w)
    cols = _check_out("out", out, shape, x.dtype)
    _im2col.im2col(x, cols, kernel_h, kernel_w, stride, pad, out_h, out_w,
                   _threads(n_threads, cols.size))
    return cols


def col2im(cols, x_shape, kernel_h, kernel_w, stride=1, pad=0, *, n_threads=None):
    """Fold ``cols (N*OH*OW, C*KH*KW)`` back to ``x_shape``, summing overlapping windows.

    This is the exact adjoint of :func:`im2col`: ``<im2col(x), y> == <x, col2im(y)>``.
    """
    cols = as_float_array(cols, "cols")
    if cols.ndim != 2:
        raise ValueError(f"cols must be 2-D (N*OH*OW, C*KH*KW), got shape {cols.shape}")
    x_shape = _shape4("x_shape", x_shape)
    kernel_h = _int("kernel_h", kernel_h, 1)
    kernel_w = _int("kernel_w", kernel_w, 1)
    stride = _int("stride", stride, 1)
    pad = _int("pad", pad, 0)
    out_h, out_w = _window_geometry(x_shape, kernel_h, kernel_w, stride, pad)
    n_batch, n_channels = x_shape[:2]
    expected = (n_batch * out_h * out_w, n_channels * kernel_h * kernel_w)
    if cols.shape != expected:
        raise ValueError(f"cols must have shape {expected} for x_shape {x_shape}, got {cols.shape}")
    dx = np.empty(x_shape, dtype=cols.dtype)
    _im2col.col2im(cols, dx, kernel_h, kernel_w, stride, pad, out_h, out_w,
                   _threads(n_threads, cols.size))
    return dx


def _shape4(name, shape):
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of 4 ints, got {shape!r}") from None
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"{name} must be 4 positive ints (N, C, H, W), got {shape!r}")
    if math.prod(shape) * 8 > sys.maxsize:
        raise ValueError(f"{name} {shape!r} is too large to allocate")
    return shape


def _check_out(name, out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(
            f"{name} must be a writeable C-contiguous {np.dtype(dtype)} array of shape {shape}, "
            f"got {out.dtype} {out.shape}"
        )
    return out


# ----------------------------------------------------------------------------- convolution
#: im2col buffer per chunk step, in bytes: a few samples at a time, never the whole batch's
#: matrix (which would go through memory twice, and cost ~100 MiB at DeepConvNet's sizes).
#: 2 MiB rather than 512 KiB: fewer Python-level steps, whose glue holds the GIL while the
#: other chunk waits (DeepConvNet conv2 backward at 2 threads: 6.35 -> 4.73 ms)
CONV_BUFFER_BYTES = 1 << 21


def _conv_args(x, W, stride, pad, dtype):
    x = _array4d("x", x, dtype)
    W = _array4d("W", W, dtype)
    _check_batch("x", x)
    n_filters, w_channels, kernel_h, kernel_w = W.shape
    if 0 in W.shape:
        raise ValueError(f"W has a zero-size dimension (shape {W.shape})")
    if w_channels != x.shape[1]:
        raise ValueError(f"W has {w_channels} input channels (shape {W.shape}) but x has "
                         f"{x.shape[1]} (shape {x.shape})")
    stride = _int("stride", stride, 1)
    pad = _int("pad", pad, 0)
    out_h, out_w = _window_geometry(x.shape, kernel_h, kernel_w, stride, pad)
    return x, W, stride, pad, out_h, out_w


def _conv_bias(b, W, dtype):
    b = as_float_array(b, "b", dtype)
    if b.shape != (W.shape[0],):
        raise ValueError(f"b must have shape ({W.shape[0]},) to match W {W.shape}, got {b.shape}")
    return b


def _micro_batch(k, n_pix, itemsize):
    return max(1, CONV_BUFFER_BYTES // (k * n_pix * itemsize))


def _cols_with_ones(m, k, n_pix, dtype):
    """A cols buffer (m, K+1, P) whose last row of each sample is 1: im2col_t fills the K
    rows above it (it writes only rows of x's channels), and a GEMM against ``[W | b]``
    adds the bias, or against dout sums it into db."""
    buf = np.empty((m, k + 1, n_pix), dtype=dtype)
    buf[:, k, :] = 1
    return buf


# ----------------------------------------------------------------------------- Winograd

#: G of Winograd F(2x2, 3x3): U = G g G^T turns a 3x3 filter into its 16 cells.
WINOGRAD_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

#: A Winograd backward keeps one weight-gradient term (16*FN*C values) per group of
#: consecutive micro-batches: one group per micro-batch while the terms fit in
#: WINOGRAD_DU_BYTES, else as many groups as fit, but at least WINOGRAD_DU_GROUPS.  The
#: groups depend on the shapes only (so the sum does not depend on the thread count), and
#: they are the units the threads share.
WINOGRAD_DU_GROUPS = 8
WINOGRAD_DU_BYTES = 64 << 20

#: Input channels from which ``algorithm="auto"`` takes Winograd for a 3x3 stride-1 filter.
#: Below it the 16 products have too short an inner dimension to pay for the transforms:
#: forward + backward at batch 100 on one core, im2col against Winograd, 4 -> 16 channels on
#: 28x28 1.07 + 2.42 against 1.31 + 2.56 ms, 6 channels even, 8 -> 16: 6.12 against 5.20 ms.
WINOGRAD_MIN_CHANNELS = 8

CONV_ALGORITHMS = ("auto", "im2col", "winograd")

#: The batch is cut into at least this many micro-batches (fewer if it is smaller): 4 left
#: DeepConvNet's step at 2 threads 25 % slower than 8 (imbalance and buffers out of L2).
WINOGRAD_MIN_MICRO = 8

#: Bytes of the larger of a micro-batch's two cell buffers (V or M).  DeepConvNet's step, A/B
#: in one process: at 2 threads 25.2 ms with 1 MiB (one core's L2 here), 24.4 with 2 MiB,
#: 24.7 with 4 MiB; at 1 thread 35.8, 35.6, 35.7.  Fewer, larger micro-batches mean fewer
#: Python steps, each a round of GIL hand-overs between the chunk threads.
WINOGRAD_BUFFER_BYTES = 2 << 20


def check_conv_algorithm(algorithm, W_shape, stride):
    """``algorithm`` if it is valid for a filter of shape ``W_shape`` at ``stride``, else a
    ValueError (``"winograd"`` needs a 3x3 filter and stride 1)."""
    if not isinstance(algorithm, str) or algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, CONV_ALGORITHMS))}, "
                         f"got {algorithm!r}")
    if algorithm == "winograd" and not (tuple(W_shape[2:]) == (3, 3) and stride == 1):
        raise ValueError(f"algorithm='winograd' needs a 3x3 filter and stride 1, got a "
                         f"{W_shape[2]}x{W_shape[3]} filter and stride {stride}")
    return algorithm


def _conv_algorithm(algorithm, W_shape, stride):
    """The algorithm a convolution runs: ``"im2col"`` or ``"winograd"``."""
    check_conv_algorithm(algorithm, W_shape, stride)
    if algorithm == "auto":
        fits = W_shape[2:] == (3, 3) and stride == 1
        return "winograd" if fits and W_shape[1] >= WINOGRAD_MIN_CHANNELS else "im2col"
    return algorithm


#: G (x) G (16, 9): cell 4i+j of G g G^T is row 4i+j of it dotted with g's 9 taps (3k+l)
WINOGRAD_GG = np.kron(WINOGRAD_G, WINOGRAD_G)


def _winograd_weights(W):
    """U (16, FN, C): the 16 cells of G g G^T for every filter g = W[f, c], as one GEMM
    ``(G (x) G) (16, 9) @ W (9, FN*C)``.  (As 2 * FN * C tiny 4x3 products through
    np.matmul's broadcasting it took 0.37 ms for DeepConvNet's 64x64 layer, on every
    forward and backward.)"""
    n_filters, n_channels = W.shape[:2]
    u = WINOGRAD_GG.astype(W.dtype) @ W.reshape(n_filters * n_channels, 9).T
    return u.reshape(16, n_filters, n_channels)


class _WinogradPlan:
    """Tiles, padded-plane size and the fixed micro-batch grid of one convolution.

    Samples go through in ``n_micro`` micro-batches of near-equal size (at most ``step``)
    whose boundaries depend only on the shapes, never on the thread count: for a given batch
    size each sample always meets the same matrix-product shapes and the weight gradient
    sums per-micro-batch terms in a fixed order.  (So a float32 result can differ in its
    last bits between batch sizes, which im2col's per-sample products do not.)"""

    def __init__(self, x_shape, n_filters, pad, out_h, out_w, itemsize):
        n_batch, n_channels, height, width = x_shape
        self.pad, self.out_h, self.out_w = pad, out_h, out_w
        self.tiles_h, self.tiles_w = (out_h + 1) // 2, (out_w + 1) // 2
        self.tiles = self.tiles_h * self.tiles_w
        self.hp, self.wp = 2 * self.tiles_h + 2, 2 * self.tiles_w + 2
        per_sample = 16 * max(n_channels, n_filters) * self.tiles * itemsize
        step = max(1, WINOGRAD_BUFFER_BYTES // per_sample)
        # at least WINOGRAD_MIN_MICRO micro-batches where the batch allows, so that threads
        # share evenly, all of near-equal size: 100 samples in 13s (the last 9) gave one of
        # two threads 52 and the other 48
        self.n_micro = max(-(-n_batch // step), min(n_batch, WINOGRAD_MIN_MICRO))
        self.bounds = split_bounds(n_batch, self.n_micro)
        self.step = max(b - a for a, b in zip(self.bounds, self.bounds[1:]))

    def cells(self, n_rows, dtype):
        """A buffer for (16, n_rows, step * tiles) cells; :meth:`view` takes its first z
        samples.  Consecutive cells lie an odd number of 64-byte lines apart: at a multiple
        of 4 KiB (DeepConvNet's 32- and 64-channel layers hit it) the 16 streams of a
        transform fell into the same cache sets and ran 5x slower."""
        line = 64 // dtype.itemsize
        stride = -(-n_rows * self.tiles * self.step // line) * line
        if (stride // line) % 2 == 0:
            stride += line
        return np.empty((16, stride), dtype=dtype)

    def view(self, buf, n_rows, z):
        return buf[:, :n_rows * self.tiles * z].reshape(16, n_rows, self.tiles * z)

    def workspace(self, x, n_filters):
        """One chunk's buffers: the zero-bordered padded planes and the two cell buffers."""
        n_channels = x.shape[1]
        xp = np.zeros((self.step, n_channels, self.hp, self.wp), dtype=x.dtype)
        return xp, self.cells(n_channels, x.dtype), self.cells(n_filters, x.dtype)

    def input_cells(self, x, i, xp, vbuf):
        """``(a, z, V)``: micro-batch i is samples [a, a+z); V holds their input cells."""
        a, z = self.bounds[i], self.bounds[i + 1] - self.bounds[i]
        _winograd.pad_planes(x[a:a + z], xp, self.pad, 1)     # its border stays zero
        v = self.view(vbuf, x.shape[1], z)
        _winograd.input_transform(xp[:z], v, self.tiles_h, self.tiles_w, 1)
        return a, z, v


def _winograd_forward(x, W, b, pad, out_h, out_w, n_threads, tail=None):
    n_batch, n_channels = x.shape[:2]
    n_filters = W.shape[0]
    plan = _WinogradPlan(x.shape, n_filters, pad, out_h, out_w, x.dtype.itemsize)
    u = _winograd_weights(W)
    shape = (n_batch, n_filters, out_h, out_w)
    buffered = tail is not None and tail.buffered
    out = None if buffered else np.empty(shape, dtype=x.dtype)
    th, tw = plan.tiles_h, plan.tiles_w

    def chunk(lo, hi):
        xp, vbuf, mbuf = plan.workspace(x, n_filters)
        ybuf = np.empty((plan.step,) + shape[1:], dtype=x.dtype) if buffered else None
        for i in range(lo, hi):
            a, z, v = plan.input_cells(x, i, xp, vbuf)
            m = plan.view(mbuf, n_filters, z)
            np.matmul(u, v, out=m)
            y = ybuf[:z] if buffered else out[a:a + z]
            _winograd.output_transform(m, b, y, th, tw, 1)
            if tail is not None:
                tail.emit(a, z, y)

    run_chunks(chunk, plan.n_micro, _threads(n_threads, math.prod(shape) * 9 * n_channels))
    return out


def _winograd_backward(dout, x, W, pad, need_dx, n_threads, head=None, out_hw=None):
    """``head``: as in :func:`_im2col_backward`; ``out_hw`` is the convolution's output size
    (``dout`` may be the pooled gradient)."""
    n_batch, n_channels = x.shape[:2]
    n_filters = W.shape[0]
    out_h, out_w = out_hw
    plan = _WinogradPlan(x.shape, n_filters, pad, out_h, out_w, x.dtype.itemsize)
    u_t = np.ascontiguousarray(_winograd_weights(W).transpose(0, 2, 1))     # (16, C, FN)
    th, tw = plan.tiles_h, plan.tiles_w
    # The weight gradient's per-micro-batch terms add up in fixed groups of consecutive
    # micro-batches (in order inside a group, then the groups in order): the sum does not
    # depend on the thread count, and its memory is bounded.  One term per micro-batch would
    # be n_micro * 16*FN*C values, ~1 GB for 256 channels at batch 256.
    term_bytes = 16 * n_filters * n_channels * x.dtype.itemsize
    groups = split_bounds(plan.n_micro,
                          max(WINOGRAD_DU_GROUPS, WINOGRAD_DU_BYTES // term_bytes))
    du_parts = np.empty((len(groups) - 1, 16, n_filters, n_channels), dtype=x.dtype)
    db_per_sample = np.empty((n_batch, n_filters), dtype=x.dtype)
    dx = np.empty(x.shape, dtype=x.dtype) if need_dx else None
    # db_n = dout_n @ 1, a BLAS matrix-vector product: 3.6x faster than np.sum(axis=2) here
    ones = np.ones(out_h * out_w, dtype=x.dtype)

    def chunk(glo, ghi):
        xp, vbuf, mbuf = plan.workspace(x, n_filters)
        acc = np.empty_like(xp) if need_dx else None
        hbuf = None if head is None else head.buffers(plan.step)
        term = np.empty(du_parts.shape[1:], dtype=x.dtype)
        for g in range(glo, ghi):
            for i in range(groups[g], groups[g + 1]):
                a, z, v = plan.input_cells(x, i, xp, vbuf)
                d = dout[a:a + z] if head is None else head.take(hbuf, a, z)
                dm = plan.view(mbuf, n_filters, z)
                _winograd.output_adjoint(d, dm, th, tw, 1)
                if i == groups[g]:
                    np.matmul(dm, v.transpose(0, 2, 1), out=du_parts[g])
                else:
                    np.matmul(dm, v.transpose(0, 2, 1), out=term)
                    du_parts[g] += term
                np.matmul(d.reshape(z, n_filters, -1), ones, out=db_per_sample[a:a + z])
                if need_dx:
                    np.matmul(u_t, dm, out=v)                 # dV, over V (no longer needed)
                    _winograd.input_adjoint(v, acc[:z], dx[a:a + z], pad, th, tw, 1)

    run_chunks(chunk, len(groups) - 1,
               _threads(n_threads, n_batch * n_filters * out_h * out_w * 9 * n_channels))
    du = du_parts.sum(axis=0).reshape(16, n_filters * n_channels)
    # U = (G (x) G) g, so dg = (G (x) G)^T dU for every (f, c): one GEMM
    dW = (du.T @ WINOGRAD_GG.astype(x.dtype)).reshape(W.shape)
    return dx, dW, db_per_sample.sum(axis=0)


def conv2d_forward(x, W, b, stride=1, pad=0, *, relu=False, algorithm="auto", n_threads=None):
    """Convolution ``x (N, C, H, W) * W (FN, C, KH, KW) + b (FN,)`` -> ``(N, FN, OH, OW)``.

    The batch is split into one chunk per thread (see :mod:`cnn_core._workers`).  Each
    chunk unfolds a few samples at a time into a cache-sized buffer, ``cols[n] (K, OH*OW)``
    (the transpose of the book's im2col rows of sample n) over a row of ones, and one GEMM
    per sample, ``[W | b] (FN, K+1) @ [cols[n]; 1]``, writes the NCHW output, bias
    included, directly.  Nothing of size
    ``N * K * OH*OW`` is kept: :func:`conv2d_backward` unfolds x again.

    ``algorithm``: ``"auto"`` (Winograd F(2x2, 3x3) for a 3x3 filter at stride 1 on at least
    :data:`WINOGRAD_MIN_CHANNELS` input channels, the above otherwise), ``"im2col"`` or
    ``"winograd"`` (a ValueError for other filters or strides); see :mod:`cnn_core._winograd`.

    ``relu=True`` applies ReLU to each micro-batch of the output while it is in cache (bit
    for bit :func:`relu_forward` of the output, without a pass of its own).
    """
    dtype = _common_dtype(("x", x), ("W", W), ("b", b))
    x, W, stride, pad, out_h, out_w = _conv_args(x, W, stride, pad, dtype)
    b = _conv_bias(b, W, dtype)
    tail = _ReluTail() if relu else None
    if _conv_algorithm(algorithm, W.shape, stride) == "winograd":
        return _winograd_forward(x, W, b, pad, out_h, out_w, n_threads, tail)
    return _im2col_forward(x, W, b, stride, pad, out_h, out_w, n_threads, tail)


def _im2col_forward(x, W, b, stride, pad, out_h, out_w, n_threads, tail=None):
    """The im2col convolution on validated arguments.  ``tail.emit(a, z, y)`` then sees each
    micro-batch's output y (samples [a, a+z)) while it is in cache: in the returned output
    (:class:`_ReluTail`), or, for a ``buffered`` tail (:class:`_PoolTail`), in a chunk
    buffer (nothing is returned)."""
    dtype = x.dtype
    n_filters, _, kernel_h, kernel_w = W.shape
    n_batch, n_pix = x.shape[0], out_h * out_w
    k = W[0].size
    buffered = tail is not None and tail.buffered
    out = None if buffered else np.empty((n_batch, n_filters, n_pix), dtype=dtype)
    # the bias rides in the GEMM: [W | b] (FN, K+1) @ [cols; 1] (K+1, P).  As fast as the
    # K-row product, and it saves a pass over the output (SimpleConvNet's conv forward at 2
    # threads 0.51 -> 0.38 ms).
    w_aug = np.empty((n_filters, k + 1), dtype=dtype)
    w_aug[:, :k] = W.reshape(n_filters, k)
    w_aug[:, k] = b
    step = _micro_batch(k + 1, n_pix, dtype.itemsize)

    def chunk(lo, hi):
        m = min(step, hi - lo)
        buf = _cols_with_ones(m, k, n_pix, dtype)
        ybuf = np.empty((m, n_filters, n_pix), dtype=dtype) if buffered else None
        for a in range(lo, hi, step):
            z = min(step, hi - a)
            cols = buf[:z]
            _im2col.im2col_t(x[a:a + z], cols, kernel_h, kernel_w, stride, pad, out_h, out_w, 1)
            y = ybuf[:z] if buffered else out[a:a + z]
            np.matmul(w_aug, cols, out=y)
            if tail is not None:
                tail.emit(a, z, y.reshape(z, n_filters, out_h, out_w))

    run_chunks(chunk, n_batch, _threads(n_threads, n_batch * n_filters * n_pix * k))
    return None if buffered else out.reshape(n_batch, n_filters, out_h, out_w)


def conv2d_backward(dout, x, W, stride=1, pad=0, *, out=None, need_dx=True, algorithm="auto",
                    n_threads=None):
    """Gradients of :func:`conv2d_forward`: ``(dx, dW, db)`` from ``dout (N, FN, OH, OW)``
    and the forward's input ``x``.

    ``need_dx=False`` (a network's first layer) skips the input gradient: ``dx`` is None.
    Per sample, x is unfolded again into a cache-sized buffer; ``[dW_n.T; db_n] = [cols[n];
    1] (K+1, P) @ dout_n.T`` (measured 1.3-1.5x faster than ``dout_n @ cols[n].T`` at these
    thin shapes) and ``dcols_n = W.T @ dout_n`` (folded back by col2im).  ``dW`` and ``db``
    sum the per-sample products in a fixed order: they do not depend on the thread count.
    ``algorithm`` as in :func:`conv2d_forward` (use the forward's: the gradients are those of
    its rounding).  ``out``: the forward's output when it applied ReLU; ``dout`` is then
    masked by ``out > 0`` one micro-batch at a time (bit for bit :func:`relu_backward`).
    """
    dtype = _common_dtype(("dout", dout), ("x", x), ("W", W))
    x, W, stride, pad, out_h, out_w = _conv_args(x, W, stride, pad, dtype)
    dout = _array4d("dout", dout, dtype)
    expected = (x.shape[0], W.shape[0], out_h, out_w)
    if dout.shape != expected:
        raise ValueError(f"dout must have shape {expected} for x {x.shape} and W {W.shape}, "
                         f"got {dout.shape}")
    head = None if out is None else _ReluHead(dout, _relu_out(out, expected, dtype))
    if _conv_algorithm(algorithm, W.shape, stride) == "winograd":
        return _winograd_backward(dout, x, W, pad, need_dx, n_threads, head, (out_h, out_w))
    return _im2col_backward(dout, x, W, stride, pad, out_h, out_w, need_dx, n_threads, head)


def _im2col_backward(dout, x, W, stride, pad, out_h, out_w, need_dx, n_threads, head=None):
    """The im2col gradients on validated arguments.  With a ``head`` (:class:`_PoolHead`),
    ``dout`` is the pooled gradient and each micro-batch's convolution gradient is rebuilt
    from it in a chunk buffer by ``head.take``."""
    dtype = x.dtype
    n_filters, _, kernel_h, kernel_w = W.shape
    n_batch, n_pix, k = x.shape[0], out_h * out_w, W[0].size
    dout3 = dout.reshape(n_batch, n_filters, -1)
    w_t = W.reshape(n_filters, k).T
    # [cols; 1] (K+1, P) @ dout_n.T: rows 0..K-1 are dW_n.T, row K is db_n (no separate sum)
    dwt_per_sample = np.empty((n_batch, k + 1, n_filters), dtype=dtype)
    dx = np.empty(x.shape, dtype=dtype) if need_dx else None
    step = _micro_batch(k + 1, n_pix, dtype.itemsize)

    def chunk(lo, hi):
        m = min(step, hi - lo)
        buf = _cols_with_ones(m, k, n_pix, dtype)
        dbuf = np.empty((m, k, n_pix), dtype=dtype) if need_dx else None
        hbuf = None if head is None else head.buffers(m)
        for a in range(lo, hi, step):
            z = min(step, hi - a)
            cols = buf[:z]
            _im2col.im2col_t(x[a:a + z], cols, kernel_h, kernel_w, stride, pad, out_h, out_w, 1)
            d = dout3[a:a + z] if head is None else head.take(hbuf, a, z).reshape(z, n_filters,
                                                                                 n_pix)
            np.matmul(cols, d.transpose(0, 2, 1), out=dwt_per_sample[a:a + z])
            if need_dx:
                dcols = dbuf[:z]
                np.matmul(w_t, d, out=dcols)
                _im2col.col2im_t(dcols, dx[a:a + z], kernel_h, kernel_w, stride, pad,
                                 out_h, out_w, 1)

    run_chunks(chunk, n_batch, _threads(n_threads, n_batch * n_filters * n_pix * k))
    total = dwt_per_sample.sum(axis=0)        # per-sample terms, summed in a fixed order
    dW = np.ascontiguousarray(total[:k].T).reshape(W.shape)
    db = total[k].copy()
    return dx, dW, db


# ----------------------------------------------------------------------------- pooling
def _pool_args(x, pool_h, pool_w, stride, pad, name="x"):
    x = _array4d(name, x)
    _check_batch(name, x)
    return (x,) + _pool_geometry(x.shape, pool_h, pool_w, stride, pad)


def _pool_geometry(x_shape, pool_h, pool_w, stride, pad):
    pool_h = _int("pool_h", pool_h, 1)
    pool_w = _int("pool_w", pool_w, 1)
    stride = _int("stride", stride, 1)
    pad = _int("pad", pad, 0)
    if pad >= pool_h or pad >= pool_w:
        raise ValueError(f"pad must be smaller than the pooling window {pool_h}x{pool_w} "
                         f"(so that every window holds a real cell), got pad={pad}")
    out_h, out_w = _window_geometry(x_shape, pool_h, pool_w, stride, pad, "pooling window")
    return pool_h, pool_w, stride, pad, out_h, out_w


def maxpool2d_forward(x, pool_h, pool_w, stride=1, pad=0, *, n_threads=None):
    """Max pooling -> ``(out (N, C, OH, OW), argmax)``; a padded cell never wins, NaN does.

    ``argmax`` (intp, same shape as out) holds the flat index ``h*W + w`` of each
    window's winner inside its ``(n, c)`` plane.
    """
    x, pool_h, pool_w, stride, pad, out_h, out_w = _pool_args(x, pool_h, pool_w, stride, pad)
    shape = x.shape[:2] + (out_h, out_w)
    out = np.empty(shape, dtype=x.dtype)
    argmax = np.empty(shape, dtype=np.intp)
    _pool.maxpool_forward(x, out, argmax, pool_h, pool_w, stride, pad,
                          _stream_threads(n_threads, x.size + 3 * out.size))
    return out, argmax


def maxpool2d_backward(dout, argmax, x_shape, *, n_threads=None):
    """Route ``dout`` to each window's winner: ``dx`` of shape ``x_shape``."""
    dout = _array4d("dout", dout)
    x_shape = _shape4("x_shape", x_shape)
    argmax = np.asarray(argmax)
    if argmax.dtype != np.intp or argmax.shape != dout.shape:
        raise ValueError(f"argmax must be an intp array of dout's shape {dout.shape}, "
                         f"got {argmax.dtype} {argmax.shape}")
    if dout.shape[:2] != x_shape[:2]:
        raise ValueError(f"dout shape {dout.shape} does not match x_shape {x_shape}")
    argmax = np.ascontiguousarray(argmax)
    plane = x_shape[2] * x_shape[3]
    if argmax.size and (argmax.min() < 0 or argmax.max() >= plane):
        raise ValueError(f"argmax holds indices outside an {x_shape[2]}x{x_shape[3]} plane")
    dx = np.empty(x_shape, dtype=dout.dtype)
    _pool.maxpool_backward(dout, argmax, dx, _stream_threads(n_threads, dx.size + 3 * dout.size))
    return dx


def maxpool2x2_forward(x, *, n_threads=None):
    """The book's 2x2, stride 2 max pooling -> ``(out (N, C, H//2, W//2), codes)``.

    ``codes`` (int32, out's shape) holds each window's winner as its place in the window:
    0, 1 (top row), 2, 3 (bottom row); the winner is the one :func:`maxpool2d_forward`
    picks (the first cell equal to the max; the first NaN).  A quarter of the int64
    ``argmax``'s memory, and :func:`maxpool2x2_backward` then writes every cell of dx
    once, in order, instead of zeroing dx and scattering into it.
    """
    x = _pool_args(x, 2, 2, 2, 0)[0]
    shape = x.shape[:2] + (x.shape[2] // 2, x.shape[3] // 2)
    out = np.empty(shape, dtype=x.dtype)
    codes = np.empty(shape, dtype=np.int32)
    _pool.maxpool2x2_forward(x, out, codes, _stream_threads(n_threads, x.size + 2 * out.size))
    return out, codes


def maxpool2x2_backward(dout, codes, x_shape, *, n_threads=None):
    """Gradient of :func:`maxpool2x2_forward`: ``dout`` at each window's winner, 0 elsewhere
    (and in the last row/column of an odd-sized x, which no window covers)."""
    dout = _array4d("dout", dout)
    x_shape = _shape4("x_shape", x_shape)
    expected = x_shape[:2] + (x_shape[2] // 2, x_shape[3] // 2)
    if dout.shape != expected:
        raise ValueError(f"dout must have shape {expected} for x_shape {x_shape} and 2x2 "
                         f"pooling, got {dout.shape}")
    codes = _check_codes(codes, dout.shape)
    dx = np.empty(x_shape, dtype=dout.dtype)
    _pool.maxpool2x2_backward(dout, codes, dx, _stream_threads(n_threads, dx.size + 2 * dout.size))
    return dx


def _check_codes(codes, shape):
    codes = np.asarray(codes)
    if codes.dtype != np.int32 or codes.shape != shape:
        raise ValueError(f"codes must be an int32 array of shape {shape}, got {codes.dtype} "
                         f"{codes.shape}")
    return np.ascontiguousarray(codes)


def maxpool2x2_argmax(codes, x_shape):
    """:func:`maxpool2d_forward`'s ``argmax`` (flat ``h*W + w`` in each plane) from the
    ``codes`` of :func:`maxpool2x2_forward` for an x of shape ``x_shape``."""
    x_shape = _shape4("x_shape", x_shape)
    codes = _check_codes(codes, x_shape[:2] + (x_shape[2] // 2, x_shape[3] // 2))
    if codes.size and (codes.min() < 0 or codes.max() > 3):
        raise ValueError("codes must hold window places 0..3")
    oh = np.arange(codes.shape[2])[:, None]
    ow = np.arange(codes.shape[3])
    return ((2 * oh + codes // 2) * x_shape[3] + 2 * ow + codes % 2).astype(np.intp)


# ----------------------------------------------------------------------------- conv + pool
def _relu_out(out, shape, dtype):
    out = as_float_array(out, "out", dtype)
    if out.shape != shape:
        raise ValueError(f"out must have the forward output's shape {shape}, got {out.shape}")
    return np.ascontiguousarray(out)


class _ReluTail:
    """The fused end of a convolution's forward: ReLU on each micro-batch of the output."""
    buffered = False

    @staticmethod
    def emit(a, z, y):
        flat = y.reshape(-1)
        _elementwise.relu_forward(flat, flat, 1)


class _ReluHead:
    """The fused start of a convolution's backward: dout masked by the forward's ReLU output,
    one micro-batch at a time, into a chunk buffer."""

    def __init__(self, dout, out):
        self.dout, self.out = dout, out

    def buffers(self, m):
        return np.empty((m,) + self.dout.shape[1:], dtype=self.dout.dtype)

    def take(self, buffer, a, z):
        d = buffer[:z]
        _elementwise.relu_backward(self.dout[a:a + z].reshape(-1),
                                   self.out[a:a + z].reshape(-1), d.reshape(-1), 1)
        return d


class _PoolTail:
    """The fused end of a convolution's forward: each micro-batch's output, still in cache,
    is max-pooled 2x2/stride 2 (then ReLU'd, which commutes with the max) into ``out``."""
    buffered = True

    def __init__(self, conv_shape, dtype, relu):
        n, fn, oh, ow = conv_shape
        self.out = np.empty((n, fn, oh // 2, ow // 2), dtype=dtype)
        self.codes = np.empty(self.out.shape, dtype=np.int32)
        self.relu = relu

    def emit(self, a, z, y):
        o = self.out[a:a + z]
        _pool.maxpool2x2_forward(y, o, self.codes[a:a + z], 1)
        if self.relu:
            flat = o.reshape(-1)
            _elementwise.relu_forward(flat, flat, 1)


class _PoolHead:
    """The fused start of a convolution's backward: for samples [a, a+z), the gradient of
    the convolution's output, rebuilt in a chunk buffer from the pooled gradient ``dout``
    (masked by ``out > 0`` first when the forward applied ReLU)."""

    def __init__(self, dout, codes, out, conv_shape):
        self.dout, self.codes, self.out = dout, codes, out
        self.conv_shape = conv_shape

    def buffers(self, m):
        rest = self.conv_shape[1:]
        masked = None if self.out is None else np.empty((m,) + self.dout.shape[1:],
                                                         dtype=self.dout.dtype)
        return np.empty((m,) + rest, dtype=self.dout.dtype), masked

    def take(self, buffers, a, z):
        conv_grad, masked = buffers
        d = self.dout[a:a + z]
        if self.out is not None:
            _elementwise.relu_backward(d.reshape(-1), self.out[a:a + z].reshape(-1),
                                       masked[:z].reshape(-1), 1)
            d = masked[:z]
        y = conv_grad[:z]
        _pool.maxpool2x2_backward(d, self.codes[a:a + z], y, 1)
        return y


def conv2d_maxpool_forward(x, W, b, stride=1, pad=0, *, relu=False, algorithm="auto",
                           n_threads=None):
    """:func:`conv2d_forward`, then [ReLU,] then :func:`maxpool2x2_forward`, fused:
    ``(out (N, FN, OH//2, OW//2), codes)``.

    The convolution's output never exists whole: each micro-batch is pooled while it is
    still in cache.  The results are bit for bit those of the three separate calls (the
    same products per sample or micro-batch, the same pooling and ReLU), and so are the
    gradients of :func:`conv2d_maxpool_backward`.  ``relu=True`` applies ReLU to the
    pooled values (max and ReLU commute exactly).
    """
    dtype = _common_dtype(("x", x), ("W", W), ("b", b))
    x, W, stride, pad, out_h, out_w = _conv_args(x, W, stride, pad, dtype)
    b = _conv_bias(b, W, dtype)
    if out_h < 2 or out_w < 2:
        raise ValueError(f"the convolution's output ({out_h}x{out_w}) is smaller than the 2x2 "
                         f"pooling window")
    tail = _PoolTail((x.shape[0], W.shape[0], out_h, out_w), dtype, bool(relu))
    if _conv_algorithm(algorithm, W.shape, stride) == "winograd":
        _winograd_forward(x, W, b, pad, out_h, out_w, n_threads, tail)
    else:
        _im2col_forward(x, W, b, stride, pad, out_h, out_w, n_threads, tail)
    return tail.out, tail.codes


def conv2d_maxpool_backward(dout, codes, x, W, stride=1, pad=0, *, out=None, need_dx=True,
                            algorithm="auto", n_threads=None):
    """Gradients ``(dx, dW, db)`` of :func:`conv2d_maxpool_forward` from the pooled gradient
    ``dout``, the forward's ``codes`` and input ``x``; ``out`` is the forward's output when
    it applied ReLU (its mask), None otherwise.  The convolution's gradient is rebuilt one
    micro-batch at a time, in cache."""
    dtype = _common_dtype(("dout", dout), ("x", x), ("W", W))
    x, W, stride, pad, out_h, out_w = _conv_args(x, W, stride, pad, dtype)
    dout = _array4d("dout", dout, dtype)
    expected = (x.shape[0], W.shape[0], out_h // 2, out_w // 2)
    if dout.shape != expected:
        raise ValueError(f"dout must have shape {expected} for x {x.shape}, W {W.shape} and "
                         f"2x2 pooling, got {dout.shape}")
    codes = _check_codes(codes, expected)
    out = None if out is None else _relu_out(out, expected, dtype)
    head = _PoolHead(dout, codes, out, (x.shape[0], W.shape[0], out_h, out_w))
    if _conv_algorithm(algorithm, W.shape, stride) == "winograd":
        return _winograd_backward(dout, x, W, pad, need_dx, n_threads, head, (out_h, out_w))
    return _im2col_backward(dout, x, W, stride, pad, out_h, out_w, need_dx, n_threads, head)


def avgpool2d_forward(x, pool_h, pool_w, stride=1, pad=0, count_include_pad=True, *,
                      n_threads=None):
    """Average pooling -> ``out (N, C, OH, OW)``.

    By default every window divides by ``pool_h*pool_w`` (padding counted, as in
    PyTorch and ONNX); ``count_include_pad=False`` divides by the real cells only.
    """
    x, pool_h, pool_w, stride, pad, out_h, out_w = _pool_args(x, pool_h, pool_w, stride, pad)
    out = np.empty(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
    _pool.avgpool_forward(x, out, pool_h, pool_w, stride, pad, bool(count_include_pad),
                          _stream_threads(n_threads, x.size + out.size))
    return out


def avgpool2d_backward(dout, x_shape, pool_h, pool_w, stride=1, pad=0, count_include_pad=True,
                       *, n_threads=None):
    """Gradient of :func:`avgpool2d_forward`: ``dx`` of shape ``x_shape``."""
    dout = _array4d("dout", dout)
    x_shape = _shape4("x_shape", x_shape)
    pool_h, pool_w, stride, pad, out_h, out_w = _pool_geometry(x_shape, pool_h, pool_w, stride, pad)
    expected = x_shape[:2] + (out_h, out_w)
    if dout.shape != expected:
        raise ValueError(f"dout must have shape {expected} for x_shape {x_shape}, got {dout.shape}")
    dx = np.empty(x_shape, dtype=dout.dtype)
    _pool.avgpool_backward(dout, dx, pool_h, pool_w, stride, pad, bool(count_include_pad),
                           _stream_threads(n_threads, dx.size + dout.size))
    return dx


# ----------------------------------------------------------------------------- batch norm
def _bn_view(name, x):
    """(N, D) -> (N, D, 1); (N, C, H, W) -> (N, C, H*W), after checking ndim and emptiness."""
    if x.ndim not in (2, 4):
        raise ValueError(f"{name} must be 2-D (N, D) or 4-D (N, C, H, W), got shape {x.shape}")
    _check_batch(name, x)
    return x.reshape(x.shape[0], x.shape[1], -1)


def batchnorm_stats(x, *, n_threads=None):
    """Per-feature (2-D) or per-channel (4-D) mean and biased variance, float64, one fused pass."""
    x = as_float_array(x, "x")
    x3 = _bn_view("x", x)
    n_channels = x3.shape[1]
    mean = np.empty(n_channels, np.float64)
    var = np.empty(n_channels, np.float64)
    _batchnorm.batchnorm_stats(x3, mean, var, _stream_threads(n_threads, x.size))
    return mean, var


def _bn_param(name, p, n_channels, dtype):
    p = as_float_array(p, name, dtype)
    if p.shape != (n_channels,):
        raise ValueError(f"{name} must have shape ({n_channels},), got {p.shape}")
    return p


def batchnorm_forward(x, gamma, beta, mean, var, eps=1e-7, *, n_threads=None):
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` per feature/channel -> ``(out, inv_std)``.

    In training pass the batch statistics from :func:`batchnorm_stats`; at
    inference the running ones.  ``inv_std`` (float64) is kept for the backward.
    """
    dtype = _common_dtype(("x", x), ("gamma", gamma), ("beta", beta))
    x = as_float_array(x, "x", dtype)
    x3 = _bn_view("x", x)
    n_channels = x3.shape[1]
    gamma = _bn_param("gamma", gamma, n_channels, dtype)
    beta = _bn_param("beta", beta, n_channels, dtype)
    mean = _bn_param("mean", mean, n_channels, np.float64)
    var = _bn_param("var", var, n_channels, np.float64)
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a finite float >= 0, got {eps!r}")
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite float >= 0, got {eps!r}")
    inv_std = 1.0 / np.sqrt(var + eps)
    out = np.empty_like(x)
    _batchnorm.batchnorm_forward(x3, mean, inv_std, gamma, beta, _bn_view("out", out),
                                 _stream_threads(n_threads, 2 * x.size))
    return out, inv_std


def batchnorm_backward(dout, x, gamma, mean, inv_std, *, n_threads=None):
    """Training-mode gradient of :func:`batchnorm_forward` -> ``(dx, dgamma, dbeta)``."""
    dtype = _common_dtype(("dout", dout), ("x", x), ("gamma", gamma))
    x = as_float_array(x, "x", dtype)
    dout = as_float_array(dout, "dout", dtype)
    if dout.shape != x.shape:
        raise ValueError(f"dout must have x's shape {x.shape}, got {dout.shape}")
    x3 = _bn_view("x", x)
    n_channels = x3.shape[1]
    gamma = _bn_param("gamma", gamma, n_channels, dtype)
    mean = _bn_param("mean", mean, n_channels, np.float64)
    inv_std = _bn_param("inv_std", inv_std, n_channels, np.float64)
    dgamma = np.empty(n_channels, np.float64)
    dbeta = np.empty(n_channels, np.float64)
    d3 = _bn_view("dout", dout)
    threads = _stream_threads(n_threads, 3 * x.size)
    _batchnorm.batchnorm_backward_reduce(x3, d3, mean, inv_std, dgamma, dbeta, threads)
    dx = np.empty_like(x)
    _batchnorm.batchnorm_backward_dx(x3, d3, mean, inv_std, gamma, dgamma, dbeta,
                                     _bn_view("dx", dx), threads)
    return dx, dgamma.astype(dtype), dbeta.astype(dtype)


# ----------------------------------------------------------------------------- elementwise
def relu_forward(x, *, n_threads=None):
    """``max(x, 0)`` in one pass (NaN propagates); the backward needs only this output."""
    x = as_float_array(x, "x")
    out = np.empty_like(x)
    _elementwise.relu_forward(x.reshape(-1), out.reshape(-1),
                              _stream_threads(n_threads, 2 * x.size))
    return out


def relu_backward(dout, out, *, n_threads=None):
    """``dout`` where the forward's ``out`` is > 0, else 0 (the book's ``dout[x <= 0] = 0``)."""
    dtype = _common_dtype(("dout", dout), ("out", out))
    dout = as_float_array(dout, "dout", dtype)
    out = as_float_array(out, "out", dtype)
    if dout.shape != out.shape:
        raise ValueError(f"dout must have the forward output's shape {out.shape}, got {dout.shape}")
    dx = np.empty_like(dout)
    _elementwise.relu_backward(dout.reshape(-1), out.reshape(-1), dx.reshape(-1),
                               _stream_threads(n_threads, 3 * dx.size))
    return dx


def adam_update(param, grad, m, v, lr_t, beta1, beta2, eps, *, n_threads=None):
    """One fused Adam step, in place on ``param``, ``m`` and ``v``::

        m += (1 - beta1) * (grad - m);  v += (1 - beta2) * (grad**2 - v)
        param -= lr_t * m / (sqrt(v) + eps)

    All four arrays must be C-contiguous float32/float64 of one dtype and shape, and
    param, m and v writeable (an optimizer falls back to NumPy otherwise).
    """
    arrays = (("param", param), ("grad", grad), ("m", m), ("v", v))
    for name, a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
        if a.dtype not in (np.float32, np.float64) or a.dtype != param.dtype:
            raise TypeError(f"{name} must be float32 or float64 like param ({param.dtype}), "
                            f"got {a.dtype}")
        if a.shape != param.shape:
            raise ValueError(f"{name} must have param's shape {param.shape}, got {a.shape}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
        if name != "grad" and not a.flags.writeable:
            raise ValueError(f"{name} must be writeable")
    for name, value in (("lr_t", lr_t), ("beta1", beta1), ("beta2", beta2), ("eps", eps)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite real number, got {value!r}")
    _elementwise.adam_update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                             float(lr_t), float(beta1), float(beta2), float(eps),
                             _stream_threads(n_threads, 7 * param.size))
