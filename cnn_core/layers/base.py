"""The layer protocol, the book's version with the keys made explicit.

Every layer has ``params`` and ``grads`` dicts under matching keys (empty for
parameterless layers), ``forward(x, train_flg=True)`` which caches what the
backward needs, and ``backward(dout)`` which returns ``dx`` and fills
``grads``.  No layer modifies an array its caller passed in.

Layers built from sizes (``Dense(100)``, ``Conv2D(16, 3)``) create their
parameters in :meth:`build`, which :class:`cnn_core.Sequential` calls with the
input shape (without the batch axis), the network's dtype and its random
generator.  :meth:`build` returns the output shape.
"""
import numpy as np


class Layer:
    #: parameter kinds in naming order; the network names them f"{kind}{k}"
    param_kinds = ()
    #: False when nothing consumes dx (a network's first layer): backward may skip it
    need_dx = True

    def __init__(self):
        self.params = {}
        self.grads = {}

    # ------------------------------------------------------------------ protocol
    def build(self, input_shape, dtype=np.float32, rng=None):
        """Create or cast parameters for ``input_shape``; return the output shape."""
        self.cast(dtype)
        return self.output_shape(input_shape)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, train_flg=True):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def cast(self, dtype):
        """Store every parameter (and matching grad) as ``dtype``."""
        for key, p in self.params.items():
            if p.dtype != dtype:
                self._set_param(key, p.astype(dtype))

    def _set_param(self, key, value):
        self.params[key] = value

    @property
    def n_params(self):
        return int(sum(p.size for p in self.params.values()))

    def fan_in(self):
        """Inputs feeding one output unit (None for parameterless layers)."""
        return None

    def get_config(self):
        """A JSON-able description from which the layer can be rebuilt (shapes only, no values)."""
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


def init_std(weight_init_std, fan_in):
    """The book's rule: a number, 'he'/'relu' → √(2/fan_in), 'xavier'/'sigmoid' → √(1/fan_in)."""
    if isinstance(weight_init_std, str):
        key = weight_init_std.lower()
        if key in ("he", "relu"):
            return np.sqrt(2.0 / fan_in)
        if key in ("xavier", "sigmoid"):
            return np.sqrt(1.0 / fan_in)
        raise ValueError(
            f"weight_init_std must be a positive number, 'he' or 'xavier', got {weight_init_std!r}")
    std = float(weight_init_std)
    if not np.isfinite(std) or std < 0:
        raise ValueError(f"weight_init_std must be a positive number, 'he' or 'xavier', "
                         f"got {weight_init_std!r}")
    return std


def check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def as_param(name, value, ndim=None):
    """A user-given parameter array, copied (the layer owns it) in a float dtype."""
    from .._dtype import as_float_array
    arr = np.array(as_float_array(value, name), copy=True)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr
