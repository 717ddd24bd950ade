"""Elementwise activations: Relu, Sigmoid, Tanh (the book's classes)."""
import numpy as np

from .._dtype import as_float_array
from ..functions import sigmoid as _sigmoid
from .base import Layer


class Relu(Layer):
    """y = max(x, 0); the gradient passes where x > 0."""

    def forward(self, x, train_flg=True):
        x = as_float_array(x, "x")
        self.mask = x <= 0
        return np.maximum(x, 0, dtype=x.dtype)

    def backward(self, dout):
        dx = np.array(dout, copy=True)
        dx[self.mask] = 0
        return dx


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), computed without overflow; dy/dx = y (1 - y)."""

    def forward(self, x, train_flg=True):
        self.out = _sigmoid(as_float_array(x, "x"))
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y²."""

    def forward(self, x, train_flg=True):
        self.out = np.tanh(as_float_array(x, "x"))
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out * self.out)
