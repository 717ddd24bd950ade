"""ONNX export: onnxruntime reproduces ``network.predict`` and the book's accuracies.

onnx and onnxruntime are in the ``test`` extra and imported plainly: a missing one is an
error, not a skip.  Where no onnxruntime wheel exists (a platform of the wheel builds),
``CNN_CORE_SKIP_ONNX=1`` skips this module by that explicit rule, shown by ``-ra``.
"""
import os
import sys

import numpy as np
import pytest

if os.environ.get("CNN_CORE_SKIP_ONNX") == "1":
    pytest.skip("CNN_CORE_SKIP_ONNX=1: no onnx/onnxruntime on this platform",
                allow_module_level=True)

import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator

import cnn_core
from cnn_core import DeepConvNet, MultiLayerNet, MultiLayerNetExtend, Sequential, SimpleConvNet
from cnn_core.datasets import load_mnist
from cnn_core.functions import softmax
from cnn_core.layers import (AvgPooling, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                             Layer, Pooling, Relu, Sigmoid, Tanh)
from cnn_core.onnx import cli_export, export, to_onnx
from cnn_core.optim import Adam
from _paths import DLFS_DIR, MNIST_DIR

needs_data = pytest.mark.needs_data
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def assert_close(actual, desired):
    """Relative tolerance of the dtype; the absolute one scaled to the largest |score|, for
    scores near 0 that are sums of large terms (the runtime sums in another order)."""
    assert actual.dtype == desired.dtype and actual.shape == desired.shape
    rtol = RTOL[desired.dtype]
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * np.abs(desired).max())


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run(sess, x, chunk=1000):
    return np.concatenate([sess.run(None, {"input": x[i:i + chunk]})[0]
                           for i in range(0, len(x), chunk)])


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def mnist():
    (x_train, t_train), (x_test, t_test) = load_mnist(flatten=False, data_dir=MNIST_DIR,
                                                      download=False, progress=False)
    return x_train, t_train, x_test, t_test


def _book_mlp(dtype=np.float32):
    return MultiLayerNet(784, [50, 100], 10, activation="sigmoid", dtype=dtype)


BOOK = {  # name: (build, parameter file, correct predictions of 10,000 (data/README.md))
    "mlp": (_book_mlp, "sample_weight.pkl", 9352),
    "simple": (SimpleConvNet, "simple_convnet_params.pkl", 9600),
    "deep": (DeepConvNet, "deep_convnet_params.pkl", 9797),
}


def book_network(name, dtype=np.float32):
    build, fname, _ = BOOK[name]
    net = build(dtype=dtype)
    net.load_params(DLFS_DIR / fname)
    return net


def _bn_mlp(mnist, dtype=np.float32):
    """MultiLayerNetExtend with BatchNorm after 30 Adam steps: non-trivial running stats."""
    x_train, t_train = mnist[0][:3000].reshape(3000, -1), mnist[1][:3000]
    net = MultiLayerNetExtend(784, [50, 50], 10, use_batchnorm=True, dtype=dtype, seed=0)
    optimizer, rng = Adam(lr=0.01), np.random.default_rng(0)
    for _ in range(30):
        batch = rng.choice(len(x_train), 100)
        optimizer.update(net.params, net.gradient(x_train[batch], t_train[batch]))
    return net


@pytest.fixture(scope="module")
def bn_mlp(mnist):
    net = _bn_mlp(mnist)
    bn = [layer for layer in net.layers if isinstance(layer, BatchNormalization)]
    assert len(bn) == 2
    for layer in bn:  # far from the initial (0, 0) and from a unit normal
        assert np.ptp(layer.running_mean) > 0.1 and np.ptp(layer.running_var) > 0.1
    return net


def _flat(net, x):
    return x.reshape(len(x), *net.input_shape)


# ---------------------------------------------------------------------------- the networks
@needs_data
@pytest.mark.parametrize("name", ["simple", "deep", "bn_mlp"])
def test_runtime_matches_predict_for_batch_1_and_37(name, mnist, request):
    net = request.getfixturevalue("bn_mlp") if name == "bn_mlp" else book_network(name)
    sess = session(to_onnx(net))
    x_test = _flat(net, mnist[2])
    for batch in (x_test[:1], x_test[100:137]):   # one model, two batch sizes: N is dynamic
        assert_close(sess.run(None, {"input": batch})[0], net.predict(batch))


@needs_data
@pytest.mark.parametrize("name", list(BOOK))
def test_book_parameters_give_the_book_accuracy_in_the_runtime(name, mnist):
    """onnxruntime on the 10,000 test images gets exactly the number of correct predictions
    cnn_core gets (tests/test_network.py asserts cnn_core's, in float32 and float64; not
    recomputed here: DeepConvNet takes ~20 s on the shared CI machine, onnxruntime ~2 s)."""
    net = book_network(name)
    scores = run(session(to_onnx(net)), _flat(net, mnist[2]))
    assert int(np.sum(scores.argmax(axis=1) == mnist[3])) == BOOK[name][2]


@needs_data
def test_softmax_output(mnist):
    net = book_network("simple")
    x = mnist[2][:37]
    model = to_onnx(net, softmax=True)
    assert model.graph.node[-1].op_type == "Softmax"
    probs = session(model).run(None, {"input": x})[0]
    assert_close(probs, softmax(net.predict(x)))
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)


@needs_data
def test_float64_export(mnist, bn_mlp):
    x = mnist[2][:37].astype(np.float64)
    # onnxruntime runs float64 Gemm/Sigmoid/BatchNormalization ...
    for net in (book_network("mlp", np.float64), _bn_mlp(mnist, np.float64)):
        model = to_onnx(net)
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
        assert {i.data_type for i in model.graph.initializer} == {onnx.TensorProto.DOUBLE}
        assert_close(session(model).run(None, {"input": _flat(net, x)})[0], net.predict(x))
    # ... but has no float64 Conv/AveragePool on the CPU: the reference evaluator checks those
    for net in (book_network("simple", np.float64), book_network("deep", np.float64)):
        out = ReferenceEvaluator(to_onnx(net)).run(None, {"input": x[:3]})[0]
        assert_close(out, net.predict(x[:3]))
    # dtype= overrides the network's: a float32 network exported as float64 and back
    model = to_onnx(bn_mlp, dtype=np.float64)
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x32 = _flat(bn_mlp, mnist[2][:37])
    y = session(model).run(None, {"input": x32.astype(np.float64)})[0]
    np.testing.assert_allclose(y, bn_mlp.predict(x32), rtol=1e-4, atol=1e-4)


@needs_data
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_padded_pooling_batchnorm_and_both_dropouts(count_include_pad, mnist):
    """Every exported layer kind in one net: padded average and max pooling (after Tanh, so
    that a padded 0 would win a max), 4-D and 2-D BatchNorm, inverted and book dropout."""
    net = Sequential([Conv2D(8, 3, pad=1), BatchNormalization(), Tanh(),
                      AvgPooling(3, 3, stride=2, pad=1, count_include_pad=count_include_pad),
                      Dropout(0.3, inverted=True), Conv2D(8, 3, stride=2, pad=1), Tanh(),
                      Pooling(3, 3, stride=2, pad=1), Flatten(), Dense(20),
                      BatchNormalization(), Sigmoid(), Dropout(0.2), Dense(10), Relu(),
                      Dense(10)], input_shape=(1, 28, 28), seed=1)
    x = mnist[2]
    for i in range(3):  # training passes: running statistics away from their start
        net.predict(x[100 * i:100 * (i + 1)], train_flg=True)
    model = to_onnx(net)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("AveragePool") == 1 and ops.count("MaxPool") == 1
    assert "Identity" in ops and "Mul" in ops and ops.count("BatchNormalization") == 2
    sess = session(model)
    for batch in (x[:1], x[500:537]):
        assert_close(sess.run(None, {"input": batch})[0], net.predict(batch))


# ---------------------------------------------------------------------------- model details
def test_model_layout_names_and_dynamic_batch():
    net = SimpleConvNet(seed=0)
    model = to_onnx(net)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17 and model.producer_name == "cnn_core"
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 1, 28, 28]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 10]
    assert [i.name for i in model.graph.initializer] == list(net.params)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "MaxPool", "Flatten",
                                                     "Gemm", "Relu", "Gemm"]
    fixed = to_onnx(net, batch_dim=5, opset=13)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 5
    assert fixed.opset_import[0].version == 13


def test_batchnorm_float32_eps_folded_into_variance():
    """ONNX's epsilon is a float32 attribute: its rounding error goes into the variance."""
    net = Sequential([Dense(3), BatchNormalization(eps=1e-7)], input_shape=(4,),
                     dtype=np.float64, seed=0)
    bn = net.layers[1]
    bn.running_mean[:] = [0.5, -1.0, 2.0]
    bn.running_var[:] = [1e-9, 0.0, 3.0]
    model = to_onnx(net)
    node = model.graph.node[-1]
    eps = onnx.helper.get_attribute_value(node.attribute[0])
    var = onnx.numpy_helper.to_array(
        next(i for i in model.graph.initializer if i.name == "running_var1"))
    np.testing.assert_allclose(var + eps, bn.running_var + 1e-7, rtol=1e-15)
    x = np.random.default_rng(0).standard_normal((6, 4))
    assert_close(session(model).run(None, {"input": x})[0], net.predict(x))


class Square(Layer):
    def forward(self, x, train_flg=True):
        return x * x


class MyRelu(Relu):
    pass


@pytest.mark.parametrize("layer,index", [(Square(), 1), (MyRelu(), 1)])
def test_unsupported_layer_is_named(layer, index, tmp_path):
    net = Sequential([Dense(5), layer, Dense(2)], input_shape=(4,), seed=0)
    path = tmp_path / "m.onnx"
    with pytest.raises(TypeError, match=rf"layer {index} \({type(layer).__name__}\(\)\).*"
                                        rf"{type(layer).__name__}"):
        export(net, path)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_bad_arguments():
    net = Sequential([Dense(3)], input_shape=(4,), seed=0)
    with pytest.raises(ValueError, match="opset"):
        to_onnx(net, opset=12)
    with pytest.raises(ValueError, match="batch_dim"):
        to_onnx(net, batch_dim="")
    with pytest.raises(TypeError, match="dtype"):
        to_onnx(net, dtype=np.int32)
    conv = Sequential([Conv2D(2, 3)], input_shape=(1, 5, 5), seed=0)
    with pytest.raises(ValueError, match="softmax"):
        to_onnx(conv, softmax=True)


def test_export_is_atomic_and_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "m.onnx"
    net = Sequential([Dense(3), Relu()], input_shape=(4,), seed=0)
    model = export(net, path)
    assert onnx.load(path) == model and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    before = path.read_bytes()
    bad = Sequential([Dense(3), Square()], input_shape=(4,), seed=0)
    with pytest.raises(TypeError):
        export(bad, path)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_cli_export_writes_a_model_that_loads(tmp_path, capsys):
    net = Sequential([Conv2D(4, 3, pad=1), BatchNormalization(), Relu(), Pooling(2, 2, stride=2),
                      Dense(10)], input_shape=(1, 8, 8), seed=0)
    x = np.random.default_rng(0).random((7, 1, 8, 8), np.float32)
    net.predict(x, train_flg=True)
    net.save_params(tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    assert cli_export(tmp_path / "model.npz", out, softmax=True) == 0
    assert "model.onnx" in capsys.readouterr().out
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    expected = softmax(cnn_core.load_model(tmp_path / "model.npz").predict(x))
    assert_close(session(model).run(None, {"input": x})[0], expected)


def test_missing_onnx_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)   # `import onnx` now raises ImportError
    net = Sequential([Dense(3)], input_shape=(4,), seed=0)
    with pytest.raises(ImportError, match=r'pip install "cnn_core\[onnx\]"'):
        to_onnx(net)
