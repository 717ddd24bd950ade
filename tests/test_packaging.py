"""Packaging properties of the installed cnn_core: OpenMP present, fork-safe workers.

* ``CNN_CORE_REQUIRE_OPENMP=1`` (set by the wheel builds and tools/check_packaging.sh)
  turns a silently serial build into a failure.
* After a threaded kernel call, a process pool from :func:`cnn_core._mp.get_context`
  runs the same kernel in its workers and finishes; a hang fails on a timeout
  instead of blocking the run.
* No module of cnn_core starts processes except through that context.
"""
import functools
import multiprocessing
import os
import re
from pathlib import Path

import numpy as np
import pytest

import cnn_core
from cnn_core import functional as F
from cnn_core._mp import START_METHOD, get_context

POOL_TIMEOUT_S = 120  # generous: each spawned worker imports numpy and cnn_core


@pytest.mark.skipif(os.environ.get("CNN_CORE_REQUIRE_OPENMP") != "1",
                    reason="CNN_CORE_REQUIRE_OPENMP is not 1: a serial build is allowed here")
def test_openmp_enabled_when_required():
    assert cnn_core.openmp_enabled(), (
        "CNN_CORE_REQUIRE_OPENMP=1 but this cnn_core was built without OpenMP "
        f"(installed at {Path(cnn_core.__file__).parent})"
    )


def test_context_is_fork_safe():
    ctx = get_context()
    assert ctx.get_start_method() in ("forkserver", "spawn")
    assert ctx.get_start_method() == START_METHOD
    if "forkserver" in multiprocessing.get_all_start_methods():
        assert START_METHOD == "forkserver"


def test_process_pool_after_threaded_kernel():
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((8, 3, 16, 16)) for _ in range(4)]
    im2col = functools.partial(F.im2col, kernel_h=3, kernel_w=3, stride=1, pad=1, n_threads=2)

    # The parent runs a threaded kernel first: this is what makes a plain fork unsafe.
    expected = [im2col(x) for x in batches]
    assert expected[0].shape == (8 * 16 * 16, 3 * 3 * 3)

    with get_context().Pool(processes=2) as pool:
        pending = pool.map_async(im2col, batches)
        try:
            results = pending.get(timeout=POOL_TIMEOUT_S)
        except multiprocessing.TimeoutError:
            pytest.fail(f"worker pool ({START_METHOD}) did not finish within {POOL_TIMEOUT_S} s "
                        "after a threaded kernel call: a hung OpenMP runtime in the workers?")
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)

    # ... and the parent's own OpenMP runtime still works afterwards.
    np.testing.assert_array_equal(im2col(batches[0]), expected[0])


_PROCESS_APIS = re.compile(r"\bmultiprocessing\b|ProcessPoolExecutor|os\.fork\b")
_USES_MP_CONTEXT = re.compile(r"\b_mp\b.*\bget_context\b|\b_mp\.get_context\b")


def test_package_starts_processes_only_through_mp_context():
    package_dir = Path(cnn_core.__file__).resolve().parent
    offenders = []
    for path in sorted(package_dir.rglob("*.py")):
        if path.name == "_mp.py":
            continue
        text = path.read_text(encoding="utf-8")
        if _PROCESS_APIS.search(text) and not _USES_MP_CONTEXT.search(text):
            offenders.append(str(path.relative_to(package_dir)))
    assert not offenders, (
        f"{offenders} start processes without cnn_core._mp.get_context() "
        "(a forked child can hang after the parent used OpenMP)"
    )
