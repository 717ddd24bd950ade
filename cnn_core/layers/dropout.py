"""Dropout (Srivastava et al., 2014) in both conventions.

``inverted=False`` (the book's, default for its signature): at training a unit
is kept with probability 1 - ratio and passed unscaled; at inference every
output is multiplied by (1 - ratio).  ``inverted=True``: kept units are scaled
by 1 / (1 - ratio) at training and inference is the identity.
"""
import numpy as np

from .base import Layer


class Dropout(Layer):
    def __init__(self, dropout_ratio=0.5, inverted=False, rng=None):
        super().__init__()
        ratio = float(dropout_ratio)
        if not (0.0 <= ratio < 1.0):
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        self.dropout_ratio = ratio
        self.inverted = bool(inverted)
        self.rng = np.random.default_rng() if rng is None else rng

    def build(self, input_shape, dtype=np.float32, rng=None):
        if rng is not None:
            self.rng = rng
        return tuple(input_shape)

    def forward(self, x, train_flg=True):
        x = np.asarray(x)
        keep = 1.0 - self.dropout_ratio
        if train_flg:
            self.mask = self.rng.random(x.shape, dtype=np.float64) > self.dropout_ratio
            if self.inverted:
                self.scale = x.dtype.type(1.0 / keep)
                return x * self.mask * self.scale
            self.scale = None
            return x * self.mask
        return x.copy() if self.inverted else x * x.dtype.type(keep)

    def backward(self, dout):
        dx = dout * self.mask
        if self.scale is not None:
            dx *= self.scale
        return dx

    def get_config(self):
        return {"dropout_ratio": self.dropout_ratio, "inverted": self.inverted}

    def __repr__(self):
        return f"Dropout({self.dropout_ratio}{', inverted' if self.inverted else ''})"
