"""Chapter 5: training TwoLayerNet 784-50-10 on MNIST with backpropagation.

The book's ch05 train_neuralnet: 10,000 SGD steps (lr 0.1, batch 100) over the 60,000
training images, accuracy on the train and test sets every epoch (600 steps).  The same
loop as ``ch04_two_layer_net.py`` (``--gradient numerical`` works here too, slowly).

    python examples/ch05_two_layer_net.py
    python examples/ch05_two_layer_net.py --iters 2000 --hidden 100
"""
import sys

import _common
from ch04_two_layer_net import add_arguments, train


def main(argv=None):
    p = _common.make_parser(__doc__.splitlines()[0], data=True)
    add_arguments(p, gradient="backprop", hidden=50, downsample_k=1, iters=10000,
                  train_size=0, test_size=0)
    args = _common.parse(p, argv, quick={"iters": 300, "train_size": 5000, "test_size": 1000})
    with _common.threads(args.threads):
        train(args, "two_layer_net_backprop.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
