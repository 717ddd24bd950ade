"""The book's networks, built on :class:`Sequential` with the book's constructor arguments
and parameter names (W1, b1, ...; gamma1, beta1, ... for BatchNorm)."""
import numpy as np

from .layers import (BatchNormalization, Conv2D, Dense, Dropout, Pooling, Relu,
                     Sigmoid)
from .network import Sequential

_ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


def _activation(name):
    try:
        return _ACTIVATIONS[str(name).lower()]
    except KeyError:
        raise ValueError(f"activation must be 'relu' or 'sigmoid', got {name!r}") from None


class TwoLayerNet(Sequential):
    """Affine → ReLU → Affine → SoftmaxWithLoss (chapter 5), weights N(0, weight_init_std²)."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, *,
                 dtype=np.float32, seed=None):
        super().__init__([Dense(hidden_size, weight_init_std), Relu(),
                          Dense(output_size, weight_init_std)],
                         (input_size,), dtype=dtype, seed=seed)


class MultiLayerNet(Sequential):
    """Fully connected net: (Affine → activation) × len(hidden_size_list) → Affine.

    ``weight_init_std``: a number, 'relu'/'he' or 'sigmoid'/'xavier', as in the book.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, *, dtype=np.float32, seed=None):
        act = _activation(activation)
        layers = []
        for size in hidden_size_list:
            layers += [Dense(size, weight_init_std), act()]
        layers.append(Dense(output_size, weight_init_std))
        super().__init__(layers, (input_size,), dtype=dtype, seed=seed,
                         weight_decay_lambda=weight_decay_lambda)


class MultiLayerNetExtend(Sequential):
    """:class:`MultiLayerNet` with optional BatchNorm after each hidden Affine and Dropout
    after each hidden activation (the book's ``dropout_ration`` spelling is accepted)."""

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, use_dropout=False,
                 dropout_ration=0.5, use_batchnorm=False, *, dropout_ratio=None,
                 dtype=np.float32, seed=None):
        act = _activation(activation)
        ratio = dropout_ration if dropout_ratio is None else dropout_ratio
        layers = []
        for size in hidden_size_list:
            layers.append(Dense(size, weight_init_std))
            if use_batchnorm:
                layers.append(BatchNormalization())
            layers.append(act())
            if use_dropout:
                layers.append(Dropout(ratio))
        layers.append(Dense(output_size, weight_init_std))
        super().__init__(layers, (input_size,), dtype=dtype, seed=seed,
                         weight_decay_lambda=weight_decay_lambda)


def _conv_param(p, name):
    try:
        return (int(p["filter_num"]), int(p["filter_size"]), int(p.get("pad", 0)),
                int(p.get("stride", 1)))
    except (TypeError, KeyError) as exc:
        raise ValueError(f"{name} must be a dict with filter_num, filter_size, pad, stride; "
                         f"got {p!r}") from exc


class SimpleConvNet(Sequential):
    """conv → ReLU → 2x2 max-pool → Affine → ReLU → Affine (chapter 7)."""

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
                 hidden_size=100, output_size=10, weight_init_std=0.01, *, dtype=np.float32,
                 seed=None):
        fn, fs, pad, stride = _conv_param(conv_param, "conv_param")
        super().__init__([Conv2D(fn, fs, stride, pad, weight_init_std), Relu(),
                          Pooling(2, 2, stride=2),
                          Dense(hidden_size, weight_init_std), Relu(),
                          Dense(output_size, weight_init_std)],
                         tuple(input_dim), dtype=dtype, seed=seed)


_DEEP_DEFAULTS = (
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
)


class DeepConvNet(Sequential):
    """Six 3x3 convolutions with ReLU, a 2x2 max-pool after every second, then
    Affine → ReLU → Dropout(0.5) → Affine → Dropout(0.5) (chapter 8, the book's dropout).

    He initialisation with each layer's fan-in computed from the shapes.
    """

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1=_DEEP_DEFAULTS[0], conv_param_2=_DEEP_DEFAULTS[1],
                 conv_param_3=_DEEP_DEFAULTS[2], conv_param_4=_DEEP_DEFAULTS[3],
                 conv_param_5=_DEEP_DEFAULTS[4], conv_param_6=_DEEP_DEFAULTS[5],
                 hidden_size=50, output_size=10, *, dtype=np.float32, seed=None):
        params = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5,
                  conv_param_6]
        layers = []
        for i, p in enumerate(params):
            fn, fs, pad, stride = _conv_param(p, f"conv_param_{i + 1}")
            layers += [Conv2D(fn, fs, stride, pad, "he"), Relu()]
            if i % 2 == 1:
                layers.append(Pooling(2, 2, stride=2))
        layers += [Dense(hidden_size, "he"), Relu(), Dropout(0.5),
                   Dense(output_size, "he"), Dropout(0.5)]
        super().__init__(layers, tuple(input_dim), dtype=dtype, seed=seed)
