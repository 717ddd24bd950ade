"""Property-based fuzzing of cnn_core.functional and of the layers that reach compiled code.

Run by ``tests/test_fuzz.py`` in a child process (``sys.executable _fuzz_worker.py ...``
from a temporary working directory), so that a segfault or abort in a kernel kills this
process and the parent reports the signal, instead of the test run dying.  Never run it
with the repository root as working directory: the uncompiled source tree would shadow
the installed package.

Each property draws random arguments -- shapes (zero-size, batch 1, wrong ndim, windows
larger than the input, huge or absurd stride/pad/window, mismatched channels), dtypes
(float16/32/64, ints, bool, complex, object, str), values (ties, NaN, +-inf) and layouts
(Fortran, transposed, strided, negative-stride, read-only, broadcast, nested lists) -- and
an *oracle* written from the documented rules (README "Conventions", functional.py's
docstrings) lists what is wrong with the call.  Then either

* nothing is wrong: the call must succeed and match the slow reference of
  ``tests/_reference.py`` (only shape and dtype are checked where the reference would take
  too long or need an absurd padded array), or
* something is wrong: the call must raise ``ValueError``/``TypeError`` whose message names
  one of the arguments at fault (the exact class too when only one rule is broken).

Protocol: ``START <property>`` on stderr before each property, so that a crash is
attributed, and ``EXAMPLES <property> <n>`` every 25 examples; one JSON object per property
on stdout (``property``, ``examples``, ``calls``,
``outcomes``, ``seconds``, ``failure``).  Exit status 0 when every property held, 1
otherwise; death by a signal when a kernel crashed.

    python _fuzz_worker.py [--max-examples N] [--derandomize] [PROPERTY ...]
"""
import argparse
import collections
import faulthandler
import json
import math
import operator
import re
import sys
import time
import traceback
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import cnn_core
from cnn_core import functional as F
from cnn_core.layers import AvgPooling, BatchNormalization, Convolution, Pooling

import _reference as R

MAXSIZE = sys.maxsize                      # Py_ssize_t: what the kernels index with
MAX_THREADS = getattr(F, "MAX_THREADS", 2**31 - 1)
MEMORY_BUDGET = 1 << 28                    # above this many bytes a MemoryError is acceptable
REF_BUDGET = 30_000                        # inner-loop steps the slow references may take
ADDRESS_SPACE_LIMIT = 4 << 30              # RLIMIT_AS of this process: no case may thrash

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


# ============================================================================ bookkeeping
class Tally:
    """Counts for the property being run: examples drawn, library calls, their outcomes."""

    def __init__(self):
        self.examples = 0
        self.calls = 0
        self.outcomes = collections.Counter()


TALLY = Tally()
REJECTED = object()    # what check_call returns for a call that raised as expected

# An error inside a ``noexcept nogil`` kernel helper cannot propagate: Cython reports it as
# "unraisable" and the kernel carries on.  In a bounds-checked build (tools/debug_build.sh)
# that is how an out-of-bounds index shows up, so every one fails the case that caused it.
UNRAISABLE = []


def _record_unraisable(info):
    UNRAISABLE.append(f"{type(info.exc_value).__name__}: {info.exc_value} "
                      f"(in {info.object!r:.120})")

# Words that count as naming an argument in an error message (the message of a window that
# does not fit says "kernel 9x9 is larger..." or "pooling window 9x9 ...").
ALIASES = {
    "kernel_h": ("kernel_h", "kernel"), "kernel_w": ("kernel_w", "kernel"),
    "pool_h": ("pool_h", "pooling window"), "pool_w": ("pool_w", "pooling window"),
    "W": ("W", "kernel"), "running_mean": ("running_mean", "mean"),
    "running_var": ("running_var", "var"),
}


def _names_in(message, name):
    return any(re.search(rf"(?<![\w.]){re.escape(alias)}(?!\w)", message)
               for alias in ALIASES.get(name, (name,)))


class Oracle:
    """What is wrong with one call: a list of (exception class, argument names) per broken rule.

    ``big`` marks a valid call whose result is too large for this machine: MemoryError is
    then an acceptable answer too.
    """

    def __init__(self):
        self.culprits = []
        self.big = False

    def bad(self, exc, *names):
        self.culprits.append((exc, names))

    @property
    def valid(self):
        return not self.culprits

    def names(self):
        return sorted({n for _, names in self.culprits for n in names})


def check_call(oracle, call):
    """Run ``call`` and hold it to ``oracle``: its result, or REJECTED after a proper error."""
    TALLY.calls += 1
    del UNRAISABLE[:]
    try:
        result = call()
    except (ValueError, TypeError) as exc:
        if oracle.valid:
            raise AssertionError(f"a valid call raised {type(exc).__name__}: {exc}") from exc
        message = str(exc)
        if not any(_names_in(message, n) for n in oracle.names()):
            raise AssertionError(f"{type(exc).__name__}({message!r}) names none of the "
                                 f"arguments at fault {oracle.names()}") from exc
        if len(oracle.culprits) == 1 and not isinstance(exc, oracle.culprits[0][0]):
            raise AssertionError(f"expected {oracle.culprits[0][0].__name__} naming "
                                 f"{oracle.names()}, got {type(exc).__name__}({message!r})")
        TALLY.outcomes["rejected"] += 1
        return REJECTED
    except MemoryError:
        if oracle.valid and oracle.big:
            TALLY.outcomes["memory_error"] += 1
            return REJECTED
        raise
    except Exception as exc:
        raise AssertionError(f"expected success or ValueError/TypeError naming "
                             f"{oracle.names() or '(valid call)'}, got "
                             f"{type(exc).__name__}: {exc}") from exc
    if UNRAISABLE:
        raise AssertionError(f"the kernel reported errors it could not raise: {UNRAISABLE}")
    if not oracle.valid:
        raise AssertionError(f"the call succeeded, but the oracle expected an error naming one "
                             f"of {oracle.names()} ({oracle.culprits})")
    TALLY.outcomes["accepted"] += 1
    return result


def compared(ok):
    TALLY.outcomes["matched_reference" if ok else "checked_shape_only"] += 1
    return ok


# ============================================================================ rules (oracle)
def float_dtype(value):
    """The dtype cnn_core computes ``value`` in (README "Conventions"), None if refused."""
    d = np.asarray(value).dtype
    if d in (F32, F64):
        return d
    if d == np.float16:
        return F32
    if d.kind in "biuf":
        return F64
    return None


def dtype_rule(o, name, value):
    d = float_dtype(value)
    if d is None:
        o.bad(TypeError, name)
    return d


def common_dtype_rule(o, **arrays):
    dtypes = [dtype_rule(o, name, value) for name, value in arrays.items()]
    # (not ``None in dtypes``: np.dtype("float64") == None is True)
    return None if any(d is None for d in dtypes) else np.result_type(*dtypes)


def int_rule(o, name, value, minimum):
    """An int (not a bool) >= minimum and <= Py_ssize_t's max (the kernels index with it)."""
    if isinstance(value, (bool, np.bool_)):
        o.bad(TypeError, name)
        return None
    try:
        v = operator.index(value)
    except TypeError:
        o.bad(TypeError, name)
        return None
    if v < minimum or v > MAXSIZE:
        o.bad(ValueError, name)
        return None
    return v


def layer_int_rule(o, name, value, minimum):
    """Layer constructors: ints or NumPy integers, no bools (the upper bound comes later)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        o.bad(TypeError, name)
        return None
    if value < minimum:
        o.bad(ValueError, name)
        return None
    return int(value)


def threads_rule(o, n_threads):
    if n_threads is None:
        return
    v = int_rule(o, "n_threads", n_threads, 1)
    if v is not None and v > MAX_THREADS:
        o.bad(ValueError, "n_threads")


def ndim_rule(o, name, value, ndims):
    shape = np.shape(value)
    if len(shape) not in ndims:
        o.bad(ValueError, name)
        return None
    return shape


def nonempty_rule(o, name, shape):
    if shape is not None and 0 in shape:
        o.bad(ValueError, name)
        return None
    return shape


def shape4_rule(o, name, value):
    try:
        shape = tuple(operator.index(s) for s in value)
    except TypeError:
        o.bad(TypeError, name)
        return None
    if len(shape) != 4 or min(shape) < 1 or math.prod(shape) * 8 > MAXSIZE:
        o.bad(ValueError, name)
        return None
    return shape


def window_rule(o, x_shape, kh, kw, stride, pad, names, pooling=False):
    """(out_h, out_w) of a window sliding over the padded input, or None (culprit recorded)."""
    if None in (x_shape, kh, kw, stride, pad):
        return None
    _, _, height, width = x_shape
    if pooling and (pad >= kh or pad >= kw):
        o.bad(ValueError, "pad")
        return None
    if height + 2 * pad > MAXSIZE or width + 2 * pad > MAXSIZE:    # C index arithmetic
        o.bad(ValueError, "pad", names[-1])
        return None
    if kh > height + 2 * pad or kw > width + 2 * pad:
        o.bad(ValueError, *names)
        return None
    out_h, out_w = (height + 2 * pad - kh) // stride + 1, (width + 2 * pad - kw) // stride + 1
    # every window cell visited (im2col's size, average pooling's divisor) must be addressable
    if math.prod(x_shape[:2] + (out_h, out_w, kh, kw, 8)) > MAXSIZE:
        o.bad(ValueError, "stride", *names)
        return None
    return out_h, out_w


def make_out(kind, shape, dtype):
    """An ``out=`` argument for im2col: right, or wrong in one way."""
    if kind == "list":
        return [[0.0]]
    if kind == "dtype":
        return np.empty(shape, F32 if dtype == F64 else F64)
    if kind == "shape":
        return np.empty((shape[0] + 1, shape[1]), dtype)
    out = np.full(shape, 7, dtype, order="F" if kind == "F" else "C")
    out.setflags(write=kind != "readonly")
    return out


def out_rule(o, out):
    """im2col's ``out``: a writeable C-contiguous ndarray of the result's shape and dtype."""
    if not isinstance(out, np.ndarray):
        o.bad(TypeError, "out")
    elif (out.shape != o.out_shape or out.dtype != o.out_dtype or not out.flags.c_contiguous
          or not out.flags.writeable):
        o.bad(ValueError, "out")


def alloc_rule(o, shape, itemsize, names):
    """An output of ``shape`` must be addressable (else a ValueError naming ``names``)."""
    nbytes = math.prod(shape) * itemsize
    if nbytes > MAXSIZE:
        o.bad(ValueError, *names)
        return False
    if nbytes > MEMORY_BUDGET:
        o.big = True
    return True


# ============================================================================ strategies
MAXSIZE_EXTREMES = [2**62, MAXSIZE]
KERNEL_EXTREMES = [5, 6, 8, 9, np.int64(3), 2**31, 2**32] + MAXSIZE_EXTREMES
# (strides at the very top of Py_ssize_t are where ``a + stride - 1`` style arithmetic
# overflows: weighted up)
STRIDE_EXTREMES = [4, 7, np.uint8(2), MAXSIZE - 1, MAXSIZE - 2] + MAXSIZE_EXTREMES + [MAXSIZE]
PAD_EXTREMES = [3, 4, 8, np.int32(1), 2**31 - 1, 2**61] + MAXSIZE_EXTREMES
BAD_INTS = [0, -1, -(2**63), True, False, 2.0, 1.5, None, "2", np.float32(2),
            2**63, 2**64, 10**30, np.uint64(2**63)]
BAD_THREADS = [0, -1, True, 1.5, "2", MAX_THREADS + 1, 10**5, 2**31, 2**64]


def weighted(*pairs):
    """One of several strategies, picked with the given integer weights."""
    total = sum(w for w, _ in pairs)

    def pick(k):
        for w, s in pairs:
            if k < w:
                return s
            k -= w
        raise AssertionError

    return st.integers(0, total - 1).flatmap(pick)


# Half the examples are *hostile* (every argument may be extreme, of a refused dtype or
# shape); the others draw legitimate arguments only, so that enough calls get as far as the
# kernels and the references.  The flag is drawn first and shrinks towards "legitimate".
HOSTILE = [True]


def hostile_or(normal, hostile):
    """``hostile`` in a hostile example, else ``normal`` (decided when drawn)."""
    return st.just(None).flatmap(lambda _: hostile if HOSTILE[0] else normal)


def hyper(low, high, extremes):
    normal = st.integers(low, high)
    return hostile_or(normal, weighted((15, normal), (4, st.sampled_from(extremes)),
                                       (2, st.sampled_from(BAD_INTS))))


KERNELS = hyper(1, 4, KERNEL_EXTREMES)
STRIDES = hyper(1, 3, STRIDE_EXTREMES)
PADS = hyper(0, 2, PAD_EXTREMES)
N_THREADS = hostile_or(weighted((3, st.none()), (1, st.integers(1, 3))),
                       weighted((12, st.none()), (4, st.integers(1, 3)),
                                (4, st.sampled_from(BAD_THREADS))))

GOOD_DTYPES = ["float32"] * 6 + ["float64"] * 6 + ["float16", "float16", "int64", "int8",
                                                    "uint8", "bool"]
BAD_DTYPES = ["complex128", "complex64", "object", "str"]
LAYOUTS = ["C"] * 6 + ["F", "transposed", "strided", "negative", "readonly", "broadcast",
                       "list"]
TIES = [-2.0, -0.5, 0.0, 0.5, 1.0, 3.0]
SPECIALS = [np.nan, np.inf, -np.inf]


@st.composite
def shapes(draw, ndims=(4,), batch=(1, 3), channels=(1, 3), size=(1, 7)):
    """An ndims-D shape with small dims; in hostile examples 1 in 20 has a zero dim and 1 in
    20 another ndim."""
    kind = draw(st.integers(0, 19)) if HOSTILE[0] else 19
    ndim = draw(st.sampled_from(ndims))
    if kind == 0:
        ndim = draw(st.sampled_from([n for n in (0, 1, 2, 3, 4, 5) if n not in ndims]))
        return tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    shape = [draw(st.integers(*batch)), draw(st.integers(*channels))]
    shape += [draw(st.integers(*size)) for _ in range(ndim - 2)]
    if kind == 1:
        shape[draw(st.integers(0, ndim - 1))] = 0
    return tuple(shape)


def _cast(base, dtype):
    """float64 ``base`` (exact in float16) as ``dtype``."""
    if dtype == "bool":
        return base > 0
    if dtype in ("int64", "int8", "uint8"):
        ints = np.round(np.nan_to_num(base, nan=0.0, posinf=7.0, neginf=-7.0))
        return (np.abs(ints) if dtype == "uint8" else ints).astype(dtype)
    if dtype.startswith("complex"):
        return (base + 0.5j).astype(dtype)
    if dtype == "object":
        return base.astype(object)
    if dtype == "str":
        return base.astype(str)
    return base.astype(dtype)


def _layout(a, layout):
    """``a`` (or, for "broadcast", ``a`` with every sample equal to the first) in ``layout``."""
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "transposed" and a.ndim >= 2:
        return a.T.copy().T
    if layout == "strided" and a.ndim >= 1:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "negative" and a.ndim >= 1:
        return np.flip(np.flip(a).copy())
    if layout == "readonly":
        b = a.copy()
        b.setflags(write=False)
        return b
    if layout == "broadcast" and a.ndim >= 1 and a.shape[0] > 0:
        return np.broadcast_to(a[:1], a.shape)
    if layout == "list":
        return a.tolist()
    return np.ascontiguousarray(a)


@st.composite
def arrays(draw, shape, bad_dtypes=True, nonfinite=True, dtype=None, low=-4.0):
    """An array-like of ``shape``: random dtype, values (ties, NaN, inf) and memory layout."""
    elements = st.sampled_from([t for t in TIES if t >= low]) | st.floats(low, 4, width=16)
    if nonfinite:
        elements = elements | st.sampled_from(SPECIALS if low < 0 else SPECIALS[:2])
    base = draw(hnp.arrays(np.float64, shape, elements=elements))
    if dtype is None:
        bad = bad_dtypes and HOSTILE[0]
        dtype = draw(st.sampled_from(GOOD_DTYPES + (BAD_DTYPES if bad else [])))
    return _layout(_cast(base, dtype), draw(st.sampled_from(LAYOUTS)))


def as_float(value, dtype):
    """What the reference computes on: the logical value of ``value`` in ``dtype``."""
    return np.array(np.asarray(value), dtype=dtype)


# ============================================================================ checks
def assert_close(actual, ref, dtype, what, absref=None, n_terms=1):
    """``actual`` equals ``ref`` where ref is not finite (NaN, +-inf alike), and elsewhere
    within a rounding bound for a sum of ``n_terms`` terms of magnitude ``absref``."""
    actual = np.asarray(actual, np.float64)
    ref = np.asarray(ref, np.float64)
    assert actual.shape == ref.shape, f"{what}: shape {actual.shape} != reference {ref.shape}"
    special = ~np.isfinite(ref)
    if special.any():
        np.testing.assert_array_equal(actual[special], ref[special],
                                      err_msg=f"{what}: NaN/inf entries differ")
    scale = np.abs(ref) if absref is None else np.abs(np.asarray(absref, np.float64))
    info = np.finfo(dtype)
    bound = 8.0 * info.eps * (n_terms + 1) * scale + info.tiny
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(actual - ref)
    bad = ~special & ~(err <= bound)
    assert not bad.any(), (f"{what}: {int(bad.sum())} entries off the reference, worst "
                           f"{float(err[bad].max()):.3g} (bound {float(bound[bad].min()):.3g})")


def check_result(result, shape, dtype, what):
    assert isinstance(result, np.ndarray), f"{what}: got {type(result).__name__}"
    assert result.shape == tuple(shape), f"{what}: shape {result.shape}, expected {shape}"
    assert result.dtype == dtype, f"{what}: dtype {result.dtype}, expected {dtype}"


def padded_cost(x_shape, pad, per_output):
    n, c, h, w = x_shape
    return n * c * (h + 2 * pad) * (w + 2 * pad) + per_output


def finite(*arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


# ============================================================================ properties
PROPERTIES = {}


def prop(fn):
    """Register a property: a Hypothesis test drawing with ``data`` (examples are counted)."""
    @given(st.data())
    def run(data):
        TALLY.examples += 1
        if TALLY.examples % 25 == 0:       # what is known of a property that crashes
            print(f"EXAMPLES {fn.__name__} {TALLY.examples}", file=sys.stderr, flush=True)
        HOSTILE[0] = data.draw(st.booleans(), label="hostile")
        TALLY.outcomes["hostile_examples" if HOSTILE[0] else "legitimate_examples"] += 1
        fn(data.draw)

    run.__name__ = run.__qualname__ = fn.__name__
    PROPERTIES[fn.__name__] = run
    return fn


@prop
def conv_output_size(draw):
    size, kernel = draw(hyper(1, 9, [2**62, MAXSIZE, 10**30])), draw(KERNELS)
    stride, pad = draw(STRIDES), draw(PADS)
    o = Oracle()
    s = int_rule(o, "input_size", size, 1)
    k = int_rule(o, "kernel_size", kernel, 1)
    st_ = int_rule(o, "stride", stride, 1)
    p = int_rule(o, "pad", pad, 0)
    if None not in (s, k, p) and k > s + 2 * p:
        o.bad(ValueError, "kernel_size")
    result = check_call(o, lambda: F.conv_output_size(size, kernel, stride, pad))
    if result is not REJECTED:
        assert result == R.out_size(s, k, st_, p)


@prop
def im2col(draw):
    x = draw(arrays(draw(shapes())))
    kh, kw, stride, pad, n_threads = (draw(KERNELS), draw(KERNELS), draw(STRIDES), draw(PADS),
                                      draw(N_THREADS))
    o = Oracle()
    dt = dtype_rule(o, "x", x)
    x_shape = nonempty_rule(o, "x", ndim_rule(o, "x", x, (4,)))
    kh_, kw_ = int_rule(o, "kernel_h", kh, 1), int_rule(o, "kernel_w", kw, 1)
    s, p = int_rule(o, "stride", stride, 1), int_rule(o, "pad", pad, 0)
    threads_rule(o, n_threads)
    geo = window_rule(o, x_shape, kh_, kw_, s, p, ("kernel_h", "kernel_w", "pad", "x"))
    shape, out = None, None
    if geo and dt is not None:
        n, c = x_shape[:2]
        shape = (n * geo[0] * geo[1], c * kh_ * kw_)
        if alloc_rule(o, shape, dt.itemsize, ("kernel_h", "kernel_w", "stride", "pad", "x")):
            out = draw(weighted((8, st.none()), (4, st.sampled_from(
                ["good", "dtype", "shape", "F", "readonly", "list"]))))
    if out is not None:
        out = make_out(out, shape, dt) if not o.big else None
        o.out_shape, o.out_dtype = shape, dt
        if out is not None:
            out_rule(o, out)
    result = check_call(o, lambda: F.im2col(x, kh, kw, stride, pad, out=out,
                                            n_threads=n_threads))
    if result is REJECTED:
        return
    check_result(result, shape, dt, "im2col")
    if out is not None:
        assert np.shares_memory(result, out), "im2col did not fill out="
    if compared(padded_cost(x_shape, p, math.prod(shape)) < REF_BUDGET):
        np.testing.assert_array_equal(result, R.im2col_ref(as_float(x, dt), kh_, kw_, s, p))


@prop
def col2im(draw):
    x_shape_arg = draw(weighted((14, shapes(size=(1, 6))), (2, st.sampled_from(
        [(1, 1, 2**62, 1), (1, 1, 1, MAXSIZE), (1.0, 1, 2, 2), (2, 2, 2), None, "abcd",
         (1, 0, 3, 3), (np.int64(2), 1, 3, 3)]))))
    kh, kw, stride, pad, n_threads = (draw(KERNELS), draw(KERNELS), draw(STRIDES), draw(PADS),
                                      draw(N_THREADS))
    o = Oracle()
    x_shape = shape4_rule(o, "x_shape", x_shape_arg)
    kh_, kw_ = int_rule(o, "kernel_h", kh, 1), int_rule(o, "kernel_w", kw, 1)
    s, p = int_rule(o, "stride", stride, 1), int_rule(o, "pad", pad, 0)
    threads_rule(o, n_threads)
    geo = window_rule(o, x_shape, kh_, kw_, s, p, ("kernel_h", "kernel_w", "pad", "x_shape"))
    expected = None
    if geo:
        n, c = x_shape[:2]
        expected = (n * geo[0] * geo[1], c * kh_ * kw_)
        if math.prod(expected) > REF_BUDGET:
            expected = None
    if expected is not None:
        cols_shape = draw(weighted((6, st.just(expected)), (1, st.sampled_from(
            [(expected[0] + 1, expected[1]), (expected[0], 0), (math.prod(expected),)]))))
    else:
        cols_shape = draw(st.sampled_from([(3, 4), (1, 1), (0, 2), (4,)]))
    cols = draw(arrays(cols_shape))
    dt = dtype_rule(o, "cols", cols)
    ndim_rule(o, "cols", cols, (2,))
    if geo and np.shape(cols) != (n * geo[0] * geo[1], c * kh_ * kw_):
        o.bad(ValueError, "cols", "x_shape")
    result = check_call(o, lambda: F.col2im(cols, x_shape_arg, kh, kw, stride, pad,
                                            n_threads=n_threads))
    if result is REJECTED:
        return
    check_result(result, x_shape, dt, "col2im")
    c64 = as_float(cols, dt)
    if compared(padded_cost(x_shape, p, c64.size) < REF_BUDGET):
        ref = R.col2im_ref(c64.astype(np.float64), x_shape, kh_, kw_, s, p)
        absref = R.col2im_ref(np.abs(c64.astype(np.float64)), x_shape, kh_, kw_, s, p)
        assert_close(result, ref, dt, "col2im", absref, kh_ * kw_)


@st.composite
def conv_problem(draw, bad=True):
    """x (N, C, H, W), W (FN, C', KH, KW) and b, with C' == C and b's shape mostly right."""
    x_shape = draw(shapes(size=(1, 6)))
    c = x_shape[1] if len(x_shape) > 1 else 1
    n_filters = draw(st.integers(1, 3))
    w_channels = draw(weighted((9, st.just(c)), (1, st.integers(0, 4))))
    w_shape = (n_filters, w_channels, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    if bad:
        w_shape = draw(weighted((18, st.just(w_shape)), (1, st.just(w_shape[:3])),
                                (1, st.just(w_shape[:2] + (0, 2)))))
    b_shape = draw(weighted((9, st.just((n_filters,))), (1, st.sampled_from(
        [(n_filters + 1,), (n_filters, 1), ()]))))
    return (draw(arrays(x_shape, bad_dtypes=bad)), draw(arrays(w_shape, bad_dtypes=bad)),
            draw(arrays(b_shape, bad_dtypes=bad)))


def conv_forward_rules(o, x, W, b, stride, pad):
    """(dtype, x_shape, W_shape, stride, pad, (out_h, out_w)) as far as the rules allow."""
    dt = common_dtype_rule(o, x=x, W=W, b=b)
    x_shape = nonempty_rule(o, "x", ndim_rule(o, "x", x, (4,)))
    w_shape = nonempty_rule(o, "W", ndim_rule(o, "W", W, (4,)))
    if w_shape is not None and np.shape(b) != (w_shape[0],):
        o.bad(ValueError, "b")
    if x_shape and w_shape and x_shape[1] != w_shape[1]:
        o.bad(ValueError, "W", "x")
        x_shape = None
    s, p = int_rule(o, "stride", stride, 1), int_rule(o, "pad", pad, 0)
    geo = None
    if x_shape and w_shape:
        geo = window_rule(o, x_shape, w_shape[2], w_shape[3], s, p, ("W", "pad", "x"))
    if geo and dt is not None:
        cols = (x_shape[0] * geo[0] * geo[1], math.prod(w_shape[1:]))
        if not alloc_rule(o, cols, dt.itemsize, ("x", "W", "stride", "pad")):
            geo = None
    return dt, x_shape, w_shape, s, p, geo


def conv_reference(x, W, b, stride, pad, dt):
    """(out, |out| bound) from the slow reference, in float64."""
    x64, W64, b64 = (as_float(v, dt).astype(np.float64) for v in (x, W, b))
    ref = R.conv2d_ref(x64, W64, b64, stride, pad)
    absref = R.conv2d_ref(np.abs(x64), np.abs(W64), np.abs(b64), stride, pad)
    return ref, absref


@prop
def conv2d_forward(draw):
    x, W, b = draw(conv_problem())
    stride, pad, n_threads = draw(STRIDES), draw(PADS), draw(N_THREADS)
    o = Oracle()
    dt, x_shape, w_shape, s, p, geo = conv_forward_rules(o, x, W, b, stride, pad)
    threads_rule(o, n_threads)
    out = check_call(o, lambda: F.conv2d_forward(x, W, b, stride, pad, n_threads=n_threads))
    if out is REJECTED:
        return
    n_filters, c, kh, kw = w_shape
    check_result(out, (x_shape[0], n_filters) + geo, dt, "conv2d_forward")
    if compared(padded_cost(x_shape, p, out.size * c * kh * kw) < REF_BUDGET):
        ref, absref = conv_reference(x, W, b, s, p, dt)
        assert_close(out, ref, dt, "conv2d_forward", absref, c * kh * kw)


@prop
def conv2d_backward(draw):
    """conv2d_backward(dout, x, W, stride, pad, need_dx): x and W as the forward's."""
    x, W, _ = draw(conv_problem())
    stride, pad, n_threads = draw(STRIDES), draw(PADS), draw(N_THREADS)
    need_dx = draw(st.booleans())
    o = Oracle()
    _, x_shape, w_shape, s, p, geo = conv_forward_rules(o, x, W, np.zeros(np.shape(W)[:1]),
                                                        stride, pad)
    if geo is not None and x_shape[0] * w_shape[0] * geo[0] * geo[1] <= REF_BUDGET:
        good = (x_shape[0], w_shape[0]) + geo
        d_shape = draw(weighted((8, st.just(good)), (1, st.sampled_from(
            [good[:1] + (good[1] + 1,) + good[2:], good[:2] + good[2:][::-1],
             good[:2] + (good[2] + 1, good[3]), good[:3], (0,) + good[1:]]))))
    else:
        d_shape = draw(st.sampled_from([(1, 1, 1, 1), (2, 3, 2, 2), (1, 2)]))
    dout = draw(arrays(d_shape))
    dt = common_dtype_rule(o, dout=dout, x=x, W=W)
    threads_rule(o, n_threads)
    if ndim_rule(o, "dout", dout, (4,)) is not None and geo is not None and (
            d_shape != (x_shape[0], w_shape[0]) + geo):
        o.bad(ValueError, "dout")
    result = check_call(o, lambda: F.conv2d_backward(dout, x, W, stride, pad, need_dx=need_dx,
                                                     n_threads=n_threads))
    if result is REJECTED:
        return
    dx, dW, db = result
    n_filters, c, kh, kw = w_shape
    if need_dx:
        check_result(dx, x_shape, dt, "conv2d_backward dx")
    else:
        assert dx is None
    check_result(dW, w_shape, dt, "conv2d_backward dW")
    check_result(db, (n_filters,), dt, "conv2d_backward db")
    if compared(padded_cost(x_shape, p, np.size(dout) * c * kh * kw) < REF_BUDGET):
        d64, x64, w64 = (as_float(v, dt).astype(np.float64) for v in (dout, x, W))
        dx_ref, dW_ref, db_ref = R.conv2d_backward_ref(d64, x64, w64, s, p)
        dx_abs, dW_abs, db_abs = R.conv2d_backward_ref(np.abs(d64), np.abs(x64), np.abs(w64),
                                                       s, p)
        m = x_shape[0] * geo[0] * geo[1]
        assert_close(dW, dW_ref, dt, "dW", dW_abs, m)
        assert_close(db, db_ref, dt, "db", db_abs, m)
        if need_dx:
            assert_close(dx, dx_ref, dt, "dx", dx_abs, n_filters * kh * kw)


def pool_rules(o, x, pool_h, pool_w, stride, pad, n_threads):
    dt = dtype_rule(o, "x", x)
    x_shape = nonempty_rule(o, "x", ndim_rule(o, "x", x, (4,)))
    ph, pw = int_rule(o, "pool_h", pool_h, 1), int_rule(o, "pool_w", pool_w, 1)
    s, p = int_rule(o, "stride", stride, 1), int_rule(o, "pad", pad, 0)
    threads_rule(o, n_threads)
    geo = window_rule(o, x_shape, ph, pw, s, p, ("pool_h", "pool_w", "pad", "x"), pooling=True)
    if geo and not alloc_rule(o, x_shape[:2] + geo, 8, ("pool_h", "pool_w", "stride", "pad",
                                                         "x")):
        geo = None
    return dt, x_shape, ph, pw, s, p, geo


@prop
def maxpool2d_forward(draw):
    x = draw(arrays(draw(shapes())))
    ph, pw, stride, pad, n_threads = (draw(KERNELS), draw(KERNELS), draw(STRIDES), draw(PADS),
                                      draw(N_THREADS))
    o = Oracle()
    dt, x_shape, ph_, pw_, s, p, geo = pool_rules(o, x, ph, pw, stride, pad, n_threads)
    result = check_call(o, lambda: F.maxpool2d_forward(x, ph, pw, stride, pad,
                                                       n_threads=n_threads))
    if result is REJECTED:
        return
    out, argmax = result
    check_result(out, x_shape[:2] + geo, dt, "maxpool2d_forward out")
    check_result(argmax, x_shape[:2] + geo, np.dtype(np.intp), "maxpool2d_forward argmax")
    assert np.all((argmax >= 0) & (argmax < x_shape[2] * x_shape[3]))
    if compared(padded_cost(x_shape, p, out.size * ph_ * pw_) < REF_BUDGET):
        out_ref, argmax_ref = R.maxpool2d_ref(as_float(x, dt), ph_, pw_, s, p)
        np.testing.assert_array_equal(out, out_ref)
        np.testing.assert_array_equal(argmax, argmax_ref)


@prop
def maxpool2d_backward(draw):
    x_shape = draw(shapes(ndims=(4,), size=(1, 6)).filter(lambda t: len(t) == 4 and 0 not in t))
    pool = draw(st.integers(1, 3))
    geo = window_rule(Oracle(), x_shape, pool, pool, pool, 0, ())
    if geo is None:
        return
    n, c, h, w = x_shape
    plane = h * w
    dout = draw(arrays(draw(weighted((8, st.just((n, c) + geo)), (1, st.sampled_from(
        [(n, c + 1) + geo, (n, c), (0, c) + geo]))))))
    d_shape = np.shape(dout)
    argmax = draw(arrays(d_shape, bad_dtypes=False, nonfinite=False, dtype="int64", low=0))
    argmax = np.minimum(np.asarray(argmax), plane - 1)
    argmax = draw(weighted((8, st.just(argmax)), (1, st.sampled_from(
        ["int32", "plane", "negative", "shape", "list", "readonly", "float"]))))
    x_shape_arg = draw(weighted((8, st.just(x_shape)), (1, st.sampled_from(
        [(n, c, h + 1, w), (n, c, 2**40, 2**40), (n, c, 2**62, 1), (n, c, h), (n, c, h, 0),
         (n, c + 1, h, w)]))))
    n_threads = draw(N_THREADS)
    o = Oracle()
    if isinstance(argmax, str):
        base = np.zeros(d_shape, np.intp)
        argmax = {"int32": base.astype(np.int32), "plane": base + plane,
                  "negative": base - 1, "shape": base[..., :0], "list": base.tolist(),
                  "readonly": _layout(base, "readonly"), "float": base.astype(float)}[argmax]
    dt = dtype_rule(o, "dout", dout)
    ndim_rule(o, "dout", dout, (4,))
    xs = shape4_rule(o, "x_shape", x_shape_arg)
    threads_rule(o, n_threads)
    a = np.asarray(argmax)
    if a.dtype != np.intp or a.shape != d_shape:
        o.bad(ValueError, "argmax", "dout")
    if xs is not None and len(d_shape) == 4:
        if d_shape[:2] != xs[:2]:
            o.bad(ValueError, "dout", "x_shape")
        elif a.dtype == np.intp and a.shape == d_shape and a.size and (
                a.min() < 0 or a.max() >= xs[2] * xs[3]):
            o.bad(ValueError, "argmax")
        alloc_rule(o, xs, dt.itemsize if dt else 8, ("x_shape",))
    result = check_call(o, lambda: F.maxpool2d_backward(dout, argmax, x_shape_arg,
                                                        n_threads=n_threads))
    if result is REJECTED:
        return
    check_result(result, xs, dt, "maxpool2d_backward")
    if compared(math.prod(xs) + a.size < REF_BUDGET):
        d = as_float(dout, dt)
        ref = R.maxpool2d_backward_ref(d.astype(np.float64), a, xs)
        absref = R.maxpool2d_backward_ref(np.abs(d.astype(np.float64)), a, xs)
        assert_close(result, ref, dt, "maxpool2d_backward", absref, a.size)


@prop
def avgpool2d_forward(draw):
    x = draw(arrays(draw(shapes())))
    ph, pw, stride, pad, n_threads = (draw(KERNELS), draw(KERNELS), draw(STRIDES), draw(PADS),
                                      draw(N_THREADS))
    count_include_pad = draw(st.sampled_from([True, False, 0, 1, np.True_]))
    o = Oracle()
    dt, x_shape, ph_, pw_, s, p, geo = pool_rules(o, x, ph, pw, stride, pad, n_threads)
    result = check_call(o, lambda: F.avgpool2d_forward(x, ph, pw, stride, pad, count_include_pad,
                                                       n_threads=n_threads))
    if result is REJECTED:
        return
    check_result(result, x_shape[:2] + geo, dt, "avgpool2d_forward")
    if compared(padded_cost(x_shape, p, result.size * ph_ * pw_) < REF_BUDGET):
        x64 = as_float(x, dt).astype(np.float64)
        ref = R.avgpool2d_ref(x64, ph_, pw_, s, p, bool(count_include_pad))
        absref = R.avgpool2d_ref(np.abs(x64), ph_, pw_, s, p, bool(count_include_pad))
        assert_close(result, ref, dt, "avgpool2d_forward", absref, ph_ * pw_)
    elif finite(np.asarray(x, dtype=dt)):
        assert np.all(np.isfinite(result)), "avgpool2d_forward: finite input, non-finite output"


@prop
def avgpool2d_backward(draw):
    x_shape_arg = draw(weighted((14, shapes(size=(1, 6))), (2, st.sampled_from(
        [(1, 1, 2**62, 1), (1.5, 1, 3, 3), (2, 2, 2), None]))))
    ph, pw, stride, pad, n_threads = (draw(KERNELS), draw(KERNELS), draw(STRIDES), draw(PADS),
                                      draw(N_THREADS))
    count_include_pad = draw(st.booleans())
    o = Oracle()
    xs = shape4_rule(o, "x_shape", x_shape_arg)
    ph_, pw_ = int_rule(o, "pool_h", ph, 1), int_rule(o, "pool_w", pw, 1)
    s, p = int_rule(o, "stride", stride, 1), int_rule(o, "pad", pad, 0)
    threads_rule(o, n_threads)
    geo = window_rule(o, xs, ph_, pw_, s, p, ("pool_h", "pool_w", "pad", "x_shape"),
                      pooling=True)
    if geo and xs[0] * xs[1] * geo[0] * geo[1] <= REF_BUDGET:
        d_shape = draw(weighted((8, st.just(xs[:2] + geo)), (1, st.sampled_from(
            [xs[:2] + (geo[0] + 1, geo[1]), xs[:3]]))))
    else:
        d_shape = draw(st.sampled_from([(1, 1, 1, 1), (2, 1, 2, 2), (1, 3)]))
    dout = draw(arrays(d_shape))
    dt = dtype_rule(o, "dout", dout)
    ndim_rule(o, "dout", dout, (4,))
    if geo and np.ndim(dout) == 4 and np.shape(dout) != xs[:2] + geo:
        o.bad(ValueError, "dout", "x_shape")
    result = check_call(o, lambda: F.avgpool2d_backward(dout, x_shape_arg, ph, pw, stride, pad,
                                                        count_include_pad, n_threads=n_threads))
    if result is REJECTED:
        return
    check_result(result, xs, dt, "avgpool2d_backward")
    if compared(padded_cost(xs, p, np.size(dout) * ph_ * pw_) < REF_BUDGET):
        d64 = as_float(dout, dt).astype(np.float64)
        ref = R.avgpool2d_backward_ref(d64, xs, ph_, pw_, s, p, count_include_pad)
        absref = R.avgpool2d_backward_ref(np.abs(d64), xs, ph_, pw_, s, p, count_include_pad)
        assert_close(result, ref, dt, "avgpool2d_backward", absref, ph_ * pw_)


BN_SHAPES = shapes(ndims=(2, 4), batch=(1, 4), size=(1, 4))


def bn_x_rules(o, name, x):
    shape = nonempty_rule(o, name, ndim_rule(o, name, x, (2, 4)))
    return None if shape is None else shape[1]


@prop
def batchnorm_stats(draw):
    x = draw(arrays(draw(BN_SHAPES)))
    n_threads = draw(N_THREADS)
    o = Oracle()
    dt = dtype_rule(o, "x", x)
    c = bn_x_rules(o, "x", x)
    threads_rule(o, n_threads)
    result = check_call(o, lambda: F.batchnorm_stats(x, n_threads=n_threads))
    if result is REJECTED:
        return
    mean, var = result
    check_result(mean, (c,), F64, "batchnorm_stats mean")
    check_result(var, (c,), F64, "batchnorm_stats var")
    x64 = as_float(x, dt).astype(np.float64)
    per_channel = np.moveaxis(x64, 1, 0).reshape(c, -1)
    ok = np.all(np.isfinite(per_channel), axis=1)
    compared(True)
    if ok.any():
        mean_ref, var_ref = R.batchnorm_stats_ref(x64[:, ok])
        m = per_channel.shape[1]
        spread = np.mean((per_channel[ok] - per_channel[ok][:, :1]) ** 2, axis=1)
        assert_close(mean[ok], mean_ref, F64, "mean", np.mean(np.abs(per_channel[ok]), axis=1), m)
        assert_close(var[ok], var_ref, F64, "var", 4 * spread, m)
    assert not np.any(np.isfinite(mean[~ok]) & np.isfinite(var[~ok])), \
        "a channel holding NaN/inf has finite statistics"


def bn_param_rules(o, c, **params):
    for name, value in params.items():
        if c is not None and np.shape(value) != (c,):
            o.bad(ValueError, name)


@prop
def batchnorm_forward(draw):
    x_shape = draw(BN_SHAPES)
    c = x_shape[1] if len(x_shape) > 1 else 1
    params = {}
    for name in ("gamma", "beta", "mean", "var"):
        shape = draw(weighted((12, st.just((c,))), (1, st.sampled_from([(c + 1,), (c, 1), ()]))))
        params[name] = draw(arrays(shape, nonfinite=False, low=0.0 if name == "var" else -4.0))
    x = draw(arrays(x_shape))
    eps = draw(st.sampled_from([1e-7, 1e-5, 0.0, np.float32(1e-3)] * 3
                               + [-1e-5, np.nan, np.inf, "1e-5", None, [1e-5], 1j]))
    n_threads = draw(N_THREADS)
    o = Oracle()
    dt = common_dtype_rule(o, x=x, gamma=params["gamma"], beta=params["beta"])
    dtype_rule(o, "mean", params["mean"])
    dtype_rule(o, "var", params["var"])
    c_ = bn_x_rules(o, "x", x)
    bn_param_rules(o, c_, **params)
    if isinstance(eps, (str, list, complex, type(None))):
        o.bad(TypeError, "eps")
    elif not (np.isfinite(eps) and eps >= 0):
        o.bad(ValueError, "eps")
    threads_rule(o, n_threads)
    result = check_call(o, lambda: F.batchnorm_forward(x, params["gamma"], params["beta"],
                                                       params["mean"], params["var"], eps,
                                                       n_threads=n_threads))
    if result is REJECTED:
        return
    out, inv_std = result
    check_result(out, np.shape(x), dt, "batchnorm_forward out")
    check_result(inv_std, (c,), F64, "batchnorm_forward inv_std")
    g, b = (as_float(params[k], dt).astype(np.float64) for k in ("gamma", "beta"))
    mean, var = (as_float(params[k], F64) for k in ("mean", "var"))
    if compared(np.all(var + float(eps) > 0)):
        x64 = as_float(x, dt).astype(np.float64)
        ref, inv_ref = R.batchnorm_forward_ref(x64, g, b, mean, var, float(eps))
        assert_close(inv_std, inv_ref, F64, "inv_std")
        shape = (1, c) + (1,) * (x64.ndim - 2)
        scale = np.abs(inv_ref * g).reshape(shape)
        absref = (np.abs(x64) + np.abs(mean).reshape(shape)) * scale + np.abs(b).reshape(shape)
        assert_close(out, ref, dt, "batchnorm_forward", absref, 4)


@prop
def batchnorm_backward(draw):
    x_shape = draw(BN_SHAPES)
    c = x_shape[1] if len(x_shape) > 1 else 1
    x = draw(arrays(x_shape))
    dout = draw(arrays(draw(weighted((8, st.just(x_shape)), (1, st.just(x_shape[:-1] + (2,)))))))
    # the training-mode gradient holds for the batch's own statistics (what the layer passes)
    params = {"gamma": draw(arrays(draw(weighted((12, st.just((c,))), (1, st.just((c + 1,))))),
                                   nonfinite=False))}
    eps = draw(st.sampled_from([1e-3, 1e-2, 1.0]))   # keeps inv_std moderate: tight bounds
    if float_dtype(x) is not None and len(x_shape) in (2, 4) and 0 not in x_shape:
        x64 = np.asarray(x, float_dtype(x)).astype(np.float64)
        axes = (0,) + tuple(range(2, x64.ndim))
        with np.errstate(all="ignore"):
            stats = {"mean": x64.mean(axis=axes), "inv_std": 1 / np.sqrt(x64.var(axis=axes) + eps)}
    else:
        stats = {"mean": np.zeros(c), "inv_std": np.ones(c)}
    for name, value in stats.items():
        params[name] = draw(weighted((12, st.just(value)), (1, st.sampled_from(
            [np.append(value, 1.0), value.astype(complex), np.array(1.0)]))))
    n_threads = draw(N_THREADS)
    o = Oracle()
    dt = common_dtype_rule(o, dout=dout, x=x, gamma=params["gamma"])
    dtype_rule(o, "mean", params["mean"])
    dtype_rule(o, "inv_std", params["inv_std"])
    c_ = bn_x_rules(o, "x", x)
    if np.shape(dout) != np.shape(x):
        o.bad(ValueError, "dout")
    bn_param_rules(o, c_, **params)
    threads_rule(o, n_threads)
    result = check_call(o, lambda: F.batchnorm_backward(dout, x, params["gamma"], params["mean"],
                                                        params["inv_std"], n_threads=n_threads))
    if result is REJECTED:
        return
    dx, dgamma, dbeta = result
    check_result(dx, x_shape, dt, "batchnorm_backward dx")
    check_result(dgamma, (c,), dt, "batchnorm_backward dgamma")
    check_result(dbeta, (c,), dt, "batchnorm_backward dbeta")
    x64, d64 = (as_float(v, dt).astype(np.float64) for v in (x, dout))
    g = as_float(params["gamma"], dt).astype(np.float64)
    mean, inv = (as_float(params[k], F64) for k in ("mean", "inv_std"))
    if compared(finite(x64, d64)):
        bn_backward_check(dx, dgamma, dbeta, d64, x64, g, mean, inv, dt)


def bn_backward_check(dx, dgamma, dbeta, d64, x64, g, mean, inv, dt):
    """The kernels' (dx, dgamma, dbeta) against batchnorm_backward_ref, with sum-sized bounds."""
    dx_ref, dg_ref, db_ref = R.batchnorm_backward_ref(d64, x64, g, mean, inv)
    c = len(mean)
    shape = (1, c) + (1,) * (x64.ndim - 2)
    xhat = (x64 - mean.reshape(shape)) * inv.reshape(shape)
    m = x64.size // c
    axes = tuple(i for i in range(x64.ndim) if i != 1)
    sum_dg = np.sum(np.abs(d64 * xhat), axis=axes)
    sum_db = np.sum(np.abs(d64), axis=axes)
    assert_close(dbeta, db_ref, dt, "dbeta", sum_db, m)
    assert_close(dgamma, dg_ref, dt, "dgamma", sum_dg, m)
    absref = np.abs(g * inv).reshape(shape) * (
        np.abs(d64) + (sum_db / m).reshape(shape) + np.abs(xhat) * (sum_dg / m).reshape(shape))
    assert_close(dx, dx_ref, dt, "dx", absref, m + 4)


# No zeros: a stray read of a neighbouring cell must change the result (padding reads as 0).
NONZERO = st.sampled_from([1.0, -2.0, 0.5, 3.0]) | st.floats(0.25, 4, width=16)


@prop
def windows_at_the_index_limit(draw):
    """Valid tiny problems whose stride sits at the top of Py_ssize_t (pad 0..4): every window
    op against its reference.  Index arithmetic like ``ow*stride`` or ``a + stride - 1``
    overflows here first, and the padded inputs stay small enough for the references."""
    # (Hypothesis favours the first of sampled values and small integers: the ops and pads
    # where index arithmetic is most involved come first)
    op = draw(st.sampled_from(["conv2d_backward", "conv2d_forward", "col2im", "im2col",
                               "avgpool2d_backward", "maxpool2d", "avgpool2d_forward"]))
    pooling = op.startswith(("maxpool", "avgpool"))
    dt = np.dtype(draw(st.sampled_from(["float32", "float64"])))
    n, c, h, w = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 4)),
                  draw(st.integers(1, 4)))
    pad = draw(st.sampled_from([2, 3, 4, 1, 0]))
    kh = draw(st.integers(pad + 1 if pooling else 1, h + 2 * pad))
    kw = draw(st.integers(pad + 1 if pooling else 1, w + 2 * pad))
    stride = draw(st.sampled_from([MAXSIZE] * 4 + [MAXSIZE - 1, MAXSIZE - 2, MAXSIZE - pad,
                                                   2**62, 2**62 + 1, 3 * 2**61, 2**31]))
    x = draw(hnp.arrays(dt, (n, c, h, w), elements=NONZERO))
    oh, ow = R.out_size(h, kh, stride, pad), R.out_size(w, kw, stride, pad)
    o = Oracle()
    if op == "im2col":
        out = check_call(o, lambda: F.im2col(x, kh, kw, stride, pad))
        np.testing.assert_array_equal(out, R.im2col_ref(x, kh, kw, stride, pad))
    elif op == "col2im":
        cols = draw(hnp.arrays(dt, (n * oh * ow, c * kh * kw), elements=NONZERO))
        out = check_call(o, lambda: F.col2im(cols, x.shape, kh, kw, stride, pad))
        ref = R.col2im_ref(cols.astype(np.float64), x.shape, kh, kw, stride, pad)
        absref = R.col2im_ref(np.abs(cols.astype(np.float64)), x.shape, kh, kw, stride, pad)
        assert_close(out, ref, dt, "col2im", absref, kh * kw)
    elif op.startswith("conv2d"):
        f = draw(st.integers(1, 2))
        W = draw(hnp.arrays(dt, (f, c, kh, kw), elements=NONZERO))
        x64, w64 = x.astype(np.float64), W.astype(np.float64)
        if op == "conv2d_forward":
            out = check_call(o, lambda: F.conv2d_forward(x, W, np.zeros(f, dt), stride, pad))
            assert_close(out, R.conv2d_ref(x64, w64, np.zeros(f), stride, pad), dt,
                         "conv2d_forward", R.conv2d_ref(np.abs(x64), np.abs(w64), np.zeros(f),
                                                        stride, pad), c * kh * kw)
        else:
            dout = draw(hnp.arrays(dt, (n, f, oh, ow), elements=NONZERO))
            dx, dW, db = check_call(o, lambda: F.conv2d_backward(dout, x, W, stride, pad))
            d64 = dout.astype(np.float64)
            refs = R.conv2d_backward_ref(d64, x64, w64, stride, pad)
            abss = R.conv2d_backward_ref(np.abs(d64), np.abs(x64), np.abs(w64), stride, pad)
            for name, got, ref, absref, terms in zip(("dx", "dW", "db"), (dx, dW, db), refs,
                                                     abss, (f * kh * kw, n * oh * ow, n * oh * ow)):
                assert_close(got, ref, dt, f"conv2d_backward {name}", absref, terms)
    elif op == "maxpool2d":
        out, argmax = check_call(o, lambda: F.maxpool2d_forward(x, kh, kw, stride, pad))
        out_ref, argmax_ref = R.maxpool2d_ref(x, kh, kw, stride, pad)
        np.testing.assert_array_equal(out, out_ref)
        np.testing.assert_array_equal(argmax, argmax_ref)
        dout = draw(hnp.arrays(dt, out.shape, elements=NONZERO))
        dx = check_call(o, lambda: F.maxpool2d_backward(dout, argmax, x.shape))
        assert_close(dx, R.maxpool2d_backward_ref(dout.astype(np.float64), argmax_ref, x.shape),
                     dt, "maxpool2d_backward", R.maxpool2d_backward_ref(
                         np.abs(dout.astype(np.float64)), argmax_ref, x.shape), out.size)
    else:
        cip = draw(st.booleans())
        x64 = x.astype(np.float64)
        if op == "avgpool2d_forward":
            out = check_call(o, lambda: F.avgpool2d_forward(x, kh, kw, stride, pad, cip))
            assert_close(out, R.avgpool2d_ref(x64, kh, kw, stride, pad, cip), dt, op,
                         R.avgpool2d_ref(np.abs(x64), kh, kw, stride, pad, cip), kh * kw)
        else:
            dout = draw(hnp.arrays(dt, (n, c, oh, ow), elements=NONZERO))
            d64 = dout.astype(np.float64)
            out = check_call(o, lambda: F.avgpool2d_backward(dout, x.shape, kh, kw, stride, pad,
                                                             cip))
            assert_close(out, R.avgpool2d_backward_ref(d64, x.shape, kh, kw, stride, pad, cip),
                         dt, op, R.avgpool2d_backward_ref(np.abs(d64), x.shape, kh, kw, stride,
                                                          pad, cip), kh * kw)
    compared(True)


# ---------------------------------------------------------------------------- layers
@prop
def convolution_layer(draw):
    """Convolution(W, b, stride, pad): construction, forward(x), backward(dout)."""
    x, W, b = draw(conv_problem())
    stride, pad = draw(STRIDES), draw(PADS)
    o = Oracle()
    wdt = dtype_rule(o, "W", W)
    dtype_rule(o, "b", b)
    w_shape = ndim_rule(o, "W", W, (4,))
    b_shape = ndim_rule(o, "b", b, (1,))
    if w_shape and b_shape and b_shape != (w_shape[0],):
        o.bad(ValueError, "b")
    layer_int_rule(o, "stride", stride, 1)
    layer_int_rule(o, "pad", pad, 0)
    layer = check_call(o, lambda: Convolution(W, b, stride, pad))
    if layer is REJECTED:
        return
    # forward: x is cast to W's dtype; then the functional rules (b takes W's dtype too)
    f = Oracle()
    if dtype_rule(f, "x", x) is not None:
        dt, x_shape, w_shape, s, p, geo = conv_forward_rules(f, np.asarray(x, wdt), layer.W,
                                                             layer.b, stride, pad)
    out = check_call(f, lambda: layer.forward(x))
    if out is REJECTED:
        return
    n_filters, c, kh, kw = w_shape
    check_result(out, (x_shape[0], n_filters) + geo, dt, "Convolution.forward")
    if not compared(padded_cost(x_shape, p, out.size * c * kh * kw) < REF_BUDGET):
        return
    ref, absref = conv_reference(np.asarray(x, wdt), layer.W, layer.b, s, p, dt)
    assert_close(out, ref, dt, "Convolution.forward", absref, c * kh * kw)
    # backward
    dout = draw(arrays(draw(weighted((8, st.just(out.shape)), (1, st.sampled_from(
        [out.shape[:3], out.shape[:3] + (out.shape[3] + 1,), (out.shape[0], n_filters + 1)
         + out.shape[2:]]))))))
    g = Oracle()
    dtype_rule(g, "dout", dout)
    ddt = wdt                          # the layer casts dout to its parameters' dtype
    if ndim_rule(g, "dout", dout, (4,)) is not None and np.shape(dout) != out.shape:
        g.bad(ValueError, "dout")
    grads = check_call(g, lambda: layer.backward(dout))
    if grads is REJECTED:
        return
    check_result(grads, x_shape, ddt, "Convolution.backward dx")
    check_result(layer.grads["W"], w_shape, ddt, "Convolution.backward dW")
    d64 = as_float(dout, ddt).astype(np.float64)
    x64 = as_float(np.asarray(x, wdt), ddt).astype(np.float64)
    w64 = layer.W.astype(np.float64)
    dx_ref, dW_ref, db_ref = R.conv2d_backward_ref(d64, x64, w64, s, p)
    dx_abs, dW_abs, db_abs = R.conv2d_backward_ref(np.abs(d64), np.abs(x64), np.abs(w64), s, p)
    m = out.shape[0] * out.shape[2] * out.shape[3]
    assert_close(grads, dx_ref, ddt, "Convolution dx", dx_abs, n_filters * kh * kw)
    assert_close(layer.grads["W"], dW_ref, ddt, "Convolution dW", dW_abs, m)
    assert_close(layer.grads["b"], db_ref, ddt, "Convolution db", db_abs, m)


@prop
def pooling_layer(draw):
    """Pooling / AvgPooling(pool_h, pool_w, stride, pad): construction, forward, backward."""
    cls = draw(st.sampled_from([Pooling, AvgPooling]))
    x = draw(arrays(draw(shapes())))
    ph, pw, stride, pad = draw(KERNELS), draw(KERNELS), draw(STRIDES), draw(PADS)
    o = Oracle()
    ph_, pw_ = layer_int_rule(o, "pool_h", ph, 1), layer_int_rule(o, "pool_w", pw, 1)
    layer_int_rule(o, "stride", stride, 1)
    p_ = layer_int_rule(o, "pad", pad, 0)
    if None not in (ph_, pw_, p_) and p_ >= min(ph_, pw_):
        o.bad(ValueError, "pad")
    layer = check_call(o, lambda: cls(ph, pw, stride, pad))
    if layer is REJECTED:
        return
    f = Oracle()
    dt, x_shape, ph_, pw_, s, p, geo = pool_rules(f, x, ph, pw, stride, pad, None)
    out = check_call(f, lambda: layer.forward(x))
    if out is REJECTED:
        return
    check_result(out, x_shape[:2] + geo, dt, f"{cls.__name__}.forward")
    if not compared(padded_cost(x_shape, p, out.size * ph_ * pw_) < REF_BUDGET):
        return
    x_f = as_float(x, dt)
    if cls is Pooling:
        ref, argmax = R.maxpool2d_ref(x_f, ph_, pw_, s, p)
        np.testing.assert_array_equal(out, ref)
    else:
        ref = R.avgpool2d_ref(x_f.astype(np.float64), ph_, pw_, s, p)
        absref = R.avgpool2d_ref(np.abs(x_f.astype(np.float64)), ph_, pw_, s, p)
        assert_close(out, ref, dt, "AvgPooling.forward", absref, ph_ * pw_)
    dout = draw(arrays(draw(weighted((8, st.just(out.shape)), (1, st.sampled_from(
        [out.shape[:3], out.shape[:2] + (out.shape[2] + 1, out.shape[3])]))))))
    g = Oracle()
    ddt = dtype_rule(g, "dout", dout)
    if ndim_rule(g, "dout", dout, (4,)) is not None and np.shape(dout) != out.shape:
        g.bad(ValueError, "dout", "argmax")
    dx = check_call(g, lambda: layer.backward(dout))
    if dx is REJECTED:
        return
    check_result(dx, x_shape, ddt, f"{cls.__name__}.backward")
    d64 = as_float(dout, ddt).astype(np.float64)
    if cls is Pooling:
        ref = R.maxpool2d_backward_ref(d64, argmax, x_shape)
        absref = R.maxpool2d_backward_ref(np.abs(d64), argmax, x_shape)
    else:
        ref = R.avgpool2d_backward_ref(d64, x_shape, ph_, pw_, s, p)
        absref = R.avgpool2d_backward_ref(np.abs(d64), x_shape, ph_, pw_, s, p)
    assert_close(dx, ref, ddt, f"{cls.__name__}.backward", absref, ph_ * pw_)


def running_stats(layer, c):
    """Copies of the running mean and variance (created lazily: zeros until the first forward)."""
    return tuple(np.zeros(c) if r is None else np.array(r)
                 for r in (layer.running_mean, layer.running_var))


@prop
def batchnorm_layer(draw):
    """BatchNormalization(gamma, beta, momentum, eps): forward (train/inference), backward."""
    c = draw(st.integers(1, 3))
    gamma = draw(arrays(draw(weighted((12, st.just((c,))), (1, st.just((c, 1))))),
                        nonfinite=False))
    beta = draw(arrays(draw(weighted((12, st.just((c,))), (1, st.just((c + 1,))))),
                       nonfinite=False))
    momentum = draw(st.sampled_from([0.9, 0.0, 1.0, 0.5, -0.1, 1.5]))
    eps = draw(st.sampled_from([1e-6, 1e-3, 0.0, -1.0, np.nan]))
    o = Oracle()
    gdt = dtype_rule(o, "gamma", gamma)
    odt = common_dtype_rule(o, gamma=gamma, beta=beta)      # the output's dtype
    if np.ndim(gamma) != 1:
        o.bad(ValueError, "gamma")
    if np.ndim(beta) != 1:
        o.bad(ValueError, "beta")
    if np.ndim(gamma) == np.ndim(beta) == 1 and np.shape(gamma) != np.shape(beta):
        o.bad(ValueError, "beta")
    if not 0 <= momentum <= 1:
        o.bad(ValueError, "momentum")
    if not eps > 0:
        o.bad(ValueError, "eps")
    layer = check_call(o, lambda: BatchNormalization(gamma, beta, momentum, eps=eps))
    if layer is REJECTED:
        return
    x = draw(arrays(draw(weighted((6, shapes(ndims=(2, 4), batch=(1, 4), channels=(c, c),
                                             size=(1, 4))),
                                  (1, shapes(ndims=(2, 4), batch=(1, 4), size=(1, 4)))))))
    f = Oracle()
    if dtype_rule(f, "x", x) is not None:
        shape = ndim_rule(f, "x", x, (2, 4))
        if shape is not None and shape[1] != c:
            f.bad(ValueError, "x", "gamma")
        elif shape is not None:
            nonempty_rule(f, "x", shape)
    for train_flg in (True, False):
        running = running_stats(layer, c)
        out = check_call(f, lambda: layer.forward(x, train_flg))
        if out is REJECTED:
            assert all(np.array_equal(a, b) for a, b in zip(running_stats(layer, c), running)), \
                "a refused forward changed the running statistics"
            return
        check_result(out, np.shape(x), odt, "BatchNormalization.forward")
        x64 = as_float(x, gdt).astype(np.float64)
        g64, b64 = layer.gamma.astype(np.float64), layer.beta.astype(np.float64)
        if not compared(finite(x64)):
            continue
        if train_flg:
            mean, var = R.batchnorm_stats_ref(x64)
            np.testing.assert_allclose(layer.running_mean, momentum * running[0]
                                       + (1 - momentum) * mean, rtol=1e-9, atol=1e-12)
        else:
            mean, var = layer.running_mean, layer.running_var
        ref, inv = R.batchnorm_forward_ref(x64, g64, b64, mean, var, eps)
        shape = (1, c) + (1,) * (x64.ndim - 2)
        absref = (np.abs(x64) + np.abs(mean).reshape(shape)) * np.abs(inv * g64).reshape(shape) \
            + np.abs(b64).reshape(shape)
        # the train-mode statistics themselves carry a rounding error of the batch's spread
        spread = 0 if not train_flg else np.abs(x64 - x64.mean()).max() * np.abs(
            inv * g64).reshape(shape) * (1 + np.abs(x64).max() ** 2 * inv.max() ** 2)
        assert_close(out, ref, odt, f"BatchNormalization.forward(train_flg={train_flg})",
                     absref + spread, 4 + x64.size)
        if train_flg:
            dout = draw(arrays(draw(weighted((8, st.just(np.shape(x))),
                                             (1, st.just(np.shape(x)[:-1] + (5,)))))))
            g = Oracle()
            dtype_rule(g, "dout", dout)
            ddt = gdt                  # the layer casts dout to its parameters' dtype
            if np.shape(dout) != np.shape(x):
                g.bad(ValueError, "dout")
            dx = check_call(g, lambda: layer.backward(dout))
            if dx is REJECTED:
                continue
            check_result(dx, np.shape(x), ddt, "BatchNormalization.backward")
            d64 = as_float(dout, ddt).astype(np.float64)
            if finite(d64):
                bn_backward_check(dx, layer.grads["gamma"], layer.grads["beta"], d64, x64, g64,
                                  np.asarray(layer.mean), layer.inv_std, ddt)


# ============================================================================ main
def _limit_address_space():
    try:
        import resource
    except ImportError:        # not POSIX: no limit (the cases are sized to fit anyway)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = ADDRESS_SPACE_LIMIT if hard == resource.RLIM_INFINITY else min(hard,
                                                                            ADDRESS_SPACE_LIMIT)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


#: properties that get more examples than the others: cheap, and hunting narrow regions
EXAMPLES_FACTOR = {"windows_at_the_index_limit": 5}


def run_property(name, max_examples, derandomize):
    global TALLY
    TALLY = Tally()
    max_examples *= EXAMPLES_FACTOR.get(name, 1)
    # (applied to the test itself: a profile loaded now would not reach tests already
    # wrapped by @given at import time, which keep Hypothesis's defaults)
    test = settings(max_examples=max_examples, derandomize=derandomize, deadline=None,
                    database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))(PROPERTIES[name])
    start = time.perf_counter()
    failure = None
    try:
        test()
    except Exception as exc:                       # BaseExceptionGroup included via Exception
        failure = "".join(traceback.format_exception(exc))[-6000:]
    return {"property": name, "examples": TALLY.examples, "calls": TALLY.calls,
            "outcomes": dict(TALLY.outcomes), "seconds": round(time.perf_counter() - start, 2),
            "failure": failure}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("properties", nargs="*", help="default: all of them")
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--derandomize", action="store_true")
    parser.add_argument("--list", action="store_true", help="print the property names")
    parser.add_argument("--selftest-crash", action="store_true",
                        help="segfault on purpose (tests that the parent reports a crash)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(PROPERTIES))
        return 0
    if args.selftest_crash:
        import ctypes
        faulthandler.disable()              # a quiet death: the parent reports the signal
        print("START selftest_crash", file=sys.stderr, flush=True)
        ctypes.string_at(0)
    faulthandler.enable()
    sys.unraisablehook = _record_unraisable
    _limit_address_space()
    warnings.simplefilter("ignore", RuntimeWarning)    # NaN/inf arithmetic is the point here
    print(json.dumps({"cnn_core": cnn_core.__file__, "numpy": np.__version__}), flush=True)
    failed = False
    for name in args.properties or list(PROPERTIES):
        if name not in PROPERTIES:
            parser.error(f"unknown property {name!r}")
        print(f"START {name}", file=sys.stderr, flush=True)
        report = run_property(name, args.max_examples, args.derandomize)
        failed |= report["failure"] is not None
        print(json.dumps(report), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
