"""Keep freed memory in the process between training steps (glibc only).

A training step allocates and frees the same large arrays every time.  glibc's
malloc hands memory above its trim threshold back to the kernel when it is freed,
so the next step faults every page in again: measured ~950 minor page faults per
SimpleConvNet step, and the step at 4.6-5.2 ms instead of 7.4-15.6 ms once they were
gone.  :func:`keep_freed_memory` raises the trim threshold (and fixes the mmap
threshold at glibc's 64-bit maximum, since setting one stops glibc adjusting it) and
the top pad.
The cost: after a large step, up to that step's peak stays in the process's heap,
which is what a training loop reuses anyway.

Called once, when cnn_core is imported; ``CNN_CORE_KEEP_MEMORY=0`` turns it off.
Other C libraries (macOS, Windows, musl) are left alone.
"""
import ctypes
import os
import platform
import threading

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30          # keep up to 1 GiB of freed heap
MMAP_THRESHOLD = 32 << 20         # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TOP_PAD = 64 << 20                # grow the heap in large steps (16 MiB still left ~75
                                  # faults per SimpleConvNet step, 64 MiB none)

_lock = threading.Lock()
_state = None     # None: not tried yet; else the description for `cnn-core info`


def keep_freed_memory():
    """Apply the setting once per process; returns a one-line description of the result."""
    global _state
    if _state is not None:
        return _state
    with _lock:
        if _state is None:
            _state = _apply()
    return _state


def _apply():
    if os.environ.get("CNN_CORE_KEEP_MEMORY", "1") == "0":
        return "off (CNN_CORE_KEEP_MEMORY=0)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not applicable (not glibc)"
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        ok = (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
              and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
              and mallopt(M_TOP_PAD, TOP_PAD) == 1)
    except (OSError, AttributeError):
        ok = False
    return ("on (glibc keeps up to 1 GiB of freed heap; CNN_CORE_KEEP_MEMORY=0 turns it off)"
            if ok else "not applied (mallopt refused)")
