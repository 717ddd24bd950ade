"""Chapter 4: gradient descent on f(x0, x1) = x0² + x1² with its path.

x <- x - lr * ∇f(x), the gradient by central differences (``cnn_core.functions``), from the
book's start (-3, 4) for 20 steps at lr 0.1.  Give several ``--lr`` to compare: the book's
lr 10 diverges, lr 1e-10 barely moves.  Prints each path and draws it over f's contours.

    python examples/ch04_gradient_descent.py
    python examples/ch04_gradient_descent.py --lr 0.1 0.5 0.95 --steps 30
"""
import sys

import numpy as np

import _common
from cnn_core.functions import gradient_descent


def function_2(x):
    """The book's f(x) = x0² + x1²."""
    return np.sum(x ** 2)


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0])
    p.add_argument("--lr", nargs="+", type=float, default=[0.1])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--init", nargs=2, type=float, default=[-3.0, 4.0], metavar=("X0", "X1"))
    p.add_argument("--print-every", type=int, default=1, help="print every k-th step of a path")
    args = _common.parse(p, argv)
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")

    paths = {}
    for lr in args.lr:
        x, history = gradient_descent(function_2, np.array(args.init), lr=lr, step_num=args.steps)
        path = np.vstack([history, x])                 # x before each step, then the final x
        paths[lr] = path
        rows = [[k, path[k, 0], path[k, 1], function_2(path[k])]
                for k in range(0, len(path), max(1, args.print_every))]
        if rows[-1][0] != len(path) - 1:
            rows.append([len(path) - 1, path[-1, 0], path[-1, 1], function_2(path[-1])])
        _common.print_table(["step", "x0", "x1", "f(x)"], rows, spec=".6g", title=f"lr = {lr:g}")
    print("final points:")
    for lr, path in paths.items():
        print(f"  lr={lr:g}: x = ({path[-1, 0]:.6g}, {path[-1, 1]:.6g}), "
              f"f = {function_2(path[-1]):.6g}")

    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5))
    finite = np.vstack([q[np.all(np.isfinite(q), axis=1)] for q in paths.values()])
    lim = max(4.5, min(float(np.max(np.abs(finite))) * 1.1, 50.0))
    g = np.linspace(-lim, lim, 201)
    g0, g1 = np.meshgrid(g, g)
    ax.contour(g0, g1, g0 ** 2 + g1 ** 2, levels=12, colors="0.8", linewidths=0.7)
    for lr, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], "o-", ms=3, lw=1, label=f"lr={lr:g}")
    ax.plot(0, 0, "+", color="k", ms=12)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.set_title("gradient descent on x0² + x1²")
    ax.legend()
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(args, "gradient_descent.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
