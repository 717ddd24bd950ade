"""Chapter 4: training TwoLayerNet on MNIST with the numerical gradient (train_neuralnet).

Mini-batch SGD with the gradient of every weight by central differences: two loss
evaluations per parameter, so one step of the book's 784-50-10 net costs ~80,000 forward
passes.  The defaults keep the experiment to seconds: images averaged over 4x4 blocks
(7x7 = 49 inputs), 10 hidden units, 1,000 training images, 150 steps at lr 1.0 (the
book: lr 0.1 for 10,000 steps).  ``--gradient
backprop`` trains the same way with backpropagation (chapter 5's script is this one with the
book's full sizes).  Prints the loss and the train/test accuracy per epoch and draws them.

    python examples/ch04_two_layer_net.py
    python examples/ch04_two_layer_net.py --downsample 2 --hidden 20 --iters 50
"""
import sys
import time
from types import SimpleNamespace

import numpy as np

import _common
from cnn_core import TwoLayerNet


def downsample(x, k):
    """(N, 784) MNIST rows averaged over k x k pixel blocks: (N, (28/k)²)."""
    if k == 1:
        return x
    if 28 % k:
        raise SystemExit(f"--downsample must divide 28 (1, 2, 4, 7, 14), got {k}")
    n, side = len(x), 28 // k
    return np.ascontiguousarray(x.reshape(n, side, k, side, k).mean(axis=(2, 4)).reshape(n, -1))


def _init_std(text):
    return text.lower() if text.lower() in ("he", "xavier") else float(text)


def add_arguments(p, *, gradient, hidden, downsample_k, iters, train_size, test_size, lr=0.1,
                  weight_init_std=0.01):
    p.add_argument("--gradient", choices=["numerical", "backprop"], default=gradient)
    p.add_argument("--hidden", type=int, default=hidden, help="hidden units")
    p.add_argument("--downsample", type=int, default=downsample_k,
                   help="average k x k pixel blocks (1: the full 784 inputs)")
    p.add_argument("--iters", type=int, default=iters, help="SGD steps")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--train-size", type=int, default=train_size,
                   help="first N training images (0: all 60,000)")
    p.add_argument("--test-size", type=int, default=test_size,
                   help="first N test images (0: all 10,000)")
    p.add_argument("--weight-init-std", type=_init_std, default=weight_init_std,
                   help="a number, 'he' or 'xavier'")


def train(args, figure_name):
    """The book's loop: random mini-batches, an 'epoch' every train_size / batch_size steps."""
    (x_train, t_train), (x_test, t_test) = _common.load_mnist_subset(
        args, args.train_size or None, args.test_size or None)
    x_train, x_test = downsample(x_train, args.downsample), downsample(x_test, args.downsample)
    dtype = np.float64 if args.gradient == "numerical" else np.float32   # h = 1e-4 needs float64
    x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
    network = TwoLayerNet(x_train.shape[1], args.hidden, 10, args.weight_init_std,
                          dtype=dtype, seed=args.seed)
    n_params = sum(p.size for p in network.params.values())
    print(f"TwoLayerNet {x_train.shape[1]}-{args.hidden}-10 ({n_params} parameters), "
          f"{args.gradient} gradient, {len(x_train)} training / {len(x_test)} test images")
    rng = np.random.default_rng(args.seed)
    iter_per_epoch = max(len(x_train) // args.batch_size, 1)
    losses, history = [], []
    print(f"{'epoch':>5} {'iter':>6} {'loss':>8} {'train_acc':>9} {'test_acc':>8} {'s/iter':>8}")
    t0 = time.perf_counter()
    for i in range(args.iters):
        batch = rng.choice(len(x_train), args.batch_size)
        x_batch, t_batch = x_train[batch], t_train[batch]
        if args.gradient == "numerical":
            grads = network.numerical_gradient(x_batch, t_batch)
        else:
            grads = network.gradient(x_batch, t_batch)
        for name in grads:                         # the book's plain SGD
            network.params[name] -= args.lr * grads[name]
        losses.append(float(network.loss(x_batch, t_batch)))
        if (i + 1) % iter_per_epoch == 0 or i + 1 == args.iters:
            row = {"epoch": len(history) + 1, "iter": i + 1, "loss": losses[-1],
                   "train_acc": network.accuracy(x_train, t_train),
                   "test_acc": network.accuracy(x_test, t_test)}
            history.append(row)
            print(f"{row['epoch']:>5} {row['iter']:>6} {row['loss']:>8.4f} {row['train_acc']:>9.4f} "
                  f"{row['test_acc']:>8.4f} {(time.perf_counter() - t0) / (i + 1):>8.4f}", flush=True)
    print(f"first loss: {losses[0]:.4f}  last loss: {losses[-1]:.4f}")
    print(f"final train accuracy: {history[-1]['train_acc']:.4f}")
    print(f"final test accuracy: {history[-1]['test_acc']:.4f}")
    from cnn_core.plot import plot_history
    path = plot_history(SimpleNamespace(train_loss_list=losses, history=history),
                        _common.figure_path(args, figure_name),
                        title=f"TwoLayerNet, {args.gradient} gradient")
    _common.saved(path)
    return history


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    add_arguments(p, gradient="numerical", hidden=10, downsample_k=4, iters=150,
                  train_size=1000, test_size=1000, lr=1.0)
    args = _common.parse(p, argv, quick={"iters": 40, "hidden": 5, "train_size": 300,
                                         "test_size": 300})
    with _common.threads(args.threads):
        train(args, f"two_layer_net_{args.gradient}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
