"""Chapter 6: activation histograms of a 5-layer net for different weight initialisations.

The book's weight_init_activation_histogram: 1,000 random inputs (standard normal, 100
features) through 5 layers of 100 units, weights N(0, std²) with std = 1, 0.01, Xavier
(√(1/n)) or He (√(2/n)), no biases.  With sigmoid and std 1 the activations pile up at 0 and 1
(vanishing gradients); with 0.01 they all sit near 0.5 (no expressiveness); Xavier keeps them
spread.  ReLU wants He.  Prints each layer's mean, std and the fraction of saturated units and
draws the histograms (rows: initialisations, columns: layers).

    python examples/ch06_weight_init_histogram.py                       # sigmoid
    python examples/ch06_weight_init_histogram.py --activation relu --inits 0.01 xavier he
"""
import sys

import numpy as np

import _common
from cnn_core import functions as F

ACTIVATIONS = {"sigmoid": F.sigmoid, "relu": F.relu, "tanh": F.tanh}
#: histogram range per activation (the book's (0, 1); tanh's values are in (-1, 1))
RANGES = {"sigmoid": (0.0, 1.0), "relu": (0.0, 1.0), "tanh": (-1.0, 1.0)}
INITS = ("1", "0.01", "xavier", "he")


def init_std(name, fan_in):
    if name == "xavier":
        return np.sqrt(1.0 / fan_in)
    if name == "he":
        return np.sqrt(2.0 / fan_in)
    return float(name)


def saturated(z, activation):
    """Fraction of units whose gradient has (nearly) vanished."""
    if activation == "relu":
        return float(np.mean(z <= 0))
    if activation == "tanh":
        return float(np.mean(np.abs(z) > 0.99))
    return float(np.mean((z < 0.01) | (z > 0.99)))


def forward(x, init, activation, layers, nodes, rng):
    """The activations of every layer (a list of (N, nodes) arrays)."""
    f = ACTIVATIONS[activation]
    out = []
    for _ in range(layers):
        w = rng.standard_normal((x.shape[1], nodes)) * init_std(init, x.shape[1])
        x = f(x @ w)
        out.append(x)
    return out


def _init_name(text):
    text = text.lower()
    if text in ("xavier", "he"):
        return text
    try:
        if float(text) > 0:
            return text
    except ValueError:
        pass
    raise SystemExit(f"--inits: each must be a positive std, 'xavier' or 'he', got {text!r}")


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0])
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="sigmoid")
    p.add_argument("--inits", nargs="+", type=_init_name, default=list(INITS),
                   help="standard deviations, 'xavier' or 'he'")
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--samples", type=int, default=1000)
    args = _common.parse(p, argv, quick={"samples": 500})
    x = np.random.default_rng(args.seed).standard_normal((args.samples, args.nodes))
    with _common.threads(args.threads):
        acts = {init: forward(x, init, args.activation, args.layers, args.nodes,
                              np.random.default_rng([args.seed, k]))
                for k, init in enumerate(args.inits)}
    header = ["init"] + [f"layer {i + 1}" for i in range(args.layers)]
    for label, stat in (("mean", np.mean), ("std", np.std),
                        ("saturated fraction", lambda z: saturated(z, args.activation))):
        rows = [[init] + [float(stat(z)) for z in acts[init]] for init in args.inits]
        _common.print_table(header, rows, title=f"{args.activation}: activation {label}")

    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    n_rows, n_cols = len(args.inits), args.layers
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 1.9 * n_rows), squeeze=False)
    lo, hi = RANGES[args.activation]
    for r, init in enumerate(args.inits):
        for c, z in enumerate(acts[init]):
            ax = axes[r, c]
            ax.hist(z.ravel(), 30, range=(lo, hi))
            if args.activation == "relu":
                ax.set_ylim(0, 0.07 * z.size)        # the book clips ReLU's bar at 0
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{c + 1}-layer")
            if c == 0:
                ax.set_ylabel(f"std={init}" if init not in ("xavier", "he") else init.capitalize())
    fig.suptitle(f"{args.activation} activations per layer")
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(
        args, f"weight_init_histogram_{args.activation}.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
