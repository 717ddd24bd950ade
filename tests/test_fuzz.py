"""Fuzzing the compiled code, crash-proof: Hypothesis batches run in a child process.

``tests/_fuzz_worker.py`` (see its docstring) fuzzes every public function of
``cnn_core.functional`` and every layer that reaches the kernels: each case either matches
the slow reference of ``_reference.py`` or raises ValueError/TypeError naming the argument at
fault.  It runs as ``sys.executable _fuzz_worker.py`` from a temporary directory (the
source tree must not shadow the installed package), so a segfault or abort inside a kernel
kills the child only: it is reported here as a failure naming the signal and the property,
and the remaining properties run in a fresh child.

The Hypothesis profile of this run (conftest.py: "ci" is derandomized) sets whether the
examples are derandomized, and each property runs twice the profile's ``max_examples``
(they are cheap: about 2 ms each); ``CNN_CORE_FUZZ_EXAMPLES=N`` sets the number per
property for a longer hunt.  The number of cases run is written to the
terminal.  The rest of this file holds regression tests for what the fuzzing found.
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

import cnn_core
from cnn_core import functional as F
from cnn_core.layers import BatchNormalization

import _fuzz_worker

WORKER = Path(__file__).with_name("_fuzz_worker.py")
PROPERTY_NAMES = list(_fuzz_worker.PROPERTIES)
TIMEOUT = 600          # seconds for one child; a hang counts as a crash of its property


def _describe_death(proc_returncode, stderr):
    if proc_returncode is None:
        what = f"hung (killed after {TIMEOUT} s)"
    elif proc_returncode < 0:
        what = f"killed by {signal.Signals(-proc_returncode).name}"
    else:
        what = f"exited with status {proc_returncode} before reporting"
    return f"{what}; stderr tail:\n{stderr[-3000:]}"


def run_worker(args, cwd):
    """(returncode or None if it hung, stdout, stderr) of one child run from ``cwd``."""
    cmd = [sys.executable, str(WORKER), *args]
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return None, out, err
    return proc.returncode, proc.stdout, proc.stderr


class FuzzRun:
    """Every property's report, re-spawning the child after a crash until all have run."""

    def __init__(self, cwd, max_examples, derandomize):
        self.reports, self.crashes, self.children, self.header = {}, {}, 0, None
        self.crashed_examples = {}      # property -> examples run before its child died
        start = time.perf_counter()
        flags = ["--max-examples", str(max_examples)] + (["--derandomize"] if derandomize else [])
        pending = list(PROPERTY_NAMES)
        while pending:
            code, out, err = run_worker(flags + pending, cwd)
            self.children += 1
            for line in out.splitlines():
                if line.startswith("{"):
                    report = json.loads(line)
                    if "property" in report:
                        self.reports[report["property"]] = report
                    else:
                        self.header = report
            pending = [p for p in pending if p not in self.reports]
            if code in (0, 1) and not pending:
                break
            started = [line[6:] for line in err.splitlines() if line.startswith("START ")]
            culprit = next((p for p in reversed(started) if p in pending), pending[0])
            self.crashes[culprit] = _describe_death(code, err)
            counts = [int(line.split()[2]) for line in err.splitlines()
                      if line.startswith(f"EXAMPLES {culprit} ")]
            self.crashed_examples[culprit] = counts[-1] if counts else 0
            pending.remove(culprit)
        self.seconds = time.perf_counter() - start

    @property
    def examples(self):
        return (sum(r["examples"] for r in self.reports.values())
                + sum(self.crashed_examples.values()))

    @property
    def calls(self):
        return sum(r["calls"] for r in self.reports.values())


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    profile = settings.default
    n = int(os.environ.get("CNN_CORE_FUZZ_EXAMPLES", 2 * profile.max_examples))
    return FuzzRun(tmp_path_factory.mktemp("fuzz_cwd"), n, profile.derandomize)


def test_fuzz_child_tests_the_installed_package(fuzz_run):
    """The child imported the very cnn_core under test (not a shadowing source tree)."""
    assert fuzz_run.header is not None, f"no child reported: {fuzz_run.crashes}"
    assert Path(fuzz_run.header["cnn_core"]) == Path(cnn_core.__file__)


@pytest.mark.parametrize("name", PROPERTY_NAMES)
def test_fuzz_property(fuzz_run, name):
    if name in fuzz_run.crashes:
        pytest.fail(f"the fuzz worker CRASHED in property {name!r}: {fuzz_run.crashes[name]}",
                    pytrace=False)
    report = fuzz_run.reports[name]
    if report["failure"]:
        pytest.fail(f"property {name!r} failed:\n{report['failure']}", pytrace=False)
    assert report["examples"] > 0 and report["outcomes"].get("accepted", 0) > 0, report


def test_fuzz_case_count(fuzz_run, capsys):
    """Writes the number of cases run to the terminal (for release notes); for a property
    whose child crashed, the count it last reported (every 25 examples)."""
    per = ", ".join([f"{r['property']} {r['examples']}" for r in fuzz_run.reports.values()]
                    + [f"{p} >={n} (crashed)" for p, n in fuzz_run.crashed_examples.items()])
    summary = (f"fuzz: {fuzz_run.examples} cases ({fuzz_run.calls} library calls) over "
               f"{len(fuzz_run.reports)} properties in {fuzz_run.children} child process(es), "
               f"{fuzz_run.seconds:.1f} s, {len(fuzz_run.crashes)} crash(es) [{per}]")
    with capsys.disabled():
        print(f"\n{summary}")
    assert fuzz_run.examples >= len(PROPERTY_NAMES)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_crashing_child_is_reported_not_fatal(tmp_path):
    """The harness itself: a child that segfaults is seen as killed by SIGSEGV."""
    code, _, err = run_worker(["--selftest-crash"], tmp_path)
    assert code == -signal.SIGSEGV, (code, err)
    assert "killed by SIGSEGV" in _describe_death(code, err)


# ============================================================================ regressions
# What the fuzzing found in cnn_core.functional (fixed there): OverflowError instead of a
# ValueError, NumPy messages naming no argument, and a process killed by libgomp.
def word(name):
    return rf"(?<![\w.]){re.escape(name)}(?!\w)"


X = np.ones((1, 1, 4, 4))


@pytest.mark.parametrize("call, error, arg", [
    (lambda: F.im2col(X, 1, 1, 2**63, 0), ValueError, "stride"),       # was OverflowError
    (lambda: F.maxpool2d_forward(X, 2, 2, 2**64, 0), ValueError, "stride"),
    (lambda: F.im2col(X, 1, 1, 1, 10**12), ValueError, "pad"),          # NumPy: "Maximum
    (lambda: F.im2col(X, 1, 1, 1, 2**62), ValueError, "pad"),           #  allowed dimension"
    (lambda: F.avgpool2d_forward(X, 2**40, 2**40, 1, 2**40 - 1), ValueError, "pad"),
    (lambda: F.col2im(np.ones((1, 1)), (1, 1, 2**62, 1), 1, 1, 1, 0), ValueError, "x_shape"),
    (lambda: F.maxpool2d_backward(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.intp),
                                  (1, 1, 2**40, 2**40)), ValueError, "x_shape"),
    (lambda: F.im2col(X, 1, 1, n_threads=2**40), ValueError, "n_threads"),  # OverflowError
    (lambda: F.batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), np.zeros(3),
                                 np.ones(3), eps="1e-5"), TypeError, "eps"),
    (lambda: F.batchnorm_forward(np.ones((2, 3)), np.ones(3), np.zeros(3), np.zeros(3),
                                 np.ones(3), eps=None), TypeError, "eps"),
], ids=["stride-2**63", "pool-stride-2**64", "pad-10**12", "pad-2**62", "avgpool-window-2**40",
        "col2im-x_shape", "maxpool-backward-x_shape", "n_threads-2**40", "eps-str", "eps-None"])
def test_found_by_fuzzing_clear_errors(call, error, arg):
    with pytest.raises(error, match=word(arg)):
        call()


def test_average_pool_divisor_cannot_overflow():
    """A 2**32 x 2**32 window: kernel_h*kernel_w wrapped to 0 in C, and the mean was inf."""
    with pytest.raises(ValueError, match="too large"):
        F.avgpool2d_forward(np.ones((1, 1, 1, 1)), 2**32, 2**32, 2**40, 2**32 - 1)
    # one window of 2**29 x 2**29 cells, only one of them real: the mean is 1 / 2**58
    out = F.avgpool2d_forward(np.ones((1, 1, 1, 1)), 2**29, 2**29, 2**40, 2**29 - 1)
    assert out.shape == (1, 1, 1, 1) and out[0, 0, 0, 0] == pytest.approx(2.0**-58)


def _child(code, tmp_path, timeout=120):
    """Run ``code`` in a fresh interpreter from ``tmp_path``: (returncode, stdout + stderr)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_huge_n_threads_is_refused_not_a_crash(tmp_path):
    """n_threads=100000 overflowed libgomp's stack (SIGSEGV); now a ValueError, in a child."""
    code, out = _child("""
        import numpy as np
        from cnn_core import functional as F
        try:
            F.maxpool2d_backward(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.intp),
                                 (1, 1, 2, 2), n_threads=100_000)
        except ValueError as exc:
            print("ValueError:", exc)
    """, tmp_path)
    assert code == 0 and "ValueError: n_threads" in out, (code, out)


# ---------------------------------------------------------------- found in code not owned here
# These assert the right behaviour and FAIL until the owners fix them (see the report).
def test_set_num_threads_beyond_what_openmp_can_start_is_refused_or_harmless(tmp_path):
    """set_num_threads(100000) is accepted, and the next large kernel call kills the process
    (libgomp allocas per-thread data on the stack: SIGSEGV).  Either refuse the value with a
    ValueError naming n, or cap it where it is used."""
    code, out = _child("""
        import numpy as np
        import cnn_core
        from cnn_core import functional as F
        try:
            cnn_core.set_num_threads(100_000)
        except ValueError as exc:
            print("refused:", exc)
        x = np.ones((64, 4, 32, 32))              # above PARALLEL_MIN_WORK: threads are used
        F.maxpool2d_forward(x, 2, 2, 2)
        print("survived")
    """, tmp_path)
    assert code == 0 and "survived" in out, (
        f"process died ({_describe_death(code, out) if code else out})")


@pytest.mark.parametrize("kwargs, arg", [
    (dict(momentum="a"), "momentum"), (dict(momentum=None), "momentum"),
    (dict(eps="a"), "eps"), (dict(eps=None), "eps"),
], ids=["momentum-str", "momentum-None", "eps-str", "eps-None"])
def test_batchnorm_layer_hyperparameter_errors_name_the_argument(kwargs, arg):
    """float(momentum) / np.isfinite(eps) raise messages that name no argument."""
    with pytest.raises((ValueError, TypeError), match=word(arg)):
        BatchNormalization(**kwargs)


def test_batchnorm_running_statistics_of_the_wrong_size_are_named():
    """running_mean of 4 features for a 3-feature input: NumPy's "operands could not be
    broadcast together" at the first training forward, naming nothing."""
    layer = BatchNormalization(running_mean=np.zeros(4), running_var=np.ones(4))
    with pytest.raises(ValueError, match=word("running_mean")):
        layer.build((3,))
        layer.forward(np.ones((2, 3)), True)


def test_batchnorm_stats_of_a_channel_holding_nan_are_nan():
    """The kernel clamps a negative variance with ``d if d > 0 else 0.0``, which also turns
    NaN into 0: a NaN channel gets mean NaN but variance 0 (the reference: NaN)."""
    x = np.array([[1.0, 2.0], [np.nan, 3.0], [4.0, 5.0]])
    mean, var = F.batchnorm_stats(x)
    assert np.isnan(mean[0]) and np.isnan(var[0]), (mean, var)
    assert np.isfinite(var[1])


def test_transposed_im2col_with_a_huge_stride_stays_inside_x():
    """pyx/_im2col.pyx ``_valid_ow``: ``(a + stride - 1) // stride`` overflows Py_ssize_t for a
    stride near 2**63, ``lo`` becomes -1, and the kernels index ``ow = -1``: im2col_t READS
    before x's row and writes the previous cols row (before the buffer for row 0); col2im_t
    WRITES before dx's row.  x sits in a buffer of 99s here, so the stray reads show up.
    (The bounds-checked build reports "Out of bounds on buffer access (axis 3)" in
    _im2col_t_plane.)  Fix: ``lo = 0 if a <= 0 else (a - 1) // stride + 1``."""
    buf = np.full(6, 99.0)
    buf[2:4] = [-1.0, 5.0]
    x = buf[2:4].reshape(1, 1, 2, 1)
    W = np.ones((1, 1, 3, 3))
    # one window, rows and columns -2..0 of the padded input: its only real cell is x[0, 0]
    out = F.conv2d_forward(x, W, np.zeros(1), stride=sys.maxsize, pad=2)
    np.testing.assert_array_equal(out.ravel(), [-1.0])
    _, dW, _ = F.conv2d_backward(np.ones((1, 1, 1, 1)), x, W, stride=sys.maxsize, pad=2)
    np.testing.assert_array_equal(dW.ravel(), [0, 0, 0, 0, 0, 0, 0, 0, -1])


def test_transposed_col2im_with_a_huge_stride_does_not_corrupt_the_heap(tmp_path):
    """The same overflow in col2im_t adds into dx[0, 0, 0, -1], the 8 bytes before dx's buffer:
    glibc aborts with "double free or corruption (out)" (SIGABRT), here in a child."""
    code, out = _child("""
        import sys
        import numpy as np
        from cnn_core import functional as F
        x, W, dout = np.ones((1, 1, 2, 200)), np.ones((1, 1, 3, 3)), np.ones((1, 1, 1, 1))
        for _ in range(1000):
            F.conv2d_backward(dout, x, W, stride=sys.maxsize, pad=2)
        print("survived")
    """, tmp_path)
    assert code == 0 and "survived" in out, _describe_death(code, out)
