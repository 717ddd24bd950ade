"""Chapter 6: weight initialisations compared on MNIST: the training loss.

The book's weight_init_compare: MultiLayerNet 784-100-100-100-100-10 with ReLU
(``--activation sigmoid`` or ``tanh`` to compare), SGD lr 0.01, mini-batches of 128, 2,000
steps, weights N(0, std²) with std 0.01, Xavier (√(1/n)) or He (√(2/n)).  With std 0.01
the signal dies in the deep layers and the loss stays at ln 10 ≈ 2.30; He's falls at once.
Prints the batch losses and the final test accuracies and draws the smoothed loss curves.

    python examples/ch06_weight_init_mnist.py
    python examples/ch06_weight_init_mnist.py --activation sigmoid --inits 1 xavier he
"""
import sys

import numpy as np

import _common
from cnn_core import Sequential
from cnn_core.layers import Dense, Relu, Sigmoid, Tanh
from cnn_core.optim import SGD
from ch06_weight_init_histogram import _init_name

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}
LABELS = {"xavier": "Xavier", "he": "He"}


def build(init, activation, hidden, seed):
    """MultiLayerNet's architecture with any activation (tanh included)."""
    std = init if init in ("xavier", "he") else float(init)
    layers = []
    for size in hidden:
        layers += [Dense(size, std), ACTIVATIONS[activation]()]
    layers.append(Dense(10, std))
    return Sequential(layers, (784,), seed=seed)


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="relu")
    p.add_argument("--inits", nargs="+", type=_init_name, default=["0.01", "xavier", "he"],
                   help="standard deviations, 'xavier' or 'he'")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--hidden", type=int, nargs="+", default=[100, 100, 100, 100])
    p.add_argument("--train-size", type=int, default=0, help="first N training images (0: all)")
    p.add_argument("--test-size", type=int, default=0, help="first N test images (0: all)")
    p.add_argument("--print-every", type=int, default=100)
    args = _common.parse(p, argv, quick={"iters": 200, "test_size": 1000, "print_every": 50})
    labels = {init: LABELS.get(init, f"std={init}") for init in args.inits}

    with _common.threads(args.threads):
        (x_train, t_train), (x_test, t_test) = _common.load_mnist_subset(
            args, args.train_size or None, args.test_size or None)
        networks = {init: build(init, args.activation, args.hidden, args.seed)
                    for init in args.inits}
        optimizers = {init: SGD(args.lr) for init in args.inits}
        losses = {init: [] for init in args.inits}
        rng = np.random.default_rng(args.seed)
        print("step  " + "  ".join(f"{labels[i]:>9}" for i in args.inits))
        for step in range(args.iters):
            batch = rng.choice(len(x_train), args.batch_size)
            for init, net in networks.items():
                grads = net.gradient(x_train[batch], t_train[batch])
                optimizers[init].update(net.params, grads)
                losses[init].append(float(net.last_loss))
            if step % args.print_every == 0 or step + 1 == args.iters:
                print(f"{step:>4}  " + "  ".join(f"{losses[i][-1]:>9.4f}" for i in args.inits),
                      flush=True)
        print()
        rows = [[labels[init], float(np.mean(losses[init][-100:])), net.accuracy(x_test, t_test)]
                for init, net in networks.items()]
    _common.print_table(["init", "mean loss, last 100 steps", "test accuracy"], rows,
                        title=f"{args.activation}, SGD lr {args.lr:g}, {args.iters} steps")

    from cnn_core.plot import pyplot, save_figure, smooth_curve
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for init, marker in zip(args.inits, "os^dvx"):
        ax.plot(smooth_curve(losses[init]), marker=marker, markevery=max(args.iters // 20, 1),
                ms=4, lw=1, label=labels[init])
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss (smoothed)")
    ax.set_ylim(0, 2.5)
    ax.set_title(f"weight initialisation, {args.activation}")
    ax.legend()
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(
        args, f"weight_init_mnist_{args.activation}.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
