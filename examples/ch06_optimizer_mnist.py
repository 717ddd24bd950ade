"""Chapter 6: optimizers compared on MNIST: the training loss of a 5-layer MLP.

The book's optimizer_compare_mnist: MultiLayerNet 784-100-100-100-100-10 (ReLU, He
initialisation; the same initial weights for every optimizer), mini-batches of 128 drawn at
random, 2,000 steps, each optimizer with its default learning rate (SGD 0.01, Momentum 0.01,
AdaGrad 0.01, Adam 0.001).  Prints the batch loss every ``--print-every`` steps, the mean
loss of the last 100 steps and the test accuracy, and draws the smoothed loss curves.

    python examples/ch06_optimizer_mnist.py
    python examples/ch06_optimizer_mnist.py --optimizers SGD Nesterov RMSprop --lr SGD=0.1
"""
import sys

import numpy as np

import _common
from cnn_core import MultiLayerNet
from cnn_core.optim import OPTIMIZERS, get_optimizer

NAMES = {cls.__name__.lower(): cls.__name__ for cls in OPTIMIZERS.values()}


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--optimizers", nargs="+", default=["SGD", "Momentum", "AdaGrad", "Adam"],
                   type=lambda s: NAMES.get(s.lower(), s), choices=list(NAMES.values()))
    p.add_argument("--lr", action="append", metavar="NAME=VALUE",
                   help="learning rate of one optimizer (repeatable; default: its own)")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, nargs="+", default=[100, 100, 100, 100])
    p.add_argument("--train-size", type=int, default=0, help="first N training images (0: all)")
    p.add_argument("--test-size", type=int, default=0, help="first N test images (0: all)")
    p.add_argument("--print-every", type=int, default=100)
    args = _common.parse(p, argv, quick={"iters": 200, "test_size": 1000, "print_every": 50})
    lrs = {}
    for item in args.lr or ():
        name, _, value = item.partition("=")
        if name.strip().lower() not in NAMES:
            p.error(f"--lr {item!r}: unknown optimizer {name!r}")
        lrs[NAMES[name.strip().lower()]] = float(value)

    with _common.threads(args.threads):
        (x_train, t_train), (x_test, t_test) = _common.load_mnist_subset(
            args, args.train_size or None, args.test_size or None)
        optimizers = {name: get_optimizer(name, **({"lr": lrs[name]} if name in lrs else {}))
                      for name in args.optimizers}
        networks = {name: MultiLayerNet(784, args.hidden, 10, seed=args.seed)
                    for name in optimizers}
        losses = {name: [] for name in optimizers}
        rng = np.random.default_rng(args.seed)
        print("step  " + "  ".join(f"{name:>9}" for name in optimizers))
        for i in range(args.iters):
            batch = rng.choice(len(x_train), args.batch_size)
            for name, opt in optimizers.items():
                grads = networks[name].gradient(x_train[batch], t_train[batch])
                opt.update(networks[name].params, grads)
                losses[name].append(float(networks[name].last_loss))
            if i % args.print_every == 0 or i + 1 == args.iters:
                print(f"{i:>4}  " + "  ".join(f"{losses[n][-1]:>9.4f}" for n in optimizers),
                      flush=True)
        print()
        rows = [[name, f"{opt.lr:g}", float(np.mean(losses[name][-100:])),
                 networks[name].accuracy(x_test, t_test)] for name, opt in optimizers.items()]
    _common.print_table(["optimizer", "lr", "mean loss, last 100 steps", "test accuracy"], rows)

    from cnn_core.plot import pyplot, save_figure, smooth_curve
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = dict(zip(NAMES.values(), "o^sxdv"))
    for name in optimizers:
        ax.plot(smooth_curve(losses[name]), marker=markers[name], markevery=max(args.iters // 20, 1),
                ms=4, lw=1, label=name)
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss (smoothed)")
    ax.set_ylim(0, 1 if args.iters >= 1000 else 2.5)
    ax.set_title("optimizers on MNIST, 5-layer MLP")
    ax.legend()
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(args, "optimizer_mnist.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
