"""Elementwise activations: Relu, Sigmoid, Tanh (the book's classes)."""
import numpy as np

from .. import functional as F
from .._dtype import as_float_array
from ..functions import sigmoid as _sigmoid
from .base import Layer


class Relu(Layer):
    """y = max(x, 0); the gradient passes where x > 0."""

    def forward(self, x, train_flg=True):
        out = F.relu_forward(x)
        self.out = out      # the backward's mask is out > 0: nothing else is stored
        return out

    @property
    def mask(self):
        """The book's mask: True where the gradient is stopped (x <= 0, and NaN)."""
        return None if getattr(self, "out", None) is None else ~(self.out > 0)

    def backward(self, dout):
        return F.relu_backward(dout, self.out)


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
