"""Sequential and the book's networks: the book's published parameters reproduce the book's
accuracies, gradient checks pass for every network, parameter files are safe and exact."""
import os
import pickle

import numpy as np
import pytest

pytestmark = pytest.mark.needs_data

import cnn_core
from cnn_core import (DeepConvNet, MultiLayerNet, MultiLayerNetExtend, Sequential, SimpleConvNet,
                      TwoLayerNet, gradient_check)
from cnn_core.datasets import load_mnist
from cnn_core.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, Pooling, Relu
from _paths import DLFS_DIR, MNIST_DIR


@pytest.fixture(scope="module")
def mnist_test():
    _, (x_test, t_test) = load_mnist(flatten=False, dtype=np.float64, data_dir=MNIST_DIR,
                                     download=False, progress=False)
    return x_test, t_test


BOOK_PARAMS = [
    ("sample_weight.pkl", lambda dt: MultiLayerNet(784, [50, 100], 10, activation="sigmoid",
                                                   dtype=dt), 0.9352),
    ("simple_convnet_params.pkl", lambda dt: SimpleConvNet(dtype=dt), 0.9600),
    ("deep_convnet_params.pkl", lambda dt: DeepConvNet(dtype=dt), 0.9797),
]


@pytest.mark.parametrize("fname,make,expected", BOOK_PARAMS, ids=[b[0] for b in BOOK_PARAMS])
def test_book_parameter_files_reproduce_book_accuracy(fname, make, expected, mnist_test):
    x_test, t_test = mnist_test
    preds = {}
    for dtype in (np.float64, np.float32):
        net = make(dtype)
        net.load_params(DLFS_DIR / fname)
        acc = net.accuracy(x_test, t_test, batch_size=1000)
        assert acc == pytest.approx(expected, abs=1e-9), (dtype, acc)
        preds[dtype] = net.predict(x_test).argmax(axis=1)
    np.testing.assert_array_equal(preds[np.float32], preds[np.float64])


def test_accuracy_counts_every_sample():
    net = TwoLayerNet(4, 5, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((7, 4))
    pred = net.predict(x).argmax(axis=1)
    t = pred.copy()
    t[:2] = (t[:2] + 1) % 3  # two wrong, one of them in the last partial batch? no: first two
    t[-1] = (t[-1] + 1) % 3  # and one in the remainder of batch_size=3
    assert net.accuracy(x, t, batch_size=3) == pytest.approx(4 / 7)
    assert net.accuracy(x, np.eye(3)[t], batch_size=3) == pytest.approx(4 / 7)


def _tiny_batch(shape, n_classes, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape), rng.integers(0, n_classes, n)


NETWORKS = {
    "TwoLayerNet": lambda: TwoLayerNet(6, 5, 3, weight_init_std=0.5, dtype=np.float64, seed=1),
    "MultiLayerNet sigmoid + decay": lambda: MultiLayerNet(
        6, [5, 4], 3, activation="sigmoid", weight_init_std="xavier", weight_decay_lambda=0.1,
        dtype=np.float64, seed=1),
    "MultiLayerNetExtend BN + dropout": lambda: MultiLayerNetExtend(
        6, [5, 4], 3, use_batchnorm=True, use_dropout=True, dropout_ration=0.3,
        weight_decay_lambda=0.05, dtype=np.float64, seed=1),
    "SimpleConvNet": lambda: SimpleConvNet((2, 7, 7), {"filter_num": 3, "filter_size": 3,
                                                       "pad": 1, "stride": 2},
                                           hidden_size=6, output_size=3, weight_init_std=0.5,
                                           dtype=np.float64, seed=1),
    "DeepConvNet": lambda: DeepConvNet((1, 12, 12), hidden_size=8, output_size=3,
                                       dtype=np.float64, seed=1),
    "Sequential conv-BN-avgpool": lambda: Sequential(
        [Conv2D(3, 3, pad=1), BatchNormalization(), Relu(), Pooling(2, 2, 2), Flatten(),
         Dense(4), Dropout(0.2, inverted=True), Dense(3)], (2, 6, 6), dtype=np.float64, seed=1),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_gradient_check_every_network(name):
    net = NETWORKS[name]()
    x, t = _tiny_batch(net.input_shape, 3, n=5)
    errors = gradient_check(net, x, t, max_entries=25)
    assert set(errors) == set(net.params)
    bad = {k: v for k, v in errors.items() if not v < 1e-6}
    assert not bad, bad
    # entries left out at a ReLU/max-pool kink stay rare
    assert sum(errors.skipped.values()) <= 0.1 * sum(min(p.size, 25) for p in net.params.values())


def test_gradient_check_refuses_degenerate_cases():
    net = MultiLayerNetExtend(6, [5], 3, use_batchnorm=True, dtype=np.float64)
    with pytest.raises(ValueError, match="at least 2"):
        gradient_check(net, np.ones((1, 6)), np.array([0]))
    with pytest.raises(ValueError, match="float64"):
        gradient_check(TwoLayerNet(6, 5, 3), np.ones((2, 6)), np.array([0, 1]))


def test_parameter_names_follow_the_book():
    net = MultiLayerNetExtend(6, [5, 4], 3, use_batchnorm=True)
    assert sorted(net.params) == sorted(["W1", "b1", "W2", "b2", "W3", "b3",
                                         "gamma1", "beta1", "gamma2", "beta2"])
    assert net.params["gamma2"].shape == (4,)
    deep = DeepConvNet()
    assert [k for k in deep.params if k.startswith("W")] == [f"W{i}" for i in range(1, 9)]
    assert deep.params["W7"].shape == (1024, 50)
    # He init from the computed fan-in
    assert np.std(deep.params["W7"]) == pytest.approx(np.sqrt(2 / 1024), rel=0.05)


def test_params_view_is_live_and_optimizer_updates_layers():
    net = TwoLayerNet(4, 3, 2, seed=0)
    w = net.params["W1"]
    assert w is net.layers[0].W
    net.params["W1"] = np.zeros((4, 3))
    assert np.all(net.layers[0].W == 0) and net.layers[0].W.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        net.params["W1"] = np.zeros((3, 3))


def test_summary_lists_shapes_params_and_fan_in():
    text = SimpleConvNet().summary()
    assert "(30, 24, 24)" in text and "4320" in text and "433,890" in text


def test_seed_makes_initialisation_reproducible():
    a, b = DeepConvNet(seed=3), DeepConvNet(seed=3)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(DeepConvNet(seed=4).params["W1"], a.params["W1"])


def test_npz_round_trip_bit_for_bit(tmp_path):
    net = MultiLayerNetExtend(784, [20, 20], 10, use_batchnorm=True, seed=0)
    x = np.random.default_rng(0).random((16, 784), dtype=np.float32)
    net.gradient(x, np.arange(16) % 10)  # updates BN running statistics
    path = tmp_path / "model.npz"
    net.save_params(path)
    other = MultiLayerNetExtend(784, [20, 20], 10, use_batchnorm=True, seed=1)
    other.load_params(path)
    np.testing.assert_array_equal(net.predict(x), other.predict(x))
    rebuilt = cnn_core.load_model(path)
    np.testing.assert_array_equal(net.predict(x), rebuilt.predict(x))
    assert [p.dtype for p in rebuilt.params.values()] == [np.float32] * len(net.params)


def test_saved_model_keeps_each_convolution_algorithm(tmp_path):
    """load_model rebuilds Conv2D with the algorithm it was saved with (an older file
    without the key gets "auto")."""
    net = Sequential([Conv2D(4, 3, pad=1, algorithm="im2col"), Relu(),
                      Conv2D(4, 3, pad=1, algorithm="winograd"), Relu(), Dense(3)],
                     input_shape=(4, 6, 6), seed=0)
    path = tmp_path / "conv.npz"
    net.save_params(path)
    rebuilt = cnn_core.load_model(path)
    assert [layer.algorithm for layer in rebuilt.layers if hasattr(layer, "algorithm")] == \
        ["im2col", "winograd"]
    x = np.random.default_rng(0).random((2, 4, 6, 6), dtype=np.float32)
    np.testing.assert_array_equal(net.predict(x), rebuilt.predict(x))
    config = net.get_config()
    for layer in config["layers"]:
        layer.pop("algorithm", None)
    assert all(layer.algorithm == "auto" for layer in Sequential.from_config(config).layers
               if hasattr(layer, "algorithm"))


def test_load_params_errors_leave_network_unchanged(tmp_path):
    net = SimpleConvNet(seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    bad = tmp_path / "bad.npz"
    TwoLayerNet(784, 10, 10).save_params(bad)
    with pytest.raises(ValueError, match="does not fit"):
        net.load_params(bad)
    wrong_shape = {k: v for k, v in before.items()}
    wrong_shape["W2"] = np.zeros((10, 10))
    p = tmp_path / "wrong.pkl"
    with open(p, "wb") as f:
        pickle.dump(wrong_shape, f)
    with pytest.raises(ValueError, match="W2"):
        net.load_params(p)
    for k in before:
        np.testing.assert_array_equal(net.params[k], before[k])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"W1": _Evil(marker)}, f)
    net = TwoLayerNet(4, 3, 2)
    with pytest.raises(ValueError, match="system"):
        net.load_params(path)
    assert not marker.exists()


def _book_order_pass(net, x, t):
    """Forward and backward through net.layers in the written order (no reordering)."""
    h = net._as_input(x)
    for layer in net.layers:
        h = layer.forward(h, True)
    loss = net.last_layer.forward(h, t)
    d = net.last_layer.backward(1)
    for layer in reversed(net.layers):
        d = layer.backward(d)
    return h.copy(), loss, {name: layer.grads[key].copy()
                            for name, (layer, key) in net._index.items()}


def _assert_same_as_book_order(net, x, t):
    scores = net.predict(x, train_flg=True).copy()
    grads = {k: v.copy() for k, v in net.gradient(x, t).items()}
    ref_scores, _, ref_grads = _book_order_pass(net, x, t)
    np.testing.assert_array_equal(scores, ref_scores)
    for k in ref_grads:
        np.testing.assert_array_equal(grads[k], ref_grads[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_before_max_pool_runs_after_it_with_identical_results(dtype):
    from cnn_core.layers import AvgPooling
    layers = [Conv2D(4, 3, pad=1), Relu(), Pooling(3, 3, stride=2, pad=1), Relu(), Dense(5)]
    net = Sequential(layers, (2, 7, 9), dtype=dtype, seed=3)
    order = net.execution_order()
    assert order[:3] == [layers[0], layers[2], layers[1]] and order[3:] == layers[3:]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 7, 9)).astype(dtype)
    x[0] = 0.0                       # all-zero windows: ties at 0 after the ReLU
    x[1, :, 2:4, 2:4] = np.nan       # NaN through both layers
    _assert_same_as_book_order(net, x, rng.integers(0, 5, 6))
    # average pooling does not commute with ReLU: it stays after the (fused) ReLU
    net2 = Sequential([Conv2D(2, 3), Relu(), AvgPooling(2, 2, stride=2)], (1, 6, 6))
    order = net2.execution_order()
    assert order[0].layers == tuple(net2.layers[:2]) and order[1:] == net2.layers[2:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", ["im2col", "winograd"])
def test_conv_relu_pool_run_fused_with_identical_results(algorithm, dtype):
    """Conv [+ Relu] + 2x2 max pool run as one FusedConv node: scores, loss and every gradient
    bit for bit those of the layers run one by one, for a first layer (no dx) and a later
    one (dx), with and without the ReLU, on odd planes, ties and NaN."""
    from cnn_core.network import FusedConv
    layers = [Conv2D(8, 3, pad=1, algorithm=algorithm), Relu(), Pooling(2, 2, stride=2),
              Conv2D(8, 3, pad=1, algorithm=algorithm), Pooling(2, 2, stride=2),
              Relu(), Dense(5)]
    net = Sequential(layers, (3, 9, 11), dtype=dtype, seed=4)
    order = net.execution_order()
    assert [type(node) for node in order] == [FusedConv, FusedConv, Relu, Dense]
    assert order[0].layers == tuple(layers[:3]) and order[1].layers == tuple(layers[3:5])
    assert repr(order[0]) == " + ".join(map(repr, layers[:3]))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 3, 9, 11)).astype(dtype)
    x[0] = 0.0
    x[1, :, 2:4, 2:4] = np.nan
    t = rng.integers(0, 5, 7)
    _assert_same_as_book_order(net, x, t)
    # the layers keep the state of their own passes: the book's arg_max, the ReLU's mask
    net.predict(x, train_flg=True)
    assert layers[2].arg_max.shape == (7, 8, 4, 5) and layers[1].out.shape == (7, 8, 4, 5)
    assert net.accuracy(x[2:], t[2:]) == net.accuracy(x[2:], t[2:], batch_size=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", ["im2col", "winograd"])
def test_conv_relu_run_fused_with_identical_results(algorithm, dtype):
    """Conv + Relu (no pooling after) run as one FusedConv node, as first layer and later."""
    from cnn_core.network import FusedConv
    layers = [Conv2D(8, 3, pad=1, algorithm=algorithm), Relu(),
              Conv2D(8, 3, pad=2, algorithm=algorithm), Relu(), Dense(5)]
    net = Sequential(layers, (3, 6, 7), dtype=dtype, seed=5)
    order = net.execution_order()
    assert [type(node) for node in order] == [FusedConv, FusedConv, Dense]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 3, 6, 7)).astype(dtype)
    x[0] = 0.0
    x[1, :, 2:4, 2:4] = np.nan
    _assert_same_as_book_order(net, x, rng.integers(0, 5, 9))
    net.predict(x, train_flg=True)
    assert layers[3].out.shape == (9, 8, 8, 9) and np.all(~(layers[3].out < 0))
