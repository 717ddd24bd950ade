"""Every layer against float64 central differences, and the layer protocol."""
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from cnn_core import functional as F
from cnn_core.layers import (Affine, AvgPooling, BatchNormalization, Conv2D, Convolution, Dense,
                             Dropout, Flatten, Pooling, Relu, Sigmoid, SoftmaxWithLoss, Tanh)
from gradcheck import assert_grad_close, numerical_grad

RNG = np.random.default_rng(0)


def check_layer(layer, x, train_flg=True, fixed_rng=None):
    """dx and every grads[key] against central differences of sum(forward(x) * R)."""
    x = np.ascontiguousarray(x, np.float64)
    out = layer.forward(x.copy(), train_flg)
    r = RNG.standard_normal(out.shape)

    def f(_):
        if fixed_rng is not None:
            layer.rng.bit_generator.state = fixed_rng
        return float(np.sum(layer.forward(x, train_flg) * r))

    if fixed_rng is not None:
        layer.rng.bit_generator.state = fixed_rng
    layer.forward(x, train_flg)
    dx = layer.backward(r)
    grads = {k: g.copy() for k, g in layer.grads.items()}
    assert_grad_close(dx, numerical_grad(f, x), f"{layer!r} dx")
    for key, p in layer.params.items():
        assert_grad_close(grads[key], numerical_grad(f, p), f"{layer!r} d{key}")


def away_from_zero(shape):
    x = RNG.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)


@pytest.mark.parametrize("layer", [Relu(), Sigmoid(), Tanh(), Flatten()], ids=repr)
def test_parameterless_layers_gradcheck(layer):
    check_layer(layer, away_from_zero((3, 2, 4, 5)))


def test_affine_gradcheck_and_nd_input():
    layer = Affine(RNG.standard_normal((12, 5)), RNG.standard_normal(5))
    x = RNG.standard_normal((4, 3, 2, 2))
    check_layer(layer, x)
    assert layer.backward(np.ones((4, 5))).shape == x.shape  # shape restored
    assert layer.dW.shape == (12, 5) and layer.db.shape == (5,)


@pytest.mark.parametrize("need_dx", [True, False])
def test_affine_blocked_products_gradcheck(monkeypatch, need_dx):
    """Large products run as fixed blocks on the kernel threads (forced here on a small one)."""
    from cnn_core.layers import dense
    monkeypatch.setattr(dense, "SPLIT_MIN_MACS", 0)
    layer = Affine(RNG.standard_normal((13, 6)), RNG.standard_normal(6))
    if need_dx:
        check_layer(layer, RNG.standard_normal((7, 13)))
    else:
        layer.need_dx = False
        x = RNG.standard_normal((7, 13))
        layer.forward(x)
        d = RNG.standard_normal((7, 6))
        assert layer.backward(d) is None
        np.testing.assert_allclose(layer.dW, x.T @ d, rtol=1e-12)


def test_affine_blocked_products_match_numpy_and_thread_count():
    import cnn_core
    from cnn_core.layers import dense
    rng = np.random.default_rng(5)
    x = rng.standard_normal((101, 4321)).astype(np.float32)
    d = rng.standard_normal((101, 99)).astype(np.float32)
    assert x.shape[0] * x.shape[1] * 99 >= dense.SPLIT_MIN_MACS
    results = []
    for threads in (1, 2):
        previous = cnn_core.set_num_threads(threads)
        try:
            layer = Affine(rng.standard_normal((4321, 99)).astype(np.float32) if not results
                           else results[0][3], np.arange(99, dtype=np.float32))
            out = layer.forward(x)
            dx = layer.backward(d)
            results.append((out, dx, layer.dW, layer.W))
        finally:
            cnn_core.set_num_threads(previous)
    W = results[0][3].astype(np.float64)
    np.testing.assert_allclose(results[0][0], x @ W + np.arange(99), rtol=2e-4, atol=2e-3)
    np.testing.assert_allclose(results[0][1], d @ W.T, rtol=2e-4, atol=2e-3)
    np.testing.assert_allclose(results[0][2], x.T.astype(np.float64) @ d, rtol=2e-4, atol=2e-3)
    for a, b in zip(results[0][:3], results[1][:3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (3, 2)])
def test_convolution_gradcheck(stride, pad):
    layer = Convolution(RNG.standard_normal((4, 3, 3, 2)), RNG.standard_normal(4), stride, pad)
    check_layer(layer, RNG.standard_normal((2, 3, 7, 6)))


def test_pooling_gradcheck():
    x = RNG.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) / 300.0  # no ties, small f
    check_layer(Pooling(3, 3, stride=2, pad=1), x)
    check_layer(Pooling(2, 2, stride=2), x)
    check_layer(AvgPooling(3, 2, stride=2, pad=1), x)
    check_layer(AvgPooling(3, 3, stride=1, pad=1, count_include_pad=False), x)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 2, 7, 5)], ids=str)
def test_pooling_2x2_layer_keeps_the_book_arg_max(shape):
    """The 2x2/stride-2 layer stores 2-bit winner places; ``arg_max`` still reads as the
    general path's flat indices, and the gradient is the general path's, bit for bit."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 3, size=shape).astype(np.float64)      # ties
    layer = Pooling(2, 2, stride=2)
    out = layer.forward(x)
    ref_out, ref_arg = F.maxpool2d_forward(x, 2, 2, 2, 0)
    assert_array_equal(out, ref_out)
    assert_array_equal(layer.arg_max, ref_arg)
    dout = rng.standard_normal(out.shape)
    assert_array_equal(layer.backward(dout), F.maxpool2d_backward(dout, ref_arg, shape))
    general = Pooling(3, 3, stride=2, pad=1)
    general.forward(x)
    assert general.arg_max.dtype == np.intp
    fresh = Pooling(2, 2, stride=2)
    assert fresh.arg_max is None                       # before any forward pass
    fresh.forward(x)
    flipped = ref_arg.copy()
    flipped[0, 0, 0, 0] = 1 if ref_arg[0, 0, 0, 0] != 1 else 0   # another cell of window 0
    fresh.arg_max = flipped                            # the book's attribute, assigned
    assert_array_equal(fresh.backward(dout), F.maxpool2d_backward(dout, flipped, shape))


@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 5, 3)])
def test_batchnorm_gradcheck_train(shape):
    n = shape[1]
    layer = BatchNormalization(RNG.uniform(0.5, 1.5, n), RNG.standard_normal(n))
    check_layer(layer, RNG.standard_normal(shape) * 2 + 1)


def test_batchnorm_gradcheck_inference_and_running_stats():
    layer = BatchNormalization(np.ones(3), np.zeros(3), momentum=0.9)
    x = RNG.standard_normal((5, 3)) * 3 + 2
    layer.forward(x, train_flg=True)
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.1 * x.var(axis=0), rtol=1e-12)
    y = layer.forward(x, train_flg=False)
    np.testing.assert_allclose(y, (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-6),
                               rtol=1e-12)


@pytest.mark.parametrize("inverted", [False, True])
def test_dropout_fixed_mask_gradcheck_and_conventions(inverted):
    layer = Dropout(0.4, inverted=inverted, rng=np.random.default_rng(3))
    check_layer(layer, RNG.standard_normal((50, 40)),
                fixed_rng=layer.rng.bit_generator.state)
    x = np.ones((200, 100))
    y_train = layer.forward(x, train_flg=True)
    kept = layer.mask.mean()
    assert 0.55 < kept < 0.65
    y_test = layer.forward(x, train_flg=False)
    if inverted:  # train scales by 1/(1-r), inference is the identity
        np.testing.assert_allclose(y_train[layer.mask], 1 / 0.6)
        np.testing.assert_array_equal(y_test, x)
    else:  # the book's: train passes kept units unscaled, inference multiplies by 1-r
        np.testing.assert_array_equal(y_train[layer.mask], 1.0)
        np.testing.assert_allclose(y_test, 0.6)


def test_softmax_with_loss_gradcheck_index_and_onehot():
    x = RNG.standard_normal((4, 5))
    t = np.array([0, 3, 4, 1])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    dx = layer.backward(1)
    num = numerical_grad(lambda _: SoftmaxWithLoss().forward(x, t), x)
    assert_grad_close(dx, num, "SoftmaxWithLoss dx")
    onehot = np.eye(5)[t]
    assert SoftmaxWithLoss().forward(x, onehot) == pytest.approx(loss, rel=1e-12)
    with pytest.raises(ValueError, match="labels t"):
        layer.forward(x, np.array([0, 1, 2, 5]))


def test_layers_do_not_modify_their_input():
    x = RNG.standard_normal((2, 3, 6, 6))
    x_before = x.copy()
    x.setflags(write=False)
    for layer in [Relu(), Sigmoid(), Tanh(), Flatten(), Pooling(2, 2, 2), AvgPooling(2, 2, 2),
                  Convolution(RNG.standard_normal((2, 3, 3, 3)), np.zeros(2)),
                  BatchNormalization(np.ones(3), np.zeros(3)), Dropout(0.5)]:
        out = layer.forward(x)
        layer.backward(np.ones_like(out))
    np.testing.assert_array_equal(x, x_before)


def test_size_built_layers_and_repr():
    conv = Conv2D(8, 3, stride=1, pad=1)
    assert conv.build((3, 10, 10), np.float32, np.random.default_rng(0)) == (8, 10, 10)
    assert conv.W.dtype == np.float32 and conv.W.shape == (8, 3, 3, 3)
    assert np.std(conv.W) == pytest.approx(np.sqrt(2 / 27), rel=0.2)  # He
    assert repr(conv) == "Conv2D(3->8, k=3, s=1, p=1)"
    dense = Dense(7, weight_init_std="xavier")
    assert dense.build((8, 10, 10), np.float64, np.random.default_rng(0)) == (7,)
    assert np.std(dense.W) == pytest.approx(np.sqrt(1 / 800), rel=0.1)
    assert repr(dense) == "Affine(800->7)"


@pytest.mark.parametrize("make,match", [
    (lambda: Conv2D(0, 3), "out_channels"),
    (lambda: Conv2D(4, 3, stride=0), "stride"),
    (lambda: Dense(10, weight_init_std="bogus"), "weight_init_std"),
    (lambda: Pooling(2, 2, pad=2), "pad"),
    (lambda: Dropout(1.0), "dropout_ratio"),
    (lambda: Affine(np.ones((3, 2)), np.ones(3)), "b must have shape"),
    (lambda: BatchNormalization(momentum=2), "momentum"),
])
def test_bad_layer_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_book_apple_examples():
    from cnn_core.layers import AddLayer, MulLayer
    apple, apple_num, orange, orange_num, tax = 100, 2, 150, 3, 1.1
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(apple, apple_num), tax)
    assert price == pytest.approx(220)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert (dapple, int(round(dapple_num)), dtax) == (pytest.approx(2.2), 110, 200)

    mul_apple, mul_orange, add, mul_tax = MulLayer(), MulLayer(), AddLayer(), MulLayer()
    all_price = add.forward(mul_apple.forward(apple, apple_num),
                            mul_orange.forward(orange, orange_num))
    price = mul_tax.forward(all_price, tax)
    dall_price, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add.backward(dall_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert price == pytest.approx(715)
    assert (dapple, dapple_num, dorange, dorange_num, dtax) == (
        pytest.approx(2.2), pytest.approx(110), pytest.approx(3.3), pytest.approx(165),
        pytest.approx(650))
