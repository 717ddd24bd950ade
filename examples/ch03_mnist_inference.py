"""Chapter 3: inference on MNIST with the book's trained 3-layer network (neuralnet_mnist).

784-50-100-10, sigmoid hidden layers, softmax output, weights from the book's
sample_weight.pkl (read safely, never executed): the book measures 93.52 % on the 10,000 test
images.  Runs image by image and in batches of ``--batch-size`` (the book's point: one
matrix product per batch is much faster), prints both accuracies and timings, and draws the
first ``--show`` test images with the predicted digit and its probability.

    python examples/ch03_mnist_inference.py --params ../shared/data/dlfs/sample_weight.pkl
"""
import sys
import time
from pathlib import Path

import numpy as np

import _common
from cnn_core import Sequential
from cnn_core.functions import softmax
from cnn_core.io import load_pickle_params
from cnn_core.layers import Affine, Sigmoid


def build(params):
    """The book's init_network/predict as layers: Affine, sigmoid, Affine, sigmoid, Affine."""
    return Sequential([Affine(params["W1"], params["b1"]), Sigmoid(),
                       Affine(params["W2"], params["b2"]), Sigmoid(),
                       Affine(params["W3"], params["b3"])], (784,))


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    p.add_argument("--params", default="sample_weight.pkl", help="the book's sample_weight.pkl")
    p.add_argument("--test-size", type=int, default=0, help="first N test images (0: all 10,000)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--show", type=int, default=20, help="test images drawn")
    args = _common.parse(p, argv, quick={"test_size": 1000})
    if not Path(args.params).is_file():
        raise SystemExit(f"error: no parameter file {args.params!r}; give --params PATH to the "
                         f"book's sample_weight.pkl")
    with _common.threads(args.threads):
        _, (x, t) = _common.load_mnist_subset(args, 1, args.test_size or None)
        net = build(load_pickle_params(args.params))
        t0 = time.perf_counter()
        one_by_one = np.array([int(np.argmax(net.predict(x[i:i + 1]))) for i in range(len(x))])
        t1 = time.perf_counter()
        batched = np.concatenate([net.predict(x[i:i + args.batch_size]).argmax(axis=1)
                                  for i in range(0, len(x), args.batch_size)])
        t2 = time.perf_counter()
        probs = softmax(net.predict(x[:args.show]))
    print(f"accuracy, one image at a time: {np.mean(one_by_one == t):.4f} ({t1 - t0:.3f} s)")
    print(f"accuracy, batches of {args.batch_size}: {np.mean(batched == t):.4f} ({t2 - t1:.3f} s)")
    print(f"speed-up of batching: {(t1 - t0) / max(t2 - t1, 1e-9):.1f}x")

    from cnn_core.plot import plot_image_grid
    titles = [f"{k} ({probs[i, k]:.2f})" + ("" if k == t[i] else f" ≠{t[i]}")
              for i, k in enumerate(probs.argmax(axis=1))]
    _common.saved(plot_image_grid(x[:args.show].reshape(-1, 28, 28),
                                  _common.figure_path(args, "mnist_inference.png"),
                                  titles=titles, ncols=10, cell=1.2,
                                  title="predicted digit (probability); ≠ marks a wrong one"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
