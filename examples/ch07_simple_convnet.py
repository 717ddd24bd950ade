"""Chapter 7: training SimpleConvNet on MNIST and its first-layer filters before and after.

The book's train_convnet: conv 30x5x5 → ReLU → 2x2 max-pool → Affine 100 → ReLU → Affine 10,
weights N(0, 0.01²), Adam (lr 0.001), batches of 100.  The book trains 20 epochs on all
60,000 images; the default here is 3 epochs on the first 10,000 (``--train-size 0 --epochs
20`` for the book's run).  ``--book-params FILE`` skips training and shows the filters of the
book's trained simple_convnet_params.pkl.  Prints the accuracies per epoch and, for the
filters, their spread and how smooth they are (the mean correlation of horizontally and
vertically adjacent weights: about 0 for random filters, clearly positive for the edge and
blob detectors learning makes), and draws the training curves and both filter grids.

    python examples/ch07_simple_convnet.py
    python examples/ch07_simple_convnet.py --book-params ../shared/data/dlfs/simple_convnet_params.pkl
"""
import sys

import numpy as np

import _common
from cnn_core import SimpleConvNet, Trainer


def smoothness(w):
    """Mean correlation between horizontally and vertically adjacent weights of each filter."""
    w = w.reshape(len(w), -1, *w.shape[-2:]).astype(np.float64)
    w = w - w.mean(axis=(-2, -1), keepdims=True)
    pairs = [(w[..., :, 1:], w[..., :, :-1]), (w[..., 1:, :], w[..., :-1, :])]
    num = sum(np.sum(a * b, axis=(-3, -2, -1)) for a, b in pairs)
    den = sum(np.sqrt(np.sum(a * a, axis=(-3, -2, -1)) * np.sum(b * b, axis=(-3, -2, -1)))
              for a, b in pairs)
    return float(np.mean(num / np.maximum(den, 1e-30)))


class _PrintEpoch:
    def on_epoch_end(self, trainer, logs):
        print(f"epoch {logs['epoch']:>3}: loss {logs['loss']:.4f}, train acc {logs['train_acc']:.4f}, "
              f"test acc {logs['test_acc']:.4f} ({logs['train_time']:.1f} s)", flush=True)


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-size", type=int, default=10000, help="first N training images (0: all)")
    p.add_argument("--test-size", type=int, default=0, help="first N test images (0: all)")
    p.add_argument("--eval-samples", type=int, default=1000,
                   help="images evaluated after each epoch (the book's evaluate_sample_num_per_epoch)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", default="Adam")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--filters", type=int, default=30)
    p.add_argument("--weight-init-std", default="0.01", help="a number, 'he' or 'xavier'")
    p.add_argument("--book-params", default=None,
                   help="the book's simple_convnet_params.pkl: show its filters, no training")
    args = _common.parse(p, argv, quick={"epochs": 1, "train_size": 1000, "test_size": 500,
                                         "eval_samples": 500, "filters": 16})
    std = args.weight_init_std
    std = std if std.lower() in ("he", "xavier") else float(std)
    with _common.threads(args.threads):
        (x_train, t_train), (x_test, t_test) = _common.load_mnist_subset(
            args, args.train_size or None, args.test_size or None, flatten=False)
        filters = 30 if args.book_params else args.filters
        net = SimpleConvNet((1, 28, 28), {"filter_num": filters, "filter_size": 5, "pad": 0,
                                          "stride": 1}, 100, 10, std, seed=args.seed)
        before = net.params["W1"].copy()
        if args.book_params:
            net.load_params(args.book_params)
            print(f"loaded {args.book_params}")
        else:
            trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                              mini_batch_size=args.batch_size, optimizer=args.optimizer,
                              optimizer_param={"lr": args.lr}, verbose=False,
                              evaluate_sample_num_per_epoch=args.eval_samples or None,
                              seed=args.seed, callbacks=[_PrintEpoch()])
            trainer.train()
        test_acc = net.accuracy(x_test, t_test)
    after = net.params["W1"]
    print(f"test accuracy: {test_acc:.4f} ({len(x_test)} images)")
    rows = [["before", float(before.std()), smoothness(before)],
            ["after", float(after.std()), smoothness(after)]]
    _common.print_table(["filters", "weight std", "smoothness"], rows,
                        title=f"first-layer filters ({after.shape[0]} of 5x5)")

    from cnn_core.plot import plot_history, plot_image_grid
    if not args.book_params:
        _common.saved(plot_history(trainer, _common.figure_path(args, "simple_convnet_training.png"),
                                   title="SimpleConvNet on MNIST"))
    ncols = 10 if len(after) >= 10 else len(after)
    for name, w in (("before", before), ("after", after)):
        _common.saved(plot_image_grid(
            w[:, 0], _common.figure_path(args, f"simple_convnet_filters_{name}.png"), ncols=ncols,
            title=f"conv1 filters {name} training"
            + (" (the book's parameters)" if args.book_params and name == "after" else "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
