"""OpenMP for the Python side: whether the kernels were built threaded, and a team that
runs Python callables (the batch chunks of :mod:`cnn_core._workers`)."""
from cython.parallel cimport prange

include "_omp.pxi"


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(cc_omp_enabled())


def omp_max_threads():
    """The OpenMP runtime's default team size (honours OMP_NUM_THREADS); 1 without OpenMP."""
    return int(cc_omp_max_threads())


def _call(fn, Py_ssize_t i, list errors):
    try:
        fn(i)
    except BaseException as exc:      # re-raised by run_team once every thread is done
        errors.append(exc)


def run_team(fn, Py_ssize_t n_chunks):
    """Call ``fn(i)`` for ``i`` in ``range(n_chunks)``, each on its own thread of an OpenMP
    team (the calling thread takes ``i = 0``); the first exception raised is re-raised.

    The batch chunks run on the same threads as the compiled kernels: a thread that has
    just finished a kernel's region is still spinning (the OpenMP runtime's wait policy)
    and starts a chunk in about 2 us, where a sleeping thread pool took about 55 us to
    wake here, and two pools of threads never compete for the cores.  ``fn`` takes the
    GIL for its Python parts and should release it for its heavy ones."""
    cdef Py_ssize_t i
    cdef list errors = []
    if not 1 <= n_chunks <= 1024:     # libgomp aborts or overflows its stack on huge teams
        raise ValueError(f"n_chunks must be in [1, 1024], got {n_chunks}")
    with nogil:
        for i in prange(n_chunks, schedule='static', chunksize=1, num_threads=n_chunks):
            with gil:
                _call(fn, i, errors)
    if errors:
        raise errors[0]
