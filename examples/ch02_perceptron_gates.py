"""Chapter 2: logic gates as perceptrons; XOR from two layers.

AND, NAND and OR are single perceptrons y = step(w·x + b) with the book's weights; no single
line separates XOR's outputs, but XOR(x1, x2) = AND(NAND(x1, x2), OR(x1, x2)) does: a
two-layer perceptron.  Prints the truth tables and draws each gate's decision regions
over the input plane (the single gates' lines w·x + b = 0 dashed).

    python examples/ch02_perceptron_gates.py
    python examples/ch02_perceptron_gates.py --set OR=1,1,-0.5     # your own weights
"""
import sys

import numpy as np

import _common
from cnn_core.functions import step_function

#: the book's (w1, w2, b) for the single-layer gates
BOOK_WEIGHTS = {"AND": (0.5, 0.5, -0.7), "NAND": (-0.5, -0.5, 0.7), "OR": (0.5, 0.5, -0.2)}
GATES = ("AND", "NAND", "OR", "XOR")
INPUTS = ((0, 0), (1, 0), (0, 1), (1, 1))


def perceptron(weights, x1, x2):
    """step(w1 x1 + w2 x2 + b), elementwise over arrays x1, x2 (the book's gates, vectorised)."""
    w1, w2, b = weights
    return step_function(w1 * np.asarray(x1, float) + w2 * np.asarray(x2, float) + b)


def gate_outputs(name, weights, x1, x2):
    if name != "XOR":
        return perceptron(weights[name], x1, x2)
    s1 = perceptron(weights["NAND"], x1, x2)      # layer 1
    s2 = perceptron(weights["OR"], x1, x2)
    return perceptron(weights["AND"], s1, s2)     # layer 2


def _parse_set(items):
    weights = dict(BOOK_WEIGHTS)
    for item in items or ():
        name, _, values = item.partition("=")
        name = name.strip().upper()
        if name not in BOOK_WEIGHTS:
            raise SystemExit(f"--set: gate must be AND, NAND or OR, got {name!r}")
        try:
            w = tuple(float(v) for v in values.split(","))
        except ValueError:
            w = ()
        if len(w) != 3:
            raise SystemExit(f"--set {item!r}: expected NAME=w1,w2,b (three numbers)")
        weights[name] = w
    return weights


def plot_gates(gates, weights, path):
    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    grid = np.linspace(-0.5, 1.5, 201)
    g1, g2 = np.meshgrid(grid, grid)
    fig, axes = plt.subplots(1, len(gates), figsize=(3.2 * len(gates), 3.3), squeeze=False)
    for ax, name in zip(axes[0], gates):
        ax.contourf(g1, g2, gate_outputs(name, weights, g1, g2), levels=[-0.5, 0.5, 1.5],
                    colors=["#dde6f5", "#f6d6c8"])
        lines = [weights[name]] if name != "XOR" else [weights["NAND"], weights["OR"]]
        for w1, w2, b in lines:
            if w2 != 0:
                ax.plot(grid, -(w1 * grid + b) / w2, "k--", lw=1)
            elif w1 != 0:
                ax.axvline(-b / w1, color="k", ls="--", lw=1)
        for x1, x2 in INPUTS:
            y = int(gate_outputs(name, weights, x1, x2))
            ax.plot(x1, x2, "o" if y else "^", ms=10, color="tab:red" if y else "tab:blue")
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylim(-0.5, 1.5)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.set_title(name + (" = AND(NAND, OR)" if name == "XOR" else ""))
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0])
    p.add_argument("--gates", nargs="+", default=list(GATES), type=str.upper, choices=GATES)
    p.add_argument("--set", action="append", metavar="GATE=w1,w2,b",
                   help="replace a single-layer gate's weights (XOR uses the new ones too)")
    args = _common.parse(p, argv)
    weights = _parse_set(args.set)
    for name in BOOK_WEIGHTS:
        print(f"{name:>4}: w = ({weights[name][0]:g}, {weights[name][1]:g}), b = {weights[name][2]:g}")
    print()
    x1, x2 = np.array(INPUTS).T
    rows = [[a, b] + [int(gate_outputs(g, weights, a, b)) for g in args.gates]
            for a, b in zip(x1, x2)]
    _common.print_table(["x1", "x2"] + args.gates, rows, title="truth tables")
    _common.saved(plot_gates(args.gates, weights, _common.figure_path(args, "perceptron_gates.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
