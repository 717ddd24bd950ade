"""Thread control for the OpenMP kernels.

The default is the OpenMP runtime's default team size (all cores, or
OMP_NUM_THREADS when set).  Kernels never call BLAS from inside a parallel
region: GEMMs run between kernel calls, in NumPy, with BLAS's own threads.
"""
import operator

from . import _parallel

#: the most threads a kernel may ask for: libgomp aborts the process, or overflows the
#: stack (it allocas per-thread data), when a team cannot be created (n_threads=10**5)
MAX_THREADS = 1024

_num_threads = min(MAX_THREADS, max(1, _parallel.omp_max_threads()))


def openmp_enabled():
    """True when the compiled kernels were built with OpenMP (threaded)."""
    return _parallel.openmp_enabled()


def get_num_threads():
    """Number of OpenMP threads the kernels use."""
    return _num_threads


def set_num_threads(n):
    """Set the number of OpenMP threads the kernels use (an int >= 1); returns the previous value."""
    global _num_threads
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an int >= 1, got {n!r}") from None
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be an int in [1, {MAX_THREADS}], got {n!r}")
    previous, _num_threads = _num_threads, n
    return previous
