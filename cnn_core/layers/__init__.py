"""Layers: the book's classes (same constructor signatures) and size-built variants."""
from .activation import Relu, Sigmoid, Tanh
from .base import Layer
from .batchnorm import BatchNormalization
from .conv import Conv2D, Convolution
from .dense import Affine, Dense
from .dropout import Dropout
from .flatten import Flatten
from .loss import SoftmaxWithLoss
from .pool import AvgPooling, Pooling
from .simple import AddLayer, MulLayer

#: every class a saved network may name (used to rebuild architectures from files)
LAYER_CLASSES = {cls.__name__: cls for cls in (
    Relu, Sigmoid, Tanh, BatchNormalization, Conv2D, Convolution, Affine, Dense, Dropout,
    Flatten, AvgPooling, Pooling)}

__all__ = ["Layer", "Relu", "Sigmoid", "Tanh", "BatchNormalization", "Conv2D", "Convolution",
           "Affine", "Dense", "Dropout", "Flatten", "SoftmaxWithLoss", "AvgPooling", "Pooling",
           "AddLayer", "MulLayer", "LAYER_CLASSES"]
