"""Export a trained :class:`~cnn_core.Sequential` network to ONNX, for inference elsewhere.

``export(network, "model.onnx")`` writes one ONNX graph with the network's inference
form: a single input ``"input"`` of shape ``(N, *network.input_shape)`` (``N`` is a
dynamic dimension) and one output ``"output"`` (the scores ``predict`` returns, or their
softmax with ``softmax=True``).  Layer by layer:

=============================  ==========================================================
cnn_core layer                 ONNX
=============================  ==========================================================
Convolution / Conv2D           Conv (``pads`` on all four sides)
Pooling (max)                  MaxPool (a padded cell never wins, as in cnn_core)
AvgPooling                     AveragePool (``count_include_pad`` carried over)
Affine / Dense                 Flatten (only for N-D input) then Gemm, ``W`` as (D, M)
Relu, Sigmoid, Tanh            Relu, Sigmoid, Tanh
BatchNormalization             BatchNormalization with the running statistics (2-D or 4-D)
Dropout, the book's            Mul by (1 - ratio), what the book does at inference
Dropout, inverted              Identity
Flatten                        Flatten(axis=1)
``softmax=True``               Softmax over the classes (axis 1)
=============================  ==========================================================

Initializers take the network's parameter names (``W1``, ``b1``, ``gamma1``,
``running_mean1``, ...); nodes are named ``"{index}.{LayerClass}"`` after the layer they
come from.  Only cnn_core's own layer classes are exported: a subclass may compute
something else, so it is refused (``TypeError`` naming the layer and its index) rather
than exported as its base class.

``onnx`` is an optional dependency (``pip install "cnn_core[onnx]"``), imported when a
function here is called.  Note that onnxruntime's CPU provider implements Conv and
AveragePool for float32 only: a float64 export is valid ONNX (``onnx.reference`` runs it)
but onnxruntime refuses its convolutions; export float32 for onnxruntime.
"""
import os

import numpy as np

from ._dtype import check_dtype
from .layers import (Affine, AvgPooling, BatchNormalization, Conv2D, Convolution, Dense, Dropout,
                     Flatten, Pooling, Relu, Sigmoid, Tanh)

#: opset 17 runs in onnxruntime >= 1.13 and every onnx >= 1.12; the ops used are unchanged
#: from opset 13 (Softmax's axis semantics) up to the newest opset.
DEFAULT_OPSET = 17
MIN_OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "output"

_ELEMENTWISE = {Relu: "Relu", Sigmoid: "Sigmoid", Tanh: "Tanh"}
_SUPPORTED = (Convolution, Conv2D, Pooling, AvgPooling, Affine, Dense, Relu, Sigmoid, Tanh,
              BatchNormalization, Dropout, Flatten)


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the 'onnx' package: pip install \"cnn_core[onnx]\" "
                          "(or pip install onnx)") from exc
    return onnx


class _GraphBuilder:
    """Nodes and initializers of one graph, with the running name of the current tensor."""

    def __init__(self, onnx, dtype, param_names):
        self.onnx = onnx
        self.dtype = dtype
        self.param_names = param_names          # id(array) -> the network's name for it
        self.nodes, self.initializers = [], []
        self.current = INPUT_NAME

    def constant(self, name, value):
        """An initializer holding ``value`` cast to the export dtype."""
        arr = np.ascontiguousarray(value, dtype=self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def param(self, index, key, source, data=None):
        """An initializer for the array ``source`` (holding ``data`` if given), named as in
        ``network.state_arrays()`` (``W1``, ``running_var2``, ...), else ``"{index}.{key}"``."""
        name = self.param_names.get(id(source), f"{index}.{key}")
        return self.constant(name, source if data is None else data)

    def node(self, op, index, layer, inputs=(), tag="", **attrs):
        """Append ``op`` applied to the current tensor (and ``inputs``); it becomes current."""
        name = f"{index}.{type(layer).__name__}{tag}"
        out = f"{name}:out"
        self.nodes.append(self.onnx.helper.make_node(op, [self.current, *inputs], [out],
                                                     name=name, **attrs))
        self.current = out


def _unsupported(index, layer, why=None):
    cls = type(layer)
    names = ", ".join(sorted({c.__name__ for c in _SUPPORTED}))
    reason = why or (f"class {cls.__module__}.{cls.__qualname__} has no ONNX translation "
                     f"(exported classes, exactly: {names})")
    return TypeError(f"cannot export layer {index} ({layer!r}) to ONNX: {reason}")


def _need_rank(index, layer, rank, expected):
    if rank != expected:
        raise ValueError(f"cannot export layer {index} ({layer!r}) to ONNX: it needs "
                         f"{expected}-D input (with the batch axis), got {rank}-D")


def _weights(g, index, layer):
    return [g.param(index, key, layer.params[key]) for key in ("W", "b")]


def _add_layer(g, index, layer, rank):
    """Translate one layer (rank: of its input, batch axis included); return the output rank."""
    cls = type(layer)
    if cls in (Convolution, Conv2D):
        _need_rank(index, layer, rank, 4)
        fh, fw = layer.params["W"].shape[2:]
        g.node("Conv", index, layer, _weights(g, index, layer),
               kernel_shape=[fh, fw], strides=[layer.stride] * 2, pads=[layer.pad] * 4)
        return 4
    if cls in (Pooling, AvgPooling):
        _need_rank(index, layer, rank, 4)
        attrs = dict(kernel_shape=[layer.pool_h, layer.pool_w], strides=[layer.stride] * 2,
                     pads=[layer.pad] * 4)
        if cls is AvgPooling:
            g.node("AveragePool", index, layer, count_include_pad=int(layer.count_include_pad),
                   **attrs)
        else:
            g.node("MaxPool", index, layer, **attrs)
        return 4
    if cls in (Affine, Dense):
        if rank != 2:
            g.node("Flatten", index, layer, tag=".flatten", axis=1)
        g.node("Gemm", index, layer, _weights(g, index, layer))
        return 2
    if cls in _ELEMENTWISE:
        g.node(_ELEMENTWISE[cls], index, layer)
        return rank
    if cls is BatchNormalization:
        if rank not in (2, 4):
            raise ValueError(f"cannot export layer {index} ({layer!r}) to ONNX: it needs 2-D or "
                             f"4-D input (with the batch axis), got {rank}-D")
        if layer.running_mean is None or layer.running_var is None:
            raise ValueError(f"cannot export layer {index} ({layer!r}) to ONNX: it has no running "
                             f"statistics (build the network first)")
        # ONNX's epsilon is a float32 attribute: move its rounding error into the variance
        # (in float64), so that var + eps is the sum cnn_core takes.  Only that sum is used;
        # a zero variance may come out a hair (< 1e-13) below zero.
        eps32 = float(np.float32(layer.eps))
        var = np.asarray(layer.running_var, np.float64) + (layer.eps - eps32)
        inputs = [g.param(index, "gamma", layer.params["gamma"]),
                  g.param(index, "beta", layer.params["beta"]),
                  g.param(index, "running_mean", layer.running_mean),
                  g.param(index, "running_var", layer.running_var, data=var)]
        g.node("BatchNormalization", index, layer, inputs, epsilon=eps32)
        return rank
    if cls is Dropout:
        keep = 1.0 - layer.dropout_ratio
        if layer.inverted or keep == 1.0:
            g.node("Identity", index, layer)
        else:
            g.node("Mul", index, layer, [g.constant(f"{index}.keep", keep)])
        return rank
    if cls is Flatten:
        g.node("Flatten", index, layer, axis=1)
        return 2
    raise _unsupported(index, layer)


def _check_opset(onnx, opset):
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {newest} (the newest this "
                         f"onnx {onnx.__version__} knows), got {opset!r}")
    return int(opset)


def _check_batch_dim(batch_dim):
    if batch_dim is None or (isinstance(batch_dim, str) and batch_dim.isidentifier()):
        return batch_dim
    if isinstance(batch_dim, (int, np.integer)) and not isinstance(batch_dim, bool) \
            and batch_dim >= 1:
        return int(batch_dim)
    raise ValueError(f"batch_dim must be a name (a dynamic batch axis), a positive int (a fixed "
                     f"batch size) or None (unnamed dynamic), got {batch_dim!r}")


def _output_shapes(network):
    shapes = getattr(network, "output_shapes", None)
    if shapes is not None and len(shapes) == len(network.layers):
        return [tuple(s) for s in shapes]
    shape, shapes = tuple(network.input_shape), []
    for layer in network.layers:
        shape = tuple(layer.output_shape(shape))
        shapes.append(shape)
    return shapes


def to_onnx(network, *, opset=DEFAULT_OPSET, softmax=False, dtype=None, batch_dim="N"):
    """The ONNX ``ModelProto`` of ``network``'s inference form (see the module docstring).

    ``dtype``: float32 or float64, by default ``network.dtype``; parameters (and the
    float64 BatchNorm running statistics) are cast to it.  ``batch_dim``: the name of the
    dynamic batch axis, an int for a fixed batch size, or None for an unnamed dynamic axis.
    The model passes ``onnx.checker.check_model(model, full_check=True)``.
    """
    onnx = _import_onnx()
    from . import __version__
    opset = _check_opset(onnx, opset)
    batch_dim = _check_batch_dim(batch_dim)
    dtype = check_dtype(network.dtype if dtype is None else dtype)
    layers = list(network.layers)
    if not layers:
        raise ValueError("network has no layers to export")
    for index, layer in enumerate(layers):     # refuse before building anything
        if type(layer) not in _SUPPORTED:
            raise _unsupported(index, layer)
    out_shape = _output_shapes(network)[-1]
    if softmax and len(out_shape) != 1:
        raise ValueError(f"softmax=True needs (N, classes) scores, but the network's output is "
                         f"(N, {', '.join(map(str, out_shape))})")

    arrays = network.state_arrays() if hasattr(network, "state_arrays") else dict(network.params)
    g = _GraphBuilder(onnx, dtype, {id(a): name for name, a in arrays.items()})
    rank = 1 + len(network.input_shape)
    for index, layer in enumerate(layers):
        rank = _add_layer(g, index, layer, rank)
    if softmax:
        g.nodes.append(onnx.helper.make_node("Softmax", [g.current], ["softmax:out"],
                                             name="softmax", axis=1))
        g.current = "softmax:out"
    g.nodes[-1].output[0] = OUTPUT_NAME         # the last node writes the graph's output

    helper = onnx.helper
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    graph = helper.make_graph(
        g.nodes, type(network).__name__,
        [helper.make_tensor_value_info(INPUT_NAME, elem, [batch_dim, *network.input_shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, [batch_dim, *out_shape])],
        g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="cnn_core",
                              producer_version=__version__, doc_string=repr(network),
                              # the oldest IR that knows this opset: older runtimes load it
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    return model


def export(network, path, *, opset=DEFAULT_OPSET, softmax=False, dtype=None, batch_dim="N"):
    """Write ``network`` to the ONNX file ``path`` atomically; return the ``ModelProto``.

    The file is written to a temporary file beside ``path``, fsynced and renamed over it:
    on any error an existing ``path`` is left as it was.  Arguments as :func:`to_onnx`.
    """
    from .io import atomic_write
    model = to_onnx(network, opset=opset, softmax=softmax, dtype=dtype, batch_dim=batch_dim)
    data = model.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return model


def cli_export(model_npz, out_onnx, softmax=False, *, opset=DEFAULT_OPSET, dtype=None):
    """``cnn-core export model.npz model.onnx [--softmax]``: load a saved model, export it."""
    from ._serialize import load_model
    network = load_model(model_npz)
    export(network, out_onnx, opset=opset, softmax=softmax, dtype=dtype)
    dtype = check_dtype(network.dtype if dtype is None else dtype)
    print(f"exported {type(network).__name__} ({len(network.layers)} layers, {dtype}, "
          f"opset {opset}{', softmax output' if softmax else ''}) to {os.fspath(out_onnx)}")
    return 0
