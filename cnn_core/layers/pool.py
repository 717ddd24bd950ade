"""Pooling layers on the direct (no im2col) kernels: the book's ``Pooling`` (max) and
``AvgPooling``.  Padding follows PyTorch/ONNX (see :mod:`cnn_core.functional`)."""
from .. import functional as F
from .._dtype import as_float_array
from .base import Layer, check_int


class Pooling(Layer):
    """Max pooling over pool_h x pool_w windows (the book's signature, padding allowed)."""

    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        super().__init__()
        self.pool_h = check_int("pool_h", pool_h, 1)
        self.pool_w = check_int("pool_w", pool_w, 1)
        self.stride = check_int("stride", stride, 1)
        self.pad = check_int("pad", pad, 0)
        if self.pad >= min(self.pool_h, self.pool_w):
            raise ValueError(f"pad must be smaller than the window {self.pool_h}x{self.pool_w}, "
                             f"got {pad!r}")

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self!r} needs (C, H, W) input, got {tuple(input_shape)}")
        c, h, w = input_shape
        return (c, F.conv_output_size(h, self.pool_h, self.stride, self.pad),
                F.conv_output_size(w, self.pool_w, self.stride, self.pad))

    @property
    def _is_2x2(self):
        return (self.pool_h, self.pool_w, self.stride, self.pad) == (2, 2, 2, 0)

    def forward(self, x, train_flg=True):
        x = as_float_array(x, "x")
        if self._is_2x2:      # the book's pooling: the winners kept as 2-bit places (int32)
            out, codes = F.maxpool2x2_forward(x)
            self.x_shape, self._codes, self._arg_max = x.shape, codes, None
        else:
            out, arg_max = F.maxpool2d_forward(x, self.pool_h, self.pool_w, self.stride,
                                               self.pad)
            self.x_shape, self._codes, self._arg_max = x.shape, None, arg_max
        return out

    @property
    def arg_max(self):
        """Each window's winner as a flat ``h*W + w`` index in its plane (None before a
        forward pass).  Assigning one makes the backward route through it."""
        if getattr(self, "_arg_max", None) is None and getattr(self, "_codes", None) is not None:
            self._arg_max = F.maxpool2x2_argmax(self._codes, self.x_shape)
        return getattr(self, "_arg_max", None)

    @arg_max.setter
    def arg_max(self, value):
        self._codes, self._arg_max = None, value

    def backward(self, dout):
        if self._codes is not None:
            return F.maxpool2x2_backward(dout, self._codes, self.x_shape)
        return F.maxpool2d_backward(dout, self._arg_max, self.x_shape)

    def get_config(self):
        return {"pool_h": self.pool_h, "pool_w": self.pool_w, "stride": self.stride, "pad": self.pad}

    def __repr__(self):
        return f"MaxPool({self.pool_h}x{self.pool_w}, s={self.stride}, p={self.pad})"


class AvgPooling(Pooling):
    """Average pooling; ``count_include_pad`` (default True) divides by the whole window."""

    def __init__(self, pool_h, pool_w, stride=1, pad=0, count_include_pad=True):
        super().__init__(pool_h, pool_w, stride, pad)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x, train_flg=True):
        x = as_float_array(x, "x")
        self.x_shape = x.shape
        return F.avgpool2d_forward(x, self.pool_h, self.pool_w, self.stride, self.pad,
                                   self.count_include_pad)

    def backward(self, dout):
        return F.avgpool2d_backward(dout, self.x_shape, self.pool_h, self.pool_w, self.stride,
                                    self.pad, self.count_include_pad)

    def get_config(self):
        return dict(super().get_config(), count_include_pad=self.count_include_pad)

    def __repr__(self):
        return f"AvgPool({self.pool_h}x{self.pool_w}, s={self.stride}, p={self.pad})"
