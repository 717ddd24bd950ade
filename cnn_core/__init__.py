"""cnn_core: the networks of *Deep Learning from Scratch*, fast on the CPU.

Typed Cython kernels (im2col/col2im, pooling, BatchNorm) under pure-Python
layers, a :class:`Sequential` network with the book's methods (``predict``,
``loss``, ``accuracy``, ``gradient``) and the book's optimizers.
"""
__version__ = "0.1.0"

# OpenMP: the runtime's own wait policy (unless the user set one).  Everything parallel in
# cnn_core, the compiled kernels and the batch chunks that call BLAS, runs on one OpenMP
# team, so its threads spinning a few ms after a region steal no core from another pool of
# ours, and they pick up the next region in ~2 us instead of ~60 us asleep (SimpleConvNet
# step at 2 threads 4.3 -> 3.8 ms, A/B).  OMP_WAIT_POLICY=PASSIVE makes them sleep at once.

from ._memory import keep_freed_memory as _keep_freed_memory

# glibc: keep freed heap in the process, so that training steps stop faulting pages in
# (see cnn_core._memory; CNN_CORE_KEEP_MEMORY=0 turns it off).  Done at import, before
# the heap fills: applied later it measured less effective.
_keep_freed_memory()

from ._threads import get_num_threads, openmp_enabled, set_num_threads
from . import datasets, functional, functions, layers, optim
from .gradcheck import gradient_check
from .models import DeepConvNet, MultiLayerNet, MultiLayerNetExtend, SimpleConvNet, TwoLayerNet
from .network import Sequential
from ._serialize import load_model
from .trainer import Trainer

__all__ = [
    "__version__", "get_num_threads", "set_num_threads", "openmp_enabled", "functional",
    "functions", "layers", "optim", "datasets", "Trainer", "gradient_check", "Sequential", "load_model",
    "TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet", "DeepConvNet",
]
