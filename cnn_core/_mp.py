"""The one way cnn_core starts worker processes: a fork-safe multiprocessing context.

With GCC's libgomp (the OpenMP runtime of the Linux wheels), a child made by a
plain ``fork()`` after the parent has run an OpenMP parallel region inherits the
runtime's state but not its worker threads, and can hang the first time it
enters a parallel region itself.  "forkserver" (where the platform has it) and
"spawn" start each worker from a fresh interpreter, so the kernels are safe to
call in the workers whatever the parent did before.

Anything in cnn_core that starts processes takes its context from here::

    from cnn_core._mp import get_context
    with get_context().Pool(2) as pool:
        ...

(``concurrent.futures.ProcessPoolExecutor(mp_context=get_context())`` likewise.)
"""
import multiprocessing

__all__ = ["get_context", "START_METHOD"]

#: The start method used: "forkserver" on POSIX systems that have it, else "spawn" (Windows).
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def get_context():
    """A multiprocessing context that never plain-forks a process that may have used OpenMP."""
    return multiprocessing.get_context(START_METHOD)
