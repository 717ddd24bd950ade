"""Chapter 6: random hyperparameter search (the book's hyperparameter_optimization).

The book's setting: the first 500 MNIST training images, 20 % of them held out for
validation (the test set is never looked at), a 7-layer MLP (784-100x6-10) trained with SGD
for 50 epochs per trial, learning rate 10^U(-6, -2) and weight decay 10^U(-8, -4).  Trials
run in parallel with ``cnn_core.search.random_search``: a local process pool by default, a
Dask cluster with ``--executor dask`` (``--scheduler ADDRESS``, or a local cluster), or
inline.  The result is the same ranked table for the same ``--seed`` on every executor.
Prints the ranked table and the best parameters and draws the validation (solid) and
training (dashed) accuracy curves of the best trials.

    python examples/ch06_hyperparameter_search.py
    python examples/ch06_hyperparameter_search.py --trials 100 --hidden 50 100 --executor dask
"""
import sys

import _common
from cnn_core.search import Choice, LogUniform, random_search, train_mlp, validation_split


def make_executor(args):
    """(executor or None, cleanup) for --executor."""
    if args.executor != "dask":
        return None, lambda: None
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SystemExit("--executor dask needs the distributed package: "
                         "pip install 'dask[distributed]'") from None
    if args.scheduler:
        client = Client(args.scheduler)
        return client.get_executor(), client.close
    cluster = LocalCluster(n_workers=args.n_jobs or 2, threads_per_worker=1,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)

    def close():
        client.close()
        cluster.close()
    return client.get_executor(), close


def _report(trial):
    error = f" ({trial.error})" if trial.error else ""
    print(f"  trial {trial.index:>3} done: val acc {trial.score:.4f}{error}", flush=True)


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--trials", type=int, default=20, help="the book runs 100")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--train-size", type=int, default=500, help="first N training images")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--lr-range", nargs=2, type=float, default=[1e-6, 1e-2], metavar=("LOW", "HIGH"))
    p.add_argument("--wd-range", nargs=2, type=float, default=[1e-8, 1e-4], metavar=("LOW", "HIGH"))
    p.add_argument("--hidden", nargs="+", type=int, default=[100],
                   help="units per hidden layer: one value, or several to search over")
    p.add_argument("--hidden-layers", type=int, default=6)
    p.add_argument("--executor", choices=["process", "dask", "inline"], default="process")
    p.add_argument("--n-jobs", type=int, default=None, help="workers (default: the CPU count)")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--show", type=int, default=20, help="rows of the table and panels drawn")
    args = _common.parse(p, argv, quick={"trials": 6, "epochs": 15, "train_size": 300,
                                         "show": 6})
    (x, t), _ = _common.load_mnist_subset(args, args.train_size, 1)
    (x_train, t_train), (x_val, t_val) = validation_split(x, t, args.val_fraction, args.seed)
    space = {"lr": LogUniform(*args.lr_range), "weight_decay": LogUniform(*args.wd_range)}
    if len(args.hidden) > 1:
        space["hidden"] = Choice(args.hidden)
    print(f"{args.trials} trials on {args.executor}: {len(x_train)} training / {len(x_val)} "
          f"validation images, space {space}", flush=True)
    executor, close = make_executor(args)
    try:
        result = random_search(
            train_mlp, space, args.trials, seed=args.seed, executor=executor,
            n_jobs=1 if args.executor == "inline" else args.n_jobs, metric="val_acc",
            args=(x_train, t_train, x_val, t_val),
            kwargs={"epochs": args.epochs, "hidden_layers": args.hidden_layers,
                    "hidden": args.hidden[0]},
            callback=_report)
    finally:
        close()
    print()
    print(result.table(top=args.show))
    print()
    print(f"best parameters: {result.best_params}")
    print(f"best val_acc: {result.best.score:.4f}")

    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    shown = [trial for trial in result.trials[:args.show] if trial.ok]
    ncols = min(5, len(shown)) or 1
    nrows = -(-len(shown) // ncols) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.2 * nrows), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.flat[len(shown):]:
        ax.set_axis_off()
    for rank, (ax, trial) in enumerate(zip(axes.flat, shown), 1):
        ax.plot(trial.metrics["val_acc_history"])
        ax.plot(trial.metrics["train_acc_history"], "--")
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"Best-{rank} (val {trial.score:.2f})\nlr {trial.params['lr']:.1e}, "
                     f"wd {trial.params['weight_decay']:.1e}", fontsize=7)
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(args, "hyperparameter_search.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
