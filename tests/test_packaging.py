"""Packaging properties of the installed cnn_core: OpenMP present, fork-safe workers.

* ``CNN_CORE_REQUIRE_OPENMP=1`` (set by the wheel builds and tools/check_packaging.sh)
  turns a silently serial build into a failure.
* After a threaded kernel call, a process pool from :func:`cnn_core._mp.get_context`
  runs the same kernel in its workers and finishes; a hang fails on a timeout
  instead of blocking the run.
* No module of cnn_core starts processes with the "fork" method (checked on its source).
"""
import ast
import functools
import multiprocessing
import os
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


def _fork_uses(source):
    """Places in ``source`` that start processes with the "fork" start method (or may)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module == "multiprocessing":
            names = {a.name for a in node.names} & {"Pool", "Process"}
            if names:
                found.append(f"{where}: from multiprocessing import {', '.join(sorted(names))} "
                             "(the default context)")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        if owner == "os" and name in ("fork", "forkpty"):
            found.append(f"{where}: os.{name}()")
        elif name in ("get_context", "set_start_method") and first == "fork":
            found.append(f"{where}: {name}('fork')")
        elif owner in ("multiprocessing", "mp") and name in ("Pool", "Process"):
            found.append(f"{where}: {owner}.{name}() with the default context")
        elif name == "ProcessPoolExecutor" and not any(k.arg == "mp_context" for k in node.keywords):
            found.append(f"{where}: ProcessPoolExecutor() without mp_context")
    return found


def test_fork_use_detector():
    bad = ("import os, multiprocessing as mp\nfrom multiprocessing import Pool\n"
           "os.fork()\nmp.get_context('fork')\nmultiprocessing.Pool(2)\nProcessPoolExecutor(2)\n")
    assert len(_fork_uses(bad)) == 5
    good = ("from cnn_core._mp import get_context\nget_context().Pool(2)\n"
            "ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'))\n")
    assert _fork_uses(good) == []


def test_package_never_forks():
    """cnn_core starts processes only with a spawn/forkserver context (cnn_core._mp.get_context)."""
    package_dir = Path(cnn_core.__file__).resolve().parent
    offenders = {}
    for path in sorted(package_dir.rglob("*.py")):
        uses = _fork_uses(path.read_text(encoding="utf-8"))
        if uses:
            offenders[str(path.relative_to(package_dir))] = uses
    assert not offenders, (
        f"{offenders}: a forked child can hang after the parent used OpenMP; "
        "use cnn_core._mp.get_context()"
    )
