"""Chapter 8: DeepConvNet with the book's parameters: accuracy, misclassified images, float16.

Loads the book's deep_convnet_params.pkl (read safely, never executed) into DeepConvNet and
measures the test accuracy (the book: 97.97 % over the 10,000 test images), prints the
misclassified images and draws the first ``--show`` of them with true → predicted labels
(the book's misclassified_mnist).

Half precision (the book's half_float_network only rounds the weights to float16 and keeps
computing in float64): here weights *and* activations are stored as float16 (half the
memory of float32), and each layer computes in float32 (inputs and weights upcast exactly,
products accumulated in float32), its output rounded to float16 for the next layer.  Both
accuracies are printed, with the number of predictions that change.

    python examples/ch08_deep_convnet.py --params ../shared/data/dlfs/deep_convnet_params.pkl
"""
import sys
from pathlib import Path

import numpy as np

import _common
from cnn_core import DeepConvNet


class HalfPrecisionNetwork:
    """Inference with float16 storage and float32 compute, for a network of parameter layers.

    ``weights[i]`` holds layer i's parameters as float16.  :meth:`predict` keeps the
    activations between layers as float16; each layer gets its input and its parameters
    upcast to float32 (exact) just for its own forward pass.
    """

    def __init__(self, network):
        self.network = network
        self.weights = [{k: v.astype(np.float16) for k, v in layer.params.items()}
                        for layer in network.layers]
        self.max_abs_activation = 0.0

    @property
    def nbytes(self):
        return sum(w.nbytes for ws in self.weights for w in ws.values())

    def _forward(self, x16):
        for layer, w16 in zip(self.network.layers, self.weights):
            stored = layer.params
            layer.params = {k: w.astype(np.float32) for k, w in w16.items()}
            try:
                out = layer.forward(x16.astype(np.float32), train_flg=False)
            finally:
                layer.params = stored
            with np.errstate(over="ignore"):           # counted below, not warned about
                x16 = out.astype(np.float16)
            self.max_abs_activation = max(self.max_abs_activation, float(np.max(np.abs(out))))
        return x16

    def predict(self, x, batch_size=200):
        x16 = np.asarray(x).astype(np.float16)
        return np.concatenate([self._forward(x16[i:i + batch_size])
                               for i in range(0, len(x16), batch_size)])


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--params", default="deep_convnet_params.pkl",
                   help="the book's deep_convnet_params.pkl (or a .npz saved by cnn_core)")
    p.add_argument("--test-size", type=int, default=0, help="first N test images (0: all 10,000)")
    p.add_argument("--show", type=int, default=20, help="misclassified images drawn")
    p.add_argument("--no-half", action="store_true", help="skip the float16 comparison")
    args = _common.parse(p, argv, quick={"test_size": 500})
    if not Path(args.params).is_file():
        raise SystemExit(f"error: no parameter file {args.params!r}; give --params PATH to the "
                         f"book's deep_convnet_params.pkl")
    with _common.threads(args.threads):
        _, (x_test, t_test) = _common.load_mnist_subset(args, 1, args.test_size or None,
                                                        flatten=False)
        net = DeepConvNet(seed=args.seed)
        net.load_params(args.params)
        scores = net.predict(x_test)
        half = None if args.no_half else HalfPrecisionNetwork(net)
        scores16 = None if half is None else half.predict(x_test)
    pred = scores.argmax(axis=1)
    wrong = np.flatnonzero(pred != t_test)
    acc32 = 1.0 - len(wrong) / len(t_test)
    print(f"float32 accuracy: {acc32:.4f} ({len(t_test) - len(wrong)}/{len(t_test)})")
    print(f"misclassified: {len(wrong)}")
    pairs = ", ".join(f"#{i}: {t_test[i]}→{pred[i]}" for i in wrong[:args.show])
    print(f"first {min(args.show, len(wrong))} (test index: true→predicted): {pairs}")
    if scores16 is not None:
        finite = np.all(np.isfinite(scores16), axis=1)
        pred16 = scores16.astype(np.float32).argmax(axis=1)
        acc16 = float(np.mean((pred16 == t_test) & finite))
        n_right = int(np.sum((pred16 == t_test) & finite))
        print(f"float16 accuracy: {acc16:.4f} ({n_right}/{len(t_test)})")
        print(f"predictions changed by float16: {int(np.sum(pred16 != pred))}")
        print(f"max |score difference|: {float(np.max(np.abs(scores16 - scores))):.4g}")
        print(f"largest |activation|: {half.max_abs_activation:.4g} (float16 max 65504); "
              f"non-finite score rows: {int(np.sum(~finite))}")
        print(f"weights: {half.nbytes:,} bytes in float16, "
              f"{sum(v.nbytes for v in net.params.values()):,} in float32")

    if len(wrong):
        from cnn_core.plot import plot_image_grid
        shown = wrong[:args.show]
        _common.saved(plot_image_grid(
            x_test[shown], _common.figure_path(args, "deep_convnet_misclassified.png"),
            titles=[f"{t_test[i]}→{pred[i]}" for i in shown], ncols=10,
            title=f"DeepConvNet: misclassified test images (true→predicted), "
                  f"accuracy {acc32:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
