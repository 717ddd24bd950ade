"""Flatten (N, ...) to (N, D) and back."""
import numpy as np

from .base import Layer


class Flatten(Layer):
    def forward(self, x, train_flg=True):
        shape = np.shape(x)
        self.x_shape = shape  # (read back the local: another thread may run forward meanwhile)
        return np.reshape(x, (shape[0], -1))

    def backward(self, dout):
        return np.reshape(dout, self.x_shape)

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)
