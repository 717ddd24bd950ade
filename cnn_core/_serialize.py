"""Networks to and from parameter files (the formats themselves live in :mod:`cnn_core.io`)."""
import os

import numpy as np

from . import __version__
from .io import load_npz, load_pickle_params, save_npz
from .layers import LAYER_CLASSES, BatchNormalization

FORMAT = "cnn_core.params/1"
_REBUILD = {"Affine": "Dense", "Convolution": "Conv2D"}


def layers_from_config(layer_configs):
    """Fresh layers from a saved architecture (book classes become their size-built twins)."""
    layers = []
    for cfg in layer_configs:
        cfg = dict(cfg)
        name = cfg.pop("class", None)
        name = _REBUILD.get(name, name)
        if name not in LAYER_CLASSES:
            raise ValueError(f"unknown layer class {name!r} in the saved architecture")
        try:
            layers.append(LAYER_CLASSES[name](**cfg))
        except TypeError as exc:
            raise ValueError(f"bad configuration {cfg!r} for layer {name}: {exc}") from None
    return layers


def save_network(network, path):
    meta = {"format": FORMAT, "version": __version__, "architecture": network.get_config(),
            "model": type(network).__name__}
    save_npz(path, network.state_arrays(), meta)


def _read(path):
    """(arrays, meta or None) from one of our .npz files or a book pickle."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"parameter file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        arrays, meta = load_npz(path)
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a cnn_core parameter file (format {meta.get('format')!r})")
        return arrays, meta
    return load_pickle_params(path), None


def load_into(network, path, arrays=None):
    """Check every name and shape of ``arrays`` (read from ``path`` if not given) against
    ``network``, then assign them; on any error the network is unchanged."""
    if arrays is None:
        arrays, _ = _read(path)
    current = network.state_arrays()
    params = dict(network.params)
    missing = sorted(set(params) - set(arrays))
    unexpected = sorted(set(arrays) - set(current))
    if missing or unexpected:
        raise ValueError(f"{os.fspath(path)} does not fit this network: missing {missing}, "
                         f"unexpected {unexpected}")
    for name, value in arrays.items():
        if value.shape != current[name].shape:
            raise ValueError(f"{os.fspath(path)}: {name} has shape {value.shape}, the network "
                             f"needs {current[name].shape}")
        if value.dtype.kind not in "fiu":
            raise ValueError(f"{os.fspath(path)}: {name} has non-numeric dtype {value.dtype}")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ValueError(f"{os.fspath(path)}: {name} holds NaN or infinite values")
    # every check passed: assign
    for name in params:
        network.params[name] = arrays[name]
    k = 0
    for layer in network.layers:
        if isinstance(layer, BatchNormalization):
            k += 1
            if f"running_mean{k}" in arrays:
                layer.running_mean = np.array(arrays[f"running_mean{k}"], np.float64)
                layer.running_var = np.array(arrays[f"running_var{k}"], np.float64)


def load_model(path, dtype=None):
    """Rebuild a trained network from a ``.npz`` written by ``save_params``."""
    from .network import Sequential
    arrays, meta = _read(path)
    if meta is None:
        raise ValueError(f"{os.fspath(path)} holds no architecture (a book pickle?): build the "
                         f"network first, then call network.load_params(path)")
    try:
        network = Sequential.from_config(meta["architecture"], dtype=dtype)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{os.fspath(path)}: malformed architecture ({exc})") from None
    load_into(network, path, arrays)
    return network
