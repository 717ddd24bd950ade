"""The book's algorithms in plain NumPy: the slow reference of the benchmarks.

Written in the style of *Deep Learning from Scratch* (``common/util.py``,
``common/layers.py``, ``ch07/simple_convnet.py``, ``ch08/deep_convnet.py``,
``common/optimizer.py``): im2col by slicing over the filter offsets, col2im by
scatter-add over the same offsets, pooling through im2col + max/argmax, and
``forward``/``backward`` layers with ``params``/``grads`` dicts named
``W1, b1, ...``.  Two deliberate differences from the book's files, neither of
which changes the arithmetic:

* the kernel functions keep their input's dtype (the book allocates float64
  with ``np.zeros``), so that ``bench/kernels.py`` can time them in float32 too;
  the networks below run in float64, the book's precision;
* every network takes a ``seed`` for its initial weights and dropout masks.

Nothing here imports cnn_core: it is the independent reference.
"""
from collections import OrderedDict

import numpy as np

__all__ = [
    "im2col", "col2im", "maxpool_forward", "maxpool_backward", "avgpool_forward",
    "avgpool_backward", "batchnorm_stats", "batchnorm_forward", "batchnorm_backward",
    "Relu", "Affine", "Dropout", "SoftmaxWithLoss", "Convolution", "Pooling",
    "SimpleConvNet", "DeepConvNet", "MultiLayerNet", "Adam", "build_model", "MODELS",
]


# ----------------------------------------------------------------------------- kernels
def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """(N, C, H, W) -> (N*out_h*out_w, C*filter_h*filter_w), one slice per filter offset."""
    N, C, H, W = input_data.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1

    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w), dtype=input_data.dtype)

    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]

    col = col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)
    return col


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The adjoint of :func:`im2col`: scatter-add each filter offset's slice back."""
    N, C, H, W = input_shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)

    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]

    return img[:, :, pad:H + pad, pad:W + pad]


def maxpool_forward(x, pool_h, pool_w, stride=1, pad=0):
    """The book's ``Pooling.forward``: im2col, then max/argmax per window -> (out, arg_max)."""
    N, C, H, W = x.shape
    out_h = (H + 2 * pad - pool_h) // stride + 1
    out_w = (W + 2 * pad - pool_w) // stride + 1

    col = im2col(x, pool_h, pool_w, stride, pad)
    col = col.reshape(-1, pool_h * pool_w)

    arg_max = np.argmax(col, axis=1)
    out = np.max(col, axis=1)
    out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)
    return out, arg_max


def maxpool_backward(dout, arg_max, x_shape, pool_h, pool_w, stride=1, pad=0):
    """The book's ``Pooling.backward``: one-hot rows at arg_max, then col2im."""
    dout = dout.transpose(0, 2, 3, 1)

    pool_size = pool_h * pool_w
    dmax = np.zeros((dout.size, pool_size), dtype=dout.dtype)
    dmax[np.arange(arg_max.size), arg_max.flatten()] = dout.flatten()
    dmax = dmax.reshape(dout.shape + (pool_size,))

    dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
    return col2im(dcol, x_shape, pool_h, pool_w, stride, pad)


def avgpool_forward(x, pool_h, pool_w, stride=1, pad=0):
    """Average pooling the book's way: im2col, then the mean of each window."""
    N, C, H, W = x.shape
    out_h = (H + 2 * pad - pool_h) // stride + 1
    out_w = (W + 2 * pad - pool_w) // stride + 1

    col = im2col(x, pool_h, pool_w, stride, pad)
    col = col.reshape(-1, pool_h * pool_w)
    out = np.mean(col, axis=1)
    return out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)


def avgpool_backward(dout, x_shape, pool_h, pool_w, stride=1, pad=0):
    """Each window's gradient spread evenly over its cells, then col2im."""
    dout = dout.transpose(0, 2, 3, 1)
    pool_size = pool_h * pool_w
    dcol = np.repeat(dout.reshape(-1, 1) / pool_size, pool_size, axis=1)
    dcol = dcol.reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
    return col2im(dcol, x_shape, pool_h, pool_w, stride, pad)


def _bn_axes(x):
    """Per feature for (N, D), per channel for (N, C, H, W)."""
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _bn_shape(x, v):
    return v if x.ndim == 2 else v.reshape(1, -1, 1, 1)


def batchnorm_stats(x):
    """Batch mean and biased variance with NumPy's own reductions."""
    axes = _bn_axes(x)
    return x.mean(axis=axes), x.var(axis=axes)


def batchnorm_forward(x, gamma, beta, mean, var, eps=1e-7):
    """The book's ``BatchNormalization.__forward`` given the statistics -> (out, std)."""
    xc = x - _bn_shape(x, mean)
    std = np.sqrt(var + eps)
    xn = xc / _bn_shape(x, std)
    out = _bn_shape(x, gamma) * xn + _bn_shape(x, beta)
    return out, std


def batchnorm_backward(dout, x, gamma, mean, std):
    """The book's ``BatchNormalization.__backward`` (its computational graph, step by step),
    on per-channel statistics -> (dx, dgamma, dbeta)."""
    axes = _bn_axes(x)
    m = x.size // x.shape[1]
    xc = x - _bn_shape(x, mean)
    xn = xc / _bn_shape(x, std)
    dbeta = dout.sum(axis=axes)
    dgamma = np.sum(xn * dout, axis=axes)
    dxn = _bn_shape(x, gamma) * dout
    dxc = dxn / _bn_shape(x, std)
    dstd = -np.sum((dxn * xc) / _bn_shape(x, std * std), axis=axes)
    dvar = 0.5 * dstd / std
    dxc += (2.0 / m) * xc * _bn_shape(x, dvar)
    dmu = np.sum(dxc, axis=axes)
    dx = dxc - _bn_shape(x, dmu) / m
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------- layers
class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x, train_flg=True):
        self.mask = (x <= 0)
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class Affine:
    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x, train_flg=True):
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class Dropout:
    """The book's dropout: kept units pass unscaled, inference scales by (1 - ratio)."""

    def __init__(self, dropout_ratio=0.5, rng=None):
        self.dropout_ratio = dropout_ratio
        self.mask = None
        self.rng = np.random.default_rng() if rng is None else rng

    def forward(self, x, train_flg=True):
        if train_flg:
            self.mask = self.rng.random(x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


class SoftmaxWithLoss:
    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class Convolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None

    def forward(self, x, train_flg=True):
        FN, C, FH, FW = self.W.shape
        N, C, H, W = x.shape
        out_h = 1 + int((H + 2 * self.pad - FH) / self.stride)
        out_w = 1 + int((W + 2 * self.pad - FW) / self.stride)

        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = self.W.reshape(FN, -1).T

        out = np.dot(col, col_W) + self.b
        out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)

        self.x = x
        self.col = col
        self.col_W = col_W
        return out

    def backward(self, dout):
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)

        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout)
        self.dW = self.dW.transpose(1, 0).reshape(FN, C, FH, FW)

        dcol = np.dot(dout, self.col_W.T)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


class Pooling:
    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self.arg_max = None

    def forward(self, x, train_flg=True):
        self.x = x
        out, self.arg_max = maxpool_forward(x, self.pool_h, self.pool_w, self.stride, self.pad)
        return out

    def backward(self, dout):
        return maxpool_backward(dout, self.arg_max, self.x.shape, self.pool_h, self.pool_w,
                                self.stride, self.pad)


# ----------------------------------------------------------------------------- networks
class _Net:
    """What the book's networks share: predict, loss, accuracy and gradient by backprop."""

    def predict(self, x, train_flg=False):
        for layer in self.layers.values():
            x = layer.forward(x, train_flg)
        return x

    def loss(self, x, t, train_flg=True):
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t)

    def accuracy(self, x, t, batch_size=100):
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        acc = 0.0
        for i in range(int(np.ceil(x.shape[0] / batch_size))):
            tx = x[i * batch_size:(i + 1) * batch_size]
            tt = t[i * batch_size:(i + 1) * batch_size]
            y = self.predict(tx, train_flg=False)
            acc += np.sum(np.argmax(y, axis=1) == tt)
        return acc / x.shape[0]

    def gradient(self, x, t):
        self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for i, name in enumerate(self._weighted, start=1):
            grads[f"W{i}"] = self.layers[name].dW
            grads[f"b{i}"] = self.layers[name].db
        return grads


class SimpleConvNet(_Net):
    """conv - relu - pool - affine - relu - affine - softmax (the book's chapter 7)."""

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},
                 hidden_size=100, output_size=10, weight_init_std=0.01, seed=None):
        filter_num = conv_param["filter_num"]
        filter_size = conv_param["filter_size"]
        filter_pad = conv_param["pad"]
        filter_stride = conv_param["stride"]
        input_size = input_dim[1]
        conv_output_size = (input_size - filter_size + 2 * filter_pad) / filter_stride + 1
        pool_output_size = int(filter_num * (conv_output_size / 2) * (conv_output_size / 2))
        rng = np.random.default_rng(seed)

        self.params = {}
        self.params["W1"] = weight_init_std * rng.standard_normal(
            (filter_num, input_dim[0], filter_size, filter_size))
        self.params["b1"] = np.zeros(filter_num)
        self.params["W2"] = weight_init_std * rng.standard_normal((pool_output_size, hidden_size))
        self.params["b2"] = np.zeros(hidden_size)
        self.params["W3"] = weight_init_std * rng.standard_normal((hidden_size, output_size))
        self.params["b3"] = np.zeros(output_size)

        self.layers = OrderedDict()
        self.layers["Conv1"] = Convolution(self.params["W1"], self.params["b1"],
                                           conv_param["stride"], conv_param["pad"])
        self.layers["Relu1"] = Relu()
        self.layers["Pool1"] = Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers["Affine1"] = Affine(self.params["W2"], self.params["b2"])
        self.layers["Relu2"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W3"], self.params["b3"])
        self.last_layer = SoftmaxWithLoss()
        self._weighted = ["Conv1", "Affine1", "Affine2"]


class DeepConvNet(_Net):
    """conv-relu-conv-relu-pool x3 - affine-relu-dropout - affine-dropout - softmax
    (the book's chapter 8), He initialisation."""

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1={"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
                 conv_param_2={"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
                 conv_param_3={"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
                 conv_param_4={"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
                 conv_param_5={"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
                 conv_param_6={"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
                 hidden_size=50, output_size=10, seed=None):
        rng = np.random.default_rng(seed)
        conv_params = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5,
                       conv_param_6]
        # fan-in of every weighted layer, as in the book (for 28x28 input)
        pre_node_nums = np.array([1 * 3 * 3, 16 * 3 * 3, 16 * 3 * 3, 32 * 3 * 3, 32 * 3 * 3,
                                  64 * 3 * 3, 64 * 4 * 4, hidden_size])
        weight_init_scales = np.sqrt(2.0 / pre_node_nums)

        self.params = {}
        pre_channel_num = input_dim[0]
        for idx, conv_param in enumerate(conv_params):
            self.params[f"W{idx + 1}"] = weight_init_scales[idx] * rng.standard_normal(
                (conv_param["filter_num"], pre_channel_num, conv_param["filter_size"],
                 conv_param["filter_size"]))
            self.params[f"b{idx + 1}"] = np.zeros(conv_param["filter_num"])
            pre_channel_num = conv_param["filter_num"]
        self.params["W7"] = weight_init_scales[6] * rng.standard_normal((64 * 4 * 4, hidden_size))
        self.params["b7"] = np.zeros(hidden_size)
        self.params["W8"] = weight_init_scales[7] * rng.standard_normal((hidden_size, output_size))
        self.params["b8"] = np.zeros(output_size)

        self.layers = OrderedDict()
        for idx, conv_param in enumerate(conv_params):
            self.layers[f"Conv{idx + 1}"] = Convolution(
                self.params[f"W{idx + 1}"], self.params[f"b{idx + 1}"], conv_param["stride"],
                conv_param["pad"])
            self.layers[f"Relu{idx + 1}"] = Relu()
            if idx % 2 == 1:
                self.layers[f"Pool{idx // 2 + 1}"] = Pooling(pool_h=2, pool_w=2, stride=2)
        self.layers["Affine1"] = Affine(self.params["W7"], self.params["b7"])
        self.layers["Relu7"] = Relu()
        self.layers["Dropout1"] = Dropout(0.5, rng)
        self.layers["Affine2"] = Affine(self.params["W8"], self.params["b8"])
        self.layers["Dropout2"] = Dropout(0.5, rng)
        self.last_layer = SoftmaxWithLoss()
        self._weighted = [f"Conv{i}" for i in range(1, 7)] + ["Affine1", "Affine2"]


class MultiLayerNet(_Net):
    """Fully connected ReLU net (the book's ``MultiLayerNet``, He initialisation);
    784-100-100-10 by default."""

    def __init__(self, input_size=784, hidden_size_list=(100, 100), output_size=10, seed=None):
        rng = np.random.default_rng(seed)
        sizes = [input_size] + list(hidden_size_list) + [output_size]
        self.params = {}
        self.layers = OrderedDict()
        for idx in range(1, len(sizes)):
            scale = np.sqrt(2.0 / sizes[idx - 1])
            self.params[f"W{idx}"] = scale * rng.standard_normal((sizes[idx - 1], sizes[idx]))
            self.params[f"b{idx}"] = np.zeros(sizes[idx])
            self.layers[f"Affine{idx}"] = Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
            if idx < len(sizes) - 1:
                self.layers[f"Activation_function{idx}"] = Relu()
        self.last_layer = SoftmaxWithLoss()
        self._weighted = [f"Affine{i}" for i in range(1, len(sizes))]


# ----------------------------------------------------------------------------- optimizer
class Adam:
    """Adam (Kingma & Ba, 2014, http://arxiv.org/abs/1412.6980v8), the book's form."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = {}, {}
            for key, val in params.items():
                self.m[key] = np.zeros_like(val)
                self.v[key] = np.zeros_like(val)

        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)

        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


# ----------------------------------------------------------------------------- bench hooks
#: model names shared with cnn_core.benchmark and bench/torch_models.py
MODELS = ("simple_convnet", "deep_convnet", "mlp")


def build_model(name, seed=0):
    """One of :data:`MODELS`, float64 as in the book."""
    if name == "simple_convnet":
        return SimpleConvNet(seed=seed)
    if name == "deep_convnet":
        return DeepConvNet(seed=seed)
    if name == "mlp":
        return MultiLayerNet(784, (100, 100), 10, seed=seed)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")


def _as_input(net, x):
    """MNIST images (N, 1, 28, 28) as the network's float64 input (flat for the MLP)."""
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(x.shape[0], -1) if isinstance(net, MultiLayerNet) else x


def train_step(net, optimizer, x, t):
    """One step as the book's Trainer: gradient by backprop, then ``optimizer.update``."""
    grads = net.gradient(_as_input(net, x), t)
    optimizer.update(net.params, grads)


def inference(net, x, batch_size=100):
    """Class scores of every image of ``x``, ``batch_size`` at a time (the book's accuracy
    batch: larger chunks make the float64 im2col of DeepConvNet hundreds of MB)."""
    x = _as_input(net, x)
    return np.concatenate([net.predict(x[i:i + batch_size], train_flg=False)
                           for i in range(0, x.shape[0], batch_size)])


def make_train_workload(model_name, steps=20, batch_size=100, threads=1, seed=0):
    """Setup for a peak-memory measurement (see ``cnn_core.benchmark.peak_rss_delta``):
    builds the network and a batch, and returns the callable that trains ``steps`` steps."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)
    rng = np.random.default_rng(seed)
    net = build_model(model_name, seed=seed)
    optimizer = Adam(lr=0.001)
    x = rng.random((batch_size, 1, 28, 28))
    t = rng.integers(0, 10, batch_size)

    def run():
        for _ in range(steps):
            train_step(net, optimizer, x, t)
    return run
