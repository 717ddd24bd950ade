"""cnn_core: the networks of *Deep Learning from Scratch*, fast on the CPU."""
__version__ = "0.1.0"

from ._threads import get_num_threads, openmp_enabled, set_num_threads
from . import functional

__all__ = ["__version__", "get_num_threads", "set_num_threads", "openmp_enabled", "functional"]
