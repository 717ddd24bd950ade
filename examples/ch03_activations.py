"""Chapter 3: activation functions: step, sigmoid, ReLU and tanh.

Draws each function over [--xmin, --xmax] (with ``--derivative``, also its central-difference
derivative, dashed) and prints their values at a few points.

    python examples/ch03_activations.py
    python examples/ch03_activations.py --functions sigmoid tanh --derivative --points -3 0 3
"""
import sys

import numpy as np

import _common
from cnn_core import functions as F

FUNCTIONS = {"step": F.step_function, "sigmoid": F.sigmoid, "relu": F.relu, "tanh": F.tanh}


def derivative(f, x, h=1e-4):
    """(f(x + h) - f(x - h)) / 2h elementwise (the book's numerical_diff, vectorised)."""
    x = np.asarray(x, dtype=np.float64)
    return (f(x + h) - f(x - h)) / (2 * h)


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0])
    p.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=list(FUNCTIONS))
    p.add_argument("--xmin", type=float, default=-5.0)
    p.add_argument("--xmax", type=float, default=5.0)
    p.add_argument("--points", nargs="+", type=float, default=[-2, -1, -0.5, 0, 0.5, 1, 2],
                   help="where to print the values")
    p.add_argument("--derivative", action="store_true", help="also the derivatives")
    args = _common.parse(p, argv)
    if not args.xmin < args.xmax:
        p.error(f"--xmin must be below --xmax, got {args.xmin} and {args.xmax}")

    points = np.array(args.points, dtype=np.float64)
    rows = [[f"{x:g}"] + [np.asarray(FUNCTIONS[name](x)).item() for name in args.functions]
            for x in points]
    _common.print_table(["x"] + args.functions, rows, title="h(x)")
    if args.derivative:
        rows = [[f"{x:g}"] + [float(derivative(FUNCTIONS[name], x)) for name in args.functions]
                for x in points]
        _common.print_table(["x"] + [f"d{name}" for name in args.functions], rows,
                            title="h'(x), central difference (the step's is 0, or 5000 at 0: "
                                  "no derivative there)")

    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    x = np.arange(args.xmin, args.xmax, 0.01)
    fig, axes = plt.subplots(1, len(args.functions), figsize=(3.2 * len(args.functions), 3.2),
                             squeeze=False)
    for ax, name in zip(axes[0], args.functions):
        ax.plot(x, FUNCTIONS[name](x), label=name)
        if args.derivative and name != "step":
            ax.plot(x, derivative(FUNCTIONS[name], x), "--", label=f"{name}'")
            ax.legend(loc="upper left", fontsize=8)
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_title(name)
        ax.set_xlabel("x")
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(args, "activations.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
