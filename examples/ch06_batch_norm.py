"""Chapter 6: Batch Normalization against none, over 16 weight scales (the book's batch_norm_test).

MultiLayerNetExtend 784-100x5-10 (ReLU) with and without BatchNorm after every hidden Affine,
weights N(0, w²) for 16 scales w from 1 down to 1e-4 (log-spaced), trained with SGD (lr
0.01, batches of 100) on the first 1,000 MNIST training images for 20 epochs.  Without
BatchNorm the net learns only in a narrow band of scales (too large: exploding activations;
too small: vanishing); with BatchNorm it learns at almost all of them.  Prints the final
training accuracies per scale and draws the 16 accuracy curves as a 4x4 grid.

    python examples/ch06_batch_norm.py
    python examples/ch06_batch_norm.py --scales 8 --epochs 10 --train-size 500
"""
import sys

import numpy as np

import _common
from cnn_core import MultiLayerNetExtend
from cnn_core.optim import SGD


def train_pair(w, x, t, args):
    """(plain accuracies, BN accuracies) per epoch, the book's loop: an epoch every
    train_size / batch_size random batches, both nets on the same batches."""
    nets = [MultiLayerNetExtend(784, [100] * args.layers, 10, weight_init_std=w,
                                use_batchnorm=bn, seed=args.seed) for bn in (False, True)]
    optimizer = SGD(args.lr)
    rng = np.random.default_rng(args.seed)
    iter_per_epoch = max(len(x) // args.batch_size, 1)
    accs = ([], [])
    for i in range(args.epochs * iter_per_epoch):
        if i % iter_per_epoch == 0:
            for net, acc in zip(nets, accs):
                acc.append(net.accuracy(x, t))
        batch = rng.choice(len(x), args.batch_size)
        for net in nets:
            with np.errstate(over="ignore", invalid="ignore"):   # the plain net may blow up at w = 1
                grads = net.gradient(x[batch], t[batch])
            optimizer.update(net.params, grads)
    for net, acc in zip(nets, accs):
        acc.append(net.accuracy(x, t))
    return accs


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--scales", type=int, default=16, help="weight scales, log-spaced 1 .. 1e-4")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--layers", type=int, default=5, help="hidden layers of 100 units")
    args = _common.parse(p, argv, quick={"epochs": 4, "train_size": 500})
    scales = np.logspace(0, -4, num=args.scales)
    with _common.threads(args.threads):
        (x, t), _ = _common.load_mnist_subset(args, args.train_size, 1)
        results = [train_pair(w, x, t, args) for w in scales]
    rows = [[f"{w:.3g}", plain[-1], bn[-1], max(plain), max(bn)] for w, (plain, bn) in
            zip(scales, results)]
    _common.print_table(["weight scale", "plain final", "BN final", "plain best", "BN best"], rows,
                        title=f"training accuracy after {args.epochs} epochs on {len(x)} images")

    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    ncols = 4
    nrows = -(-len(scales) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.4 * nrows), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.flat[len(scales):]:
        ax.set_axis_off()
    epochs = np.arange(args.epochs + 1)
    for k, (ax, w, (plain, bn)) in enumerate(zip(axes.flat, scales, results)):
        ax.plot(epochs, bn, label="Batch Normalization")
        ax.plot(epochs, plain, "--", label="Normal (without BatchNorm)")
        ax.set_title(f"W: {w:.3g}", fontsize=9)
        ax.set_ylim(0, 1.0)
        if k % ncols == 0:
            ax.set_ylabel("accuracy")
        if k >= len(scales) - ncols:
            ax.set_xlabel("epochs")
    axes.flat[len(scales) - 1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(args, "batch_norm.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
