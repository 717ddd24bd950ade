"""Batch-parallel execution of the GEMM-heavy layers.

A convolution's work splits into independent samples.  Instead of asking BLAS
for threads inside every small GEMM (which, on few cores, fights the kernels'
OpenMP threads and stalls on a busy machine), the batch is cut into one
contiguous chunk per thread and each chunk runs im2col, its GEMMs and col2im
on one core, with BLAS single-threaded for the duration.  Every sample is
computed by the same sequence of operations whatever the chunking, so results
do not depend on the thread count.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from . import _parallel

#: chunks run on the kernels' OpenMP team when the kernels were built with OpenMP
#: (:func:`cnn_core._parallel.run_team`), else on a pool of Python threads
_USE_TEAM = _parallel.openmp_enabled()

_lock = threading.Lock()
_pool = None
_pool_size = 0
_blas = None


def _reset_after_fork():
    global _pool, _pool_size, _blas
    _pool, _pool_size, _blas = None, 0, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _get_pool(n_workers):
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < n_workers:
            # A larger pool replaces the old one, which is not shut down: another thread may
            # hold it and be about to submit.  Its idle workers exit once it is collected.
            _pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="cnn_core")
            _pool_size = n_workers
        return _pool


def _blas_controllers():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:  # threadpoolctl cannot see this BLAS: leave it alone
            _blas = []
    return _blas


@contextmanager
def blas_single_thread():
    """BLAS on one thread inside the block (the previous counts are restored)."""
    saved = []
    for lib in _blas_controllers():
        n = lib.get_num_threads()
        if n and n > 1:
            lib.set_num_threads(1)
            saved.append((lib, n))
    try:
        yield
    finally:
        for lib, n in saved:
            lib.set_num_threads(n)


def split_bounds(n_items, count):
    """Boundaries of ``[0, n_items)`` cut into ``count`` (at most n_items, at least 1)
    contiguous parts of near-equal size: ``[0, ..., n_items]``."""
    count = max(1, min(count, n_items))
    return [n_items * i // count for i in range(count + 1)]


def run_chunks(fn, n_items, n_threads):
    """Call ``fn(start, stop)`` over ``[0, n_items)`` cut into ``n_threads`` contiguous chunks,
    concurrently (the calling thread takes the first chunk; an exception in any chunk is
    raised once all have finished).  ``fn`` must release the GIL
    for its heavy parts and write only its own slice of any output."""
    bounds = split_bounds(n_items, n_threads)
    n_chunks = len(bounds) - 1
    with blas_single_thread():
        if n_chunks == 1:
            fn(0, n_items)
            return
        if _USE_TEAM:
            _parallel.run_team(lambda i: fn(bounds[i], bounds[i + 1]), n_chunks)
            return
        pool = _get_pool(n_chunks - 1)
        futures = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, n_chunks)]
        try:
            fn(bounds[0], bounds[1])
        finally:
            for f in futures:
                f.result()
