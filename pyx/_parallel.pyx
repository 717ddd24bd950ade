"""OpenMP facts for the Python side: whether the kernels were built threaded."""
include "_omp.pxi"


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(cc_omp_enabled())


def omp_max_threads():
    """The OpenMP runtime's default team size (honours OMP_NUM_THREADS); 1 without OpenMP."""
    return int(cc_omp_max_threads())
