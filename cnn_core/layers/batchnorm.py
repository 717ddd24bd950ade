"""Batch Normalization (Ioffe & Szegedy, 2015) on the fused statistics kernels.

Per feature for (N, D) input, per channel for (N, C, H, W) input.  The
running statistics follow the book: ``running = momentum * running + (1 -
momentum) * batch`` with the biased batch variance, and ε = 1e-6 (the book's
``10e-7``).
"""
import numpy as np

from .. import functional as F
from .._dtype import as_float_array
from .base import Layer, as_param


def _real(name, value):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None


class BatchNormalization(Layer):
    param_kinds = ("gamma", "beta")

    def __init__(self, gamma=None, beta=None, momentum=0.9, running_mean=None, running_var=None,
                 eps=1e-6):
        super().__init__()
        self.momentum = _real("momentum", momentum)
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.eps = _real("eps", eps)
        if not (np.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a positive float, got {eps!r}")
        if gamma is not None or beta is not None:
            if gamma is None or beta is None:
                raise ValueError("gamma and beta must be given together")
            gamma = as_param("gamma", gamma, ndim=1)
            beta = as_param("beta", beta, ndim=1)
            if gamma.shape != beta.shape:
                raise ValueError(f"beta must have gamma's shape {gamma.shape}, got {beta.shape}")
            self.params = {"gamma": gamma, "beta": beta}
        self.running_mean = (None if running_mean is None
                             else as_param("running_mean", running_mean, 1).astype(np.float64))
        self.running_var = (None if running_var is None
                            else as_param("running_var", running_var, 1).astype(np.float64))
        if (self.running_mean is None) != (self.running_var is None) or (
                self.running_mean is not None
                and self.running_mean.shape != self.running_var.shape):
            raise ValueError("running_mean and running_var must be given together, with one "
                             f"shape; got {running_mean!r} and {running_var!r}")

    gamma = property(lambda self: self.params["gamma"])
    beta = property(lambda self: self.params["beta"])
    dgamma = property(lambda self: self.grads.get("gamma"))
    dbeta = property(lambda self: self.grads.get("beta"))

    def build(self, input_shape, dtype=np.float32, rng=None):
        if len(input_shape) not in (1, 3):
            raise ValueError(f"BatchNormalization needs (D,) or (C, H, W) input, "
                             f"got {tuple(input_shape)}")
        n = input_shape[0]
        if not self.params:
            self.params = {"gamma": np.ones(n, dtype), "beta": np.zeros(n, dtype)}
        elif self.params["gamma"].shape != (n,):
            raise ValueError(f"gamma has shape {self.params['gamma'].shape} but the input has "
                             f"{n} features/channels (input shape {tuple(input_shape)})")
        if self.running_mean is None:
            self.running_mean = np.zeros(n, np.float64)
            self.running_var = np.zeros(n, np.float64)
        elif self.running_mean.shape != (n,):
            raise ValueError(f"running_mean has shape {self.running_mean.shape} but the input has "
                             f"{n} features/channels (input shape {tuple(input_shape)})")
        return super().build(input_shape, dtype, rng)

    def forward(self, x, train_flg=True):
        gamma = self.params["gamma"]
        x = as_float_array(x, "x", gamma.dtype)
        if x.ndim not in (2, 4):
            raise ValueError(f"x must be (N, D) or (N, C, H, W), got shape {x.shape}")
        n_feat = x.shape[1]
        if n_feat != gamma.shape[0]:
            raise ValueError(f"x has {n_feat} features/channels (shape {x.shape}) but gamma has "
                             f"{gamma.shape[0]}")
        if self.running_mean is None:
            self.running_mean = np.zeros(n_feat, np.float64)
            self.running_var = np.zeros(n_feat, np.float64)
        elif self.running_mean.shape != (n_feat,):
            raise ValueError(f"running_mean has shape {self.running_mean.shape} but x has "
                             f"{n_feat} features/channels (shape {x.shape})")
        if train_flg:
            mean, var = F.batchnorm_stats(x)
            m = self.momentum
            self.running_mean = m * self.running_mean + (1 - m) * mean
            self.running_var = m * self.running_var + (1 - m) * var
        else:
            mean, var = self.running_mean, self.running_var
        out, inv_std = F.batchnorm_forward(x, gamma, self.params["beta"], mean, var, self.eps)
        self.x, self.mean, self.inv_std = x, np.asarray(mean, np.float64), inv_std
        return out

    def backward(self, dout):
        gamma = self.params["gamma"]
        dx, dgamma, dbeta = F.batchnorm_backward(as_float_array(dout, "dout", gamma.dtype),
                                                 self.x, gamma, self.mean, self.inv_std)
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        return dx

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps}

    def __repr__(self):
        n = self.params["gamma"].shape[0] if self.params else "?"
        return f"BatchNorm({n})"
