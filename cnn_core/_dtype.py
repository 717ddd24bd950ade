"""The one dtype rule of cnn_core.

float32 and float64 arrays keep their dtype; float16 is promoted to float32;
every other real numeric input (bool, integers, Python lists of numbers) is
converted to float64.  Complex, object, string and other non-numeric input is
refused with a TypeError naming the argument.
"""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def result_float_dtype(dtype):
    """The float dtype that the rule above maps ``dtype`` to (None if refused)."""
    dtype = np.dtype(dtype)
    if dtype in FLOAT_DTYPES:
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "biu" or (dtype.kind == "f"):
        return np.dtype(np.float64)
    return None


def as_float_array(x, name="x", dtype=None):
    """``x`` as a C-contiguous float32/float64 ndarray (copying only when needed).

    With ``dtype`` given, the result has that dtype; otherwise the rule above.
    """
    arr = np.asarray(x)
    target = result_float_dtype(arr.dtype)
    if target is None:
        raise TypeError(
            f"{name} must be a real numeric array (float32/float64, or ints/bools/float16 "
            f"which are converted), got dtype {arr.dtype}"
        )
    if dtype is not None:
        target = np.dtype(dtype)
        if target not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return np.asarray(arr, dtype=target, order="C")


def check_dtype(dtype, name="dtype"):
    """Validate a user-facing dtype argument: float32 or float64 only."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if d not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}")
    return d
