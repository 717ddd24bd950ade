"""The batch-chunk runner: every chunk runs once, errors surface, nesting and threads work,
on the OpenMP team and on the Python thread pool that serial builds use."""
import threading

import pytest

import cnn_core
from cnn_core import _parallel, _workers


@pytest.fixture(params=["team", "pool"])
def runner(request, monkeypatch):
    if request.param == "team" and not cnn_core.openmp_enabled():
        pytest.skip("the OpenMP team needs an OpenMP build")
    monkeypatch.setattr(_workers, "_USE_TEAM", request.param == "team")
    return request.param


@pytest.mark.parametrize("n_threads", [1, 2, 3, 5])
def test_run_chunks_covers_every_item_once(n_threads, runner):
    seen, lock = [], threading.Lock()

    def fn(lo, hi):
        with lock:
            seen.extend(range(lo, hi))
    _workers.run_chunks(fn, 17, n_threads)
    assert sorted(seen) == list(range(17))


def test_run_chunks_uses_distinct_threads_and_the_caller(runner):
    idents, barrier = [], threading.Barrier(2, timeout=30)

    def fn(lo, hi):
        idents.append(threading.get_ident())
        barrier.wait()          # both chunks must be running at once, or this times out
    _workers.run_chunks(fn, 10, 2)
    assert len(set(idents)) == 2 and threading.get_ident() in idents


@pytest.mark.parametrize("failing", [0, 1, 2])
def test_an_error_in_any_chunk_is_raised_after_all_chunks_ran(failing, runner):
    done = []

    def fn(lo, hi):
        if lo == failing * 4:
            raise ZeroDivisionError(f"chunk {lo}")
        done.append(lo)
    with pytest.raises(ZeroDivisionError, match=f"chunk {failing * 4}"):
        _workers.run_chunks(fn, 12, 3)
    assert sorted(done) == sorted({0, 4, 8} - {failing * 4})


def test_nested_run_chunks_completes(runner):
    out = []

    def inner(lo, hi):
        out.extend(range(lo, hi))

    def outer(lo, hi):
        _workers.run_chunks(inner, hi - lo, 2)
    _workers.run_chunks(outer, 6, 2)
    assert sorted(out) == [0, 0, 1, 1, 2, 2]       # two outer chunks of 3 items each


@pytest.mark.skipif(not cnn_core.openmp_enabled(), reason="the team needs an OpenMP build")
def test_chunks_run_on_the_openmp_team():
    assert _workers._USE_TEAM
    for bad in (0, 1025, 100_000):      # 100000 threads crashed the process before the check
        with pytest.raises(ValueError, match=rf"n_chunks must be in \[1, 1024\], got {bad}"):
            _parallel.run_team(lambda i: None, bad)
    calls = []
    _parallel.run_team(calls.append, 3)
    assert sorted(calls) == [0, 1, 2]


def test_import_leaves_the_openmp_wait_policy_alone(tmp_path):
    """cnn_core once set OMP_WAIT_POLICY=PASSIVE at import: another library's OpenMP runtime
    started later in the process (PyTorch's, in bench/compare.py) read it and ran 25 % slower."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, cnn_core; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)     # the installed cnn_core, not ./cnn_core
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
