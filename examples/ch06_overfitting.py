"""Chapter 6: overfitting, and what weight decay and Dropout do about it.

The book's overfit_weight_decay and overfit_dropout: a 7-layer MLP (784-100x6-10, ReLU,
He initialisation) trained on only 300 MNIST images with SGD (lr 0.01, batches of 100) for
200 epochs.  Without regularisation it fits the training set perfectly while the test
accuracy stalls far below; weight decay (λ = 0.1) and Dropout (ratio 0.2, the book's
non-inverted form) narrow the gap.  Prints train/test accuracy every ``--print-every``
epochs and the final gap per setting, and draws one panel per setting.

    python examples/ch06_overfitting.py
    python examples/ch06_overfitting.py --settings none dropout --dropout-ratio 0.15 --epochs 300
"""
import sys

import numpy as np

import _common
from cnn_core import MultiLayerNetExtend
from cnn_core.optim import SGD

SETTINGS = ("none", "weight_decay", "dropout")
TITLES = {"none": "no regularisation", "weight_decay": "weight decay",
          "dropout": "Dropout"}


def run(setting, data, args):
    """(train accuracies, test accuracies): at the start and after every epoch."""
    (x, t), (x_test, t_test) = data
    net = MultiLayerNetExtend(
        784, [100] * args.layers, 10, seed=args.seed,
        weight_decay_lambda=args.weight_decay if setting == "weight_decay" else 0.0,
        use_dropout=setting == "dropout", dropout_ration=args.dropout_ratio)
    optimizer = SGD(args.lr)
    rng = np.random.default_rng(args.seed)
    iter_per_epoch = max(len(x) // args.batch_size, 1)
    train_acc, test_acc = [net.accuracy(x, t)], [net.accuracy(x_test, t_test)]
    for epoch in range(1, args.epochs + 1):
        for _ in range(iter_per_epoch):
            batch = rng.choice(len(x), args.batch_size)
            optimizer.update(net.params, net.gradient(x[batch], t[batch]))
        train_acc.append(net.accuracy(x, t))
        test_acc.append(net.accuracy(x_test, t_test))
        if epoch % args.print_every == 0 or epoch == args.epochs:
            print(f"{setting:>12} epoch {epoch:>4}: train acc {train_acc[-1]:.4f}, "
                  f"test acc {test_acc[-1]:.4f}", flush=True)
    return train_acc, test_acc


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--train-size", type=int, default=300)
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--layers", type=int, default=6, help="hidden layers of 100 units")
    p.add_argument("--weight-decay", type=float, default=0.1, help="λ of the weight decay setting")
    p.add_argument("--dropout-ratio", type=float, default=0.2)
    p.add_argument("--print-every", type=int, default=50, help="epochs")
    args = _common.parse(p, argv, quick={"epochs": 80, "test_size": 1000, "print_every": 20,
                                         "lr": 0.03})
    with _common.threads(args.threads):
        data = _common.load_mnist_subset(args, args.train_size, args.test_size)
        curves = {s: run(s, data, args) for s in args.settings}
    print()
    rows = [[TITLES[s], tr[-1], te[-1], tr[-1] - te[-1], max(te)] for s, (tr, te) in curves.items()]
    _common.print_table(["setting", "train acc", "test acc", "gap", "best test acc"], rows,
                        title=f"after {args.epochs} epochs on {len(data[0][0])} training images")

    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False, sharey=True)
    for ax, (s, (tr, te)) in zip(axes[0], curves.items()):
        ax.plot(tr, marker="o", markevery=max(args.epochs // 10, 1), ms=4, label="train")
        ax.plot(te, marker="s", markevery=max(args.epochs // 10, 1), ms=4, label="test")
        ax.set_title(TITLES[s] + (f" (λ={args.weight_decay:g})" if s == "weight_decay" else
                                  f" (ratio {args.dropout_ratio:g})" if s == "dropout" else ""))
        ax.set_xlabel("epochs")
        ax.set_ylim(0, 1.0)
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].legend(loc="lower right")
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(args, "overfitting.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
