"""Affine (fully connected) layer: the book's ``Affine(W, b)`` and ``Dense(units)``."""
import numpy as np

from .._dtype import as_float_array
from .base import Layer, as_param, check_int, init_std


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
        out = x2 @ W
        out += self.params["b"]
        return out

    def backward(self, dout):
        W = self.params["W"]
        dout = as_float_array(dout, "dout", W.dtype)  # grads keep the parameters' dtype
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = np.sum(dout, axis=0)
        if not self.need_dx:
            return None
        dx = dout @ W.T
        return dx.reshape(self.original_x_shape)

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
