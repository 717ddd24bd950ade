"""Chapter 6: optimizers on f(x, y) = x²/20 + y²: the paths of SGD, Momentum, AdaGrad and Adam.

The book's optimizer_compare_naive: from (-7, 2), 30 updates with the exact gradient
(x/10, 2y) and the book's learning rates (SGD 0.95, Momentum 0.1, AdaGrad 1.5, Adam 0.3;
Nesterov 0.1 and RMSprop 0.3 if asked for).  f is 20 times steeper in y than in x: SGD
zig-zags in y while crawling along x.  Prints each path's end and draws the paths over f's
contours, one panel per optimizer.

    python examples/ch06_optimizer_paths.py
    python examples/ch06_optimizer_paths.py --optimizers SGD Nesterov RMSprop --lr SGD=0.5 --steps 50
"""
import sys

import numpy as np

import _common
from cnn_core.optim import get_optimizer

BOOK_LR = {"SGD": 0.95, "Momentum": 0.1, "Nesterov": 0.1, "AdaGrad": 1.5, "RMSprop": 0.3,
           "Adam": 0.3}


def f(x, y):
    return x ** 2 / 20.0 + y ** 2


def df(x, y):
    return x / 10.0, 2.0 * y


def run_path(name, lr, init, steps):
    """(steps + 1, 2) positions: the start and after each update."""
    optimizer = get_optimizer(name, lr=lr)
    params = {"x": np.array([init[0]]), "y": np.array([init[1]])}
    path = [(init[0], init[1])]
    for _ in range(steps):
        gx, gy = df(params["x"], params["y"])
        optimizer.update(params, {"x": gx, "y": gy})
        path.append((float(params["x"][0]), float(params["y"][0])))
    return np.array(path)


def _lr_overrides(items, names):
    lrs = {name: BOOK_LR[name] for name in names}
    for item in items or ():
        name, _, value = item.partition("=")
        match = {n.lower(): n for n in BOOK_LR}.get(name.strip().lower())
        if match is None:
            raise SystemExit(f"--lr {item!r}: unknown optimizer {name!r}")
        lrs[match] = float(value)
    return lrs


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0])
    p.add_argument("--optimizers", nargs="+", default=["SGD", "Momentum", "AdaGrad", "Adam"],
                   type=lambda s: {n.lower(): n for n in BOOK_LR}.get(s.lower(), s),
                   choices=list(BOOK_LR))
    p.add_argument("--lr", action="append", metavar="NAME=VALUE",
                   help="learning rate of one optimizer (repeatable)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--init", nargs=2, type=float, default=[-7.0, 2.0], metavar=("X", "Y"))
    args = _common.parse(p, argv)
    lrs = _lr_overrides(args.lr, args.optimizers)
    paths = {name: run_path(name, lrs[name], args.init, args.steps) for name in args.optimizers}
    rows = [[name, f"{lrs[name]:g}", path[-1, 0], path[-1, 1], f(*path[-1]),
             f(*path[len(path) // 2]), int(np.sum(np.diff(np.sign(path[:, 1])) != 0))]
            for name, path in paths.items()]
    _common.print_table(["optimizer", "lr", "x", "y", "f(x, y)", f"f at step {args.steps // 2}",
                         "y sign changes"],
                        rows, spec=".5f",
                        title=f"after {args.steps} steps from ({args.init[0]:g}, {args.init[1]:g})")

    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    n = len(paths)
    ncols = 2 if n in (2, 4) else min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
    gx, gy = np.meshgrid(np.arange(-10, 10, 0.01), np.arange(-5, 5, 0.01))
    z = f(gx, gy)
    z[z > 7] = 0                                  # the book's contour mask
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    for ax, (name, path) in zip(axes.flat, paths.items()):
        ax.contour(gx, gy, z, colors="0.75", linewidths=0.7)
        ax.plot(path[:, 0], path[:, 1], "o-", color="red", ms=3, lw=1)
        ax.plot(0, 0, "+", color="k", ms=10)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        ax.set_title(f"{name} (lr={lrs[name]:g})")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(args, "optimizer_paths.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
