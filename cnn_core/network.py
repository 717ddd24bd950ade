"""Sequential: a list of layers plus a loss layer, with the book's network methods.

Parameter names follow the book: the k-th weighted layer (Affine/Convolution)
owns ``W{k}`` and ``b{k}``, the k-th BatchNorm ``gamma{k}`` and ``beta{k}``.
``params`` is a live view: optimizers that update ``network.params[name]`` in
place, or assign to it, change the layer's own array.
"""
from collections.abc import MutableMapping

import numpy as np

from . import functional as F
from ._dtype import as_float_array, check_dtype
from ._workers import blas_single_thread
from .layers import (BatchNormalization, Conv2D, Convolution, Dropout, Pooling, Relu,
                     SoftmaxWithLoss)
from .layers.loss import as_labels

#: inference runs in chunks of this many samples: bounded memory, same results, and
#: measured faster than chunks of 1000 (DeepConvNet on 2,000 images: 2.1 s against 3.1 s)
PREDICT_CHUNK = 200


class FusedConv:
    """A ``Convolution`` followed by a ``Relu``, a 2x2/stride-2 max ``Pooling``, or both,
    that :meth:`Sequential.execution_order` runs as one node: the ReLU and the pooling
    work on each micro-batch of the convolution's output while it is still in cache
    (:func:`functional.conv2d_forward` with ``relu=True``,
    :func:`functional.conv2d_maxpool_forward`), and the backward rebuilds the convolution's
    gradient one micro-batch at a time.  Outputs and gradients are bit for bit those of the
    layers run one by one.  The layers keep the state their own ``backward`` would need
    (``x``, the pooling's winners, the ReLU's output) and receive their gradients."""

    def __init__(self, conv, relu, pool):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = tuple(layer for layer in (conv, relu, pool) if layer is not None)

    @staticmethod
    def matches(layers, i):
        """The node ``layers[i:]`` starts with, or None.  A ReLU followed by a pooling that
        cannot be fused is left to run after that pooling (on less data)."""
        if type(layers[i]) not in (Convolution, Conv2D):
            return None
        j = i + 1
        relu = layers[j] if j < len(layers) and type(layers[j]) is Relu else None
        j += relu is not None
        pool = layers[j] if j < len(layers) and type(layers[j]) is Pooling else None
        if pool is not None and not pool._is_2x2:
            return None
        if relu is None and pool is None:
            return None
        return FusedConv(layers[i], relu, pool)

    def forward(self, x, train_flg=True):
        conv, relu, pool = self.conv, self.relu, self.pool
        W = conv.params["W"]
        x = as_float_array(x, "x", W.dtype)
        args = (x, W, conv.params["b"], conv.stride, conv.pad)
        if pool is None:
            out = F.conv2d_forward(*args, relu=True, algorithm=conv.algorithm)
        else:
            out, codes = F.conv2d_maxpool_forward(*args, relu=relu is not None,
                                                  algorithm=conv.algorithm)
            fn, _, fh, fw = W.shape
            pool.x_shape = (x.shape[0], fn,
                            F.conv_output_size(x.shape[2], fh, conv.stride, conv.pad),
                            F.conv_output_size(x.shape[3], fw, conv.stride, conv.pad))
            pool._codes, pool._arg_max = codes, None
        conv.x = x
        if relu is not None:
            relu.out = out
        return out

    def backward(self, dout):
        conv, relu, pool = self.conv, self.relu, self.pool
        W = conv.params["W"]
        dout = as_float_array(dout, "dout", W.dtype)
        mask = None if relu is None else relu.out
        if pool is None:
            dx, dW, db = F.conv2d_backward(dout, conv.x, W, conv.stride, conv.pad, out=mask,
                                           need_dx=conv.need_dx, algorithm=conv.algorithm)
        else:
            dx, dW, db = F.conv2d_maxpool_backward(
                dout, pool._codes, conv.x, W, conv.stride, conv.pad, out=mask,
                need_dx=conv.need_dx, algorithm=conv.algorithm)
        conv.grads["W"], conv.grads["b"] = dW, db
        return dx

    def __repr__(self):
        return " + ".join(map(repr, self.layers))


class _ParamView(MutableMapping):
    """name -> the owning layer's array; assignment replaces the layer's array."""

    def __init__(self, index):
        self._index = index

    def __getitem__(self, name):
        layer, key = self._index[name]
        return layer.params[key]

    def __setitem__(self, name, value):
        layer, key = self._index[name]
        old = layer.params[key]
        value = np.asarray(value)
        if value.shape != old.shape:
            raise ValueError(f"params[{name!r}] must have shape {old.shape}, got {value.shape}")
        layer.params[key] = np.ascontiguousarray(value, dtype=old.dtype)

    def __delitem__(self, name):
        raise TypeError("network parameters cannot be deleted")

    def __iter__(self):
        return iter(self._index)

    def __len__(self):
        return len(self._index)

    def __repr__(self):
        return "{" + ", ".join(f"{k!r}: {v.dtype}{v.shape}" for k, v in self.items()) + "}"


class Sequential:
    """``Sequential(layers, input_shape=(1, 28, 28), dtype=np.float32, seed=0)``.

    ``input_shape`` is the shape of one sample (no batch axis); it builds the
    size-given layers (``Dense``, ``Conv2D``, ...) and checks the others.
    ``weight_decay_lambda`` adds ``0.5 λ ΣW²`` to the loss and ``λW`` to the
    weight gradients, as in the book's ``MultiLayerNet``.
    """

    def __init__(self, layers, input_shape, *, loss_layer=None, dtype=np.float32, seed=None,
                 weight_decay_lambda=0.0):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("layers must hold at least one layer, got an empty list")
        self.last_layer = SoftmaxWithLoss() if loss_layer is None else loss_layer
        self.dtype = check_dtype(dtype)
        wd = float(weight_decay_lambda)
        if not (np.isfinite(wd) and wd >= 0):
            raise ValueError(f"weight_decay_lambda must be a finite float >= 0, got {weight_decay_lambda!r}")
        self.weight_decay_lambda = wd
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._build(input_shape)

    # ------------------------------------------------------------------ construction
    def _build(self, input_shape):
        try:
            shape = tuple(int(s) for s in input_shape)
        except TypeError:
            raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}") from None
        if not shape or min(shape) < 1:
            raise ValueError(f"input_shape must be positive ints (one sample's shape), got {input_shape!r}")
        self.input_shape = shape
        self.output_shapes = []
        index, counters = {}, {}
        for layer in self.layers:
            rng = self._rng.spawn(1)[0] if isinstance(layer, Dropout) else self._rng
            shape = tuple(layer.build(shape, self.dtype, rng))
            self.output_shapes.append(shape)
            if layer.param_kinds:
                family = layer.param_kinds
                counters[family] = counters.get(family, 0) + 1
                for kind in family:
                    index[f"{kind}{counters[family]}"] = (layer, kind)
        self._index = index
        self.params = _ParamView(index)
        # Nothing consumes the input gradient of the first layer: let it skip computing it.
        self.layers[0].need_dx = False

    def cast(self, dtype):
        """Convert every parameter to ``dtype`` (float32 or float64) in place; returns self."""
        self.dtype = check_dtype(dtype)
        for layer in self.layers:
            layer.cast(self.dtype)
        return self

    # ------------------------------------------------------------------ the book's methods
    def _as_input(self, x):
        x = as_float_array(x, "x", self.dtype)
        if x.shape[1:] != self.input_shape:
            if x.ndim >= 1 and x.size == x.shape[0] * int(np.prod(self.input_shape)):
                x = x.reshape((x.shape[0],) + self.input_shape)
            else:
                raise ValueError(f"x must have shape (N, {', '.join(map(str, self.input_shape))}) "
                                 f"for this network, got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"x has an empty batch (shape {x.shape})")
        return x

    def _forward(self, x, train_flg):
        # BLAS stays single-threaded for the whole pass: the parallelism is cnn_core's own
        # (batch chunks and OpenMP); a BLAS worker woken by one GEMM would spin on a core
        # the next chunked layer needs (measured: DeepConvNet step 88 ms instead of 50 ms).
        with blas_single_thread():
            for layer in self.execution_order():
                x = layer.forward(x, train_flg)
        return x

    def execution_order(self):
        """The nodes the passes run, in order: ``layers``, except that

        * a ``Convolution`` followed by a ``Relu``, a 2x2/stride-2 max ``Pooling`` or both
          runs as one :class:`FusedConv` node (SimpleConvNet's conv + ReLU + pool at 2
          threads: forward 0.58 -> 0.56 ms, backward 0.66 -> 0.60 ms; DeepConvNet's
          16-channel one 1.72 -> 1.63 and 3.36 -> 3.11 ms);
        * otherwise a ``Relu`` directly followed by a max ``Pooling`` runs after it.  The
          two commute exactly (max(relu(x)) == relu(max(x)), and the gradients are equal
          element for element, NaN included), and the ReLU then works on a quarter of the
          data (2x2 pooling).  Only the cached state differs: that ReLU keeps the pooled
          output.

        Either way outputs and gradients are bit for bit those of ``layers`` in order."""
        layers, order, i = self.layers, [], 0
        while i < len(layers):
            fused = FusedConv.matches(layers, i)
            if fused is not None:
                order.append(fused)
                i += len(fused.layers)
            elif (i + 1 < len(layers) and type(layers[i]) is Relu
                    and type(layers[i + 1]) is Pooling):
                order += [layers[i + 1], layers[i]]
                i += 2
            else:
                order.append(layers[i])
                i += 1
        return order

    def predict(self, x, train_flg=False):
        """Scores (before softmax) for a batch ``x``.  Inference runs in bounded chunks."""
        x = self._as_input(x)
        if train_flg or x.shape[0] <= PREDICT_CHUNK:
            return self._forward(x, train_flg)
        return np.concatenate([self._forward(x[i:i + PREDICT_CHUNK], False)
                               for i in range(0, x.shape[0], PREDICT_CHUNK)])

    def _weight_decay(self):
        if not self.weight_decay_lambda:
            return 0.0
        return 0.5 * self.weight_decay_lambda * sum(
            float(np.sum(np.square(p, dtype=np.float64))) for k, p in self.params.items()
            if k.startswith("W"))

    def loss(self, x, t, train_flg=True):
        """Mean loss of the batch plus the weight-decay term."""
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t) + self._weight_decay()

    def accuracy(self, x, t, batch_size=100):
        """Fraction of ``x`` classified as ``t`` (index or one-hot); every sample counts."""
        x = self._as_input(x)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        n = x.shape[0]
        labels = np.asarray(t)
        correct = 0
        for i in range(0, n, batch_size):
            y = self._forward(x[i:i + batch_size], False)
            correct += int(np.sum(y.argmax(axis=1) == as_labels(labels[i:i + batch_size],
                                                               y.shape[0], y.shape[1])))
        return correct / n

    def gradient(self, x, t):
        """Backpropagation: the loss's gradient for every parameter, as a dict named like ``params``."""
        self.last_loss = self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        with blas_single_thread():
            for layer in reversed(self.execution_order()):
                dout = layer.backward(dout)
        grads = {name: layer.grads[key] for name, (layer, key) in self._index.items()}
        if self.weight_decay_lambda:
            for name in grads:
                if name.startswith("W"):
                    grads[name] = grads[name] + self.weight_decay_lambda * self.params[name]
        return grads

    def numerical_gradient(self, x, t):
        """The book's slow central-difference gradient of the loss (for checking and teaching)."""
        from .functions import numerical_gradient
        return {name: numerical_gradient(lambda _: self.loss(x, t), p)
                for name, p in self.params.items()}

    # ------------------------------------------------------------------ inspection
    def summary(self):
        """A table of layers, output shapes, parameter counts and fan-in."""
        rows = [("layer", "output shape", "params", "fan-in"),
                ("input", str(self.input_shape), "0", "")]
        for layer, shape in zip(self.layers, self.output_shapes):
            fi = layer.fan_in()
            rows.append((repr(layer), str(shape), f"{layer.n_params:,}", "" if fi is None else str(fi)))
        total = sum(layer.n_params for layer in self.layers)
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"total parameters: {total:,}  (dtype {self.dtype})")
        return "\n".join(lines)

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([{inner}], input_shape={self.input_shape})"

    # ------------------------------------------------------------------ parameter files
    def get_config(self):
        return {
            "input_shape": list(self.input_shape),
            "dtype": str(self.dtype),
            "weight_decay_lambda": self.weight_decay_lambda,
            "layers": [dict(layer.get_config(), **{"class": type(layer).__name__})
                       for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config, dtype=None):
        """Rebuild an (untrained) network from :meth:`get_config`."""
        from ._serialize import layers_from_config
        return Sequential(layers_from_config(config["layers"]), config["input_shape"],
                          dtype=dtype or config.get("dtype", "float32"),
                          weight_decay_lambda=config.get("weight_decay_lambda", 0.0))

    def state_arrays(self):
        """Parameters plus BatchNorm running statistics, by name."""
        arrays = dict(self.params)
        k = 0
        for layer in self.layers:
            if isinstance(layer, BatchNormalization):
                k += 1
                arrays[f"running_mean{k}"] = layer.running_mean
                arrays[f"running_var{k}"] = layer.running_var
        return arrays

    def save_params(self, file_name="params.npz"):
        """Write parameters, architecture, dtype and library version to ``.npz``, atomically."""
        from ._serialize import save_network
        save_network(self, file_name)

    def load_params(self, file_name="params.npz"):
        """Load parameters from our ``.npz`` or from the book's pickles (restricted unpickler).

        Every name and shape is checked before anything is assigned: on error the
        network is unchanged.
        """
        from ._serialize import load_into
        load_into(self, file_name)
