"""Convolution: the book's ``Convolution(W, b, stride, pad)`` and
``Conv2D(out_channels, kernel_size, stride, pad)``.

``algorithm`` picks the kernels: ``"im2col"`` (the book's unfolding, then one GEMM),
``"winograd"`` (F(2x2, 3x3): 3x3 filters at stride 1 only, 2.25x fewer multiply-adds) or
``"auto"`` (the default: Winograd where it applies and x has at least
``functional.WINOGRAD_MIN_CHANNELS`` channels, im2col otherwise).  Both compute the same
convolution; they differ in rounding (about 1e-7 relative in float32).  Winograd's
transforms subtract input values, so an input holding inf can give NaN where im2col gives
inf: both are non-finite at the same places."""
import numpy as np

from .. import functional as F
from .._dtype import as_float_array
from .base import Layer, as_param, check_int, init_std


class Convolution(Layer):
    """2-D convolution of x (N, C, H, W) with W (FN, C, FH, FW) and b (FN,)."""

    param_kinds = ("W", "b")

    def __init__(self, W, b, stride=1, pad=0, algorithm="auto"):
        super().__init__()
        W = as_param("W", W, ndim=4)
        b = as_param("b", b, ndim=1)
        if b.shape != (W.shape[0],):
            raise ValueError(f"b must have shape ({W.shape[0]},) to match W {W.shape}, got {b.shape}")
        self.params = {"W": W, "b": b}
        self.stride = check_int("stride", stride, 1)
        self.pad = check_int("pad", pad, 0)
        self.algorithm = F.check_conv_algorithm(algorithm, W.shape, self.stride)

    W = property(lambda self: self.params["W"])
    b = property(lambda self: self.params["b"])
    dW = property(lambda self: self.grads.get("W"))
    db = property(lambda self: self.grads.get("b"))

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self!r} needs (C, H, W) input, got {tuple(input_shape)}")
        c, h, w = input_shape
        fn, wc, fh, fw = self.W.shape
        if c != wc:
            raise ValueError(f"{self!r} expects {wc} input channels, got input shape {tuple(input_shape)}")
        return (fn, F.conv_output_size(h, fh, self.stride, self.pad),
                F.conv_output_size(w, fw, self.stride, self.pad))

    def fan_in(self):
        return int(np.prod(self.W.shape[1:]))

    def forward(self, x, train_flg=True):
        W = self.params["W"]
        x = as_float_array(x, "x", W.dtype)
        self.x = x
        return F.conv2d_forward(x, W, self.params["b"], self.stride, self.pad,
                                algorithm=self.algorithm)

    def backward(self, dout):
        W = self.params["W"]
        dx, dW, db = F.conv2d_backward(as_float_array(dout, "dout", W.dtype), self.x, W,
                                       self.stride, self.pad, need_dx=self.need_dx,
                                       algorithm=self.algorithm)
        self.grads["W"], self.grads["b"] = dW, db
        return dx

    def get_config(self):
        fn, _, fh, fw = self.W.shape
        return {"out_channels": int(fn), "kernel_size": [int(fh), int(fw)],
                "stride": self.stride, "pad": self.pad, "algorithm": self.algorithm}

    def __repr__(self):
        fn, c, fh, fw = self.W.shape
        k = fh if fh == fw else (fh, fw)
        return f"Conv2D({c}->{fn}, k={k}, s={self.stride}, p={self.pad})"


class Conv2D(Convolution):
    """A :class:`Convolution` built from sizes when the network knows its input channels."""

    def __init__(self, out_channels, kernel_size, stride=1, pad=0, weight_init_std="he",
                 algorithm="auto"):
        Layer.__init__(self)
        self.out_channels = check_int("out_channels", out_channels, 1)
        if isinstance(kernel_size, (tuple, list)):
            if len(kernel_size) != 2:
                raise ValueError(f"kernel_size must be an int or a pair, got {kernel_size!r}")
            self.kernel_size = tuple(check_int("kernel_size", k, 1) for k in kernel_size)
        else:
            k = check_int("kernel_size", kernel_size, 1)
            self.kernel_size = (k, k)
        self.stride = check_int("stride", stride, 1)
        self.pad = check_int("pad", pad, 0)
        self.algorithm = F.check_conv_algorithm(algorithm, (None, None) + self.kernel_size,
                                                self.stride)
        init_std(weight_init_std, 1)
        self.weight_init_std = weight_init_std

    def build(self, input_shape, dtype=np.float32, rng=None):
        if not self.params:
            if len(input_shape) != 3:
                raise ValueError(f"Conv2D needs (C, H, W) input, got {tuple(input_shape)}")
            shape = (self.out_channels, input_shape[0]) + self.kernel_size
            fan_in = int(np.prod(shape[1:]))
            rng = np.random.default_rng() if rng is None else rng
            std = init_std(self.weight_init_std, fan_in)
            self.params = {"W": (std * rng.standard_normal(shape)).astype(dtype),
                           "b": np.zeros(self.out_channels, dtype=dtype)}
        return super().build(input_shape, dtype, rng)

    def __repr__(self):
        if self.params:
            return super().__repr__()
        return (f"Conv2D(?->{self.out_channels}, k={self.kernel_size}, s={self.stride}, "
                f"p={self.pad})")
