"""Chapter 5: gradient check: backpropagation against the numerical gradient, per parameter.

The book's gradient_check: TwoLayerNet 784-50-10 in float64 on 3 MNIST images; every
entry's central difference (``network.numerical_gradient``) against ``network.gradient``,
printed as the mean absolute difference per parameter (the book's number) with the
largest difference and the parameter's gradient scale.  ``--model`` also checks a net with
BatchNorm or a small SimpleConvNet; the kink-aware sampled check of ``cnn_core.gradient_check``
is printed too.  The figure plots backprop against numerical for every entry.

Biases start from N(0, 0.1²), not the book's zeros (``--zero-bias`` keeps zeros): with zero
conv biases every all-zero patch of MNIST's background gives a pre-activation of exactly 0,
the ReLU's kink, where a central difference measures half of the one-sided slope and no
derivative exists (try ``--model simple_convnet --zero-bias``: b1 disagrees).

    python examples/ch05_gradient_check.py
    python examples/ch05_gradient_check.py --model simple_convnet --batch 4
"""
import sys

import numpy as np

import _common
import cnn_core

MODELS = ("two_layer", "mlp_bn", "simple_convnet")


def build(name, hidden, seed):
    kw = dict(dtype=np.float64, seed=seed)
    if name == "two_layer":
        return cnn_core.TwoLayerNet(784, hidden, 10, 0.01, **kw)
    if name == "mlp_bn":
        return cnn_core.MultiLayerNetExtend(784, [hidden, hidden], 10, use_batchnorm=True, **kw)
    return cnn_core.SimpleConvNet((1, 28, 28), {"filter_num": 3, "filter_size": 5, "pad": 0,
                                                "stride": 1}, hidden, 10, "he", **kw)


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--model", choices=MODELS, default="two_layer")
    p.add_argument("--hidden", type=int, default=50)
    p.add_argument("--batch", type=int, default=3, help="MNIST training images in the batch")
    p.add_argument("--zero-bias", action="store_true", help="keep the book's zero biases")
    args = _common.parse(p, argv, quick={"hidden": 10})
    with _common.threads(args.threads):
        (x_train, t_train), _ = _common.load_mnist_subset(args, args.batch, 1,
                                                          flatten=args.model != "simple_convnet")
        x = x_train.astype(np.float64)
        network = build(args.model, args.hidden, args.seed)
        if not args.zero_bias:
            rng = np.random.default_rng(args.seed)
            for name in network.params:
                if name.startswith("b"):
                    network.params[name] = 0.1 * rng.standard_normal(network.params[name].shape)
        numerical = network.numerical_gradient(x, t_train)
        backprop = network.gradient(x, t_train)
        sampled = cnn_core.gradient_check(network, x, t_train, seed=args.seed)
    rows = []
    for name in network.params:
        diff = np.abs(backprop[name] - numerical[name])
        rows.append([name, "x".join(map(str, backprop[name].shape)), f"{np.mean(diff):.3g}",
                     f"{np.max(diff):.3g}", f"{np.max(np.abs(backprop[name])):.3g}",
                     f"{sampled[name]:.3g}"])
    _common.print_table(["param", "shape", "mean|bp-num|", "max|bp-num|", "max|bp|",
                         "sampled rel err"], rows,
                        title=f"{args.model}, float64, batch of {len(x)}")
    worst = max(float(np.max(np.abs(backprop[k] - numerical[k]))) for k in network.params)
    print(f"largest difference: {worst:.3g}")

    from cnn_core.plot import pyplot, save_figure
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name in network.params:
        ax1.plot(numerical[name].ravel(), backprop[name].ravel(), ".", ms=3, label=name)
    lim = max(float(np.max(np.abs(g))) for g in backprop.values()) * 1.05 or 1.0
    ax1.plot([-lim, lim], [-lim, lim], "k-", lw=0.5)
    ax1.set_xlabel("numerical gradient")
    ax1.set_ylabel("backpropagation")
    ax1.set_title("every entry")
    ax1.legend(fontsize=8, markerscale=3)
    names = list(network.params)
    means = [max(float(np.mean(np.abs(backprop[k] - numerical[k]))), 1e-20) for k in names]
    ax2.bar(names, means)
    ax2.set_yscale("log")
    ax2.set_ylabel("mean |backprop - numerical|")
    ax2.set_title("difference per parameter")
    fig.suptitle(f"gradient check: {args.model}")
    fig.tight_layout()
    _common.saved(save_figure(fig, _common.figure_path(args, "gradient_check.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
