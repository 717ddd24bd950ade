"""Affine (fully connected) layer: the book's ``Affine(W, b)`` and ``Dense(units)``."""
import numpy as np

from .._dtype import as_float_array
from .._threads import get_num_threads
from .._workers import run_chunks, split_bounds
from .base import Layer, as_param, check_int, init_std

#: a product of at least this many multiply-adds is cut into fixed blocks run on the
#: kernel threads (BLAS stays single-threaded inside a network pass)
SPLIT_MIN_MACS = 1 << 23
#: blocks per product: fixed, so that every output element comes from the same BLAS calls,
#: summed in the same order, whatever the thread count (results do not depend on it).
#: The forward cuts the input features (each block reads a quarter of W: SimpleConvNet's
#: 4320 -> 100 at batch 100, 2 threads, 0.29 ms against 0.39 for 4 blocks of rows); the
#: backward cuts them too (8 and 4 blocks measured within 3 %).
FORWARD_BLOCKS, BACKWARD_BLOCKS = 4, 4


def _blocked(task, bounds):
    """Run ``task(lo, hi)`` for each block of ``bounds`` on the kernel threads."""
    def chunk(first, last):
        for i in range(first, last):
            task(bounds[i], bounds[i + 1])
    run_chunks(chunk, len(bounds) - 1, get_num_threads())


class Affine(Layer):
    """out = x.reshape(N, -1) @ W + b, with W of shape (D, M).

    N-D input is flattened; backward restores the input's shape.  ``dW`` and
    ``db`` are kept as attributes, as in the book, and in ``grads``.
    """

    param_kinds = ("W", "b")

    def __init__(self, W, b):
        super().__init__()
        W = as_param("W", W, ndim=2)
        b = as_param("b", b, ndim=1)
        if b.shape != (W.shape[1],):
            raise ValueError(f"b must have shape ({W.shape[1]},) to match W {W.shape}, got {b.shape}")
        self.params = {"W": W, "b": b}

    W = property(lambda self: self.params["W"])
    b = property(lambda self: self.params["b"])
    dW = property(lambda self: self.grads.get("W"))
    db = property(lambda self: self.grads.get("b"))

    def output_shape(self, input_shape):
        d = int(np.prod(input_shape))
        if d != self.W.shape[0]:
            raise ValueError(f"{self!r} expects {self.W.shape[0]} input features, "
                             f"got input shape {tuple(input_shape)} ({d} features)")
        return (self.W.shape[1],)

    def fan_in(self):
        return self.W.shape[0]

    def forward(self, x, train_flg=True):
        W = self.params["W"]
        x = as_float_array(x, "x", W.dtype)
        self.original_x_shape = x.shape
        x2 = x.reshape(x.shape[0], -1)
        if x2.shape[1] != W.shape[0]:
            raise ValueError(f"x has {x2.shape[1]} features per sample (shape {x.shape}) but "
                             f"W expects {W.shape[0]}")
        self.x = x2
        b = self.params["b"]
        n, d = x2.shape
        if n * d * W.shape[1] < SPLIT_MIN_MACS:
            out = x2 @ W
            out += b
            return out
        bounds = split_bounds(d, FORWARD_BLOCKS)
        parts = np.empty((len(bounds) - 1, n, W.shape[1]), dtype=W.dtype)
        block = {lo: i for i, lo in enumerate(bounds[:-1])}

        def features(lo, hi):       # parts[i] = x[:, lo:hi] @ W[lo:hi]
            np.matmul(x2[:, lo:hi], W[lo:hi], out=parts[block[lo]])
        _blocked(features, bounds)
        out = np.add.reduce(parts, axis=0)        # block 0 + block 1 + ..., in order
        out += b
        return out

    def backward(self, dout):
        W = self.params["W"]
        dout = as_float_array(dout, "dout", W.dtype)  # grads keep the parameters' dtype
        x2 = self.x
        self.grads["b"] = np.sum(dout, axis=0)
        n, d = x2.shape
        if n * d * W.shape[1] < SPLIT_MIN_MACS:
            self.grads["W"] = x2.T @ dout
            if not self.need_dx:
                return None
            return (dout @ W.T).reshape(self.original_x_shape)
        # both products cut along the input features: dW[i:j] = x[:, i:j].T @ dout and
        # dx[:, i:j] = dout @ W[i:j].T (measured as fast as the whole products, on 1 thread)
        dW = np.empty(W.shape, dtype=W.dtype)
        dx = np.empty((n, d), dtype=W.dtype) if self.need_dx else None

        def features(lo, hi):
            np.matmul(x2[:, lo:hi].T, dout, out=dW[lo:hi])
            if dx is not None:
                np.matmul(dout, W[lo:hi].T, out=dx[:, lo:hi])
        _blocked(features, split_bounds(d, BACKWARD_BLOCKS))
        self.grads["W"] = dW
        return None if dx is None else dx.reshape(self.original_x_shape)

    def get_config(self):
        return {"units": int(self.W.shape[1])}

    def __repr__(self):
        return f"Affine({self.W.shape[0]}->{self.W.shape[1]})"


class Dense(Affine):
    """An :class:`Affine` layer built from its output size when the network knows its input."""

    def __init__(self, units, weight_init_std="he"):
        Layer.__init__(self)
        self.units = check_int("units", units, 1)
        init_std(weight_init_std, 1)  # validate now, not at build time
        self.weight_init_std = weight_init_std

    def build(self, input_shape, dtype=np.float32, rng=None):
        fan_in = int(np.prod(input_shape))
        if not self.params:
            rng = np.random.default_rng() if rng is None else rng
            std = init_std(self.weight_init_std, fan_in)
            self.params = {
                "W": (std * rng.standard_normal((fan_in, self.units))).astype(dtype),
                "b": np.zeros(self.units, dtype=dtype),
            }
        return super().build(input_shape, dtype, rng)

    def __repr__(self):
        if self.params:
            return super().__repr__()
        return f"Dense(units={self.units})"
