"""cnn_core.search: distributions, the trial plan, and the same ranked table on every executor.

The objective is the library's own ``train_mlp`` on the bundled 8x8 digits (no shared data),
tiny enough that a trial takes a fraction of a second.
"""
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cnn_core.datasets import load_digits
from cnn_core.search import (Choice, IntUniform, LogUniform, SearchResult, Trial, Uniform,
                             random_search, sample_params, train_mlp, trial_plan,
                             validation_split)

SPACE = {"lr": LogUniform(1e-3, 0.5), "weight_decay": LogUniform(1e-8, 1e-4),
         "hidden": Choice([16, 32])}
N_TRIALS = 6


@pytest.fixture(scope="module")
def digits():
    (x, t), _ = load_digits()
    (x_train, t_train), (x_val, t_val) = validation_split(x[:400], t[:400], 0.25, seed=0)
    return x_train, t_train, x_val, t_val


def search(digits, **kw):
    return random_search(train_mlp, SPACE, N_TRIALS, seed=7, metric="val_acc", args=digits,
                         kwargs={"epochs": 8, "hidden_layers": 2}, **kw)


@pytest.fixture(scope="module")
def inline_result(digits):
    return search(digits, n_jobs=1)


# ----------------------------------------------------------------------------- distributions
def test_distributions_sample_their_ranges():
    rng = np.random.default_rng(0)
    logs = np.log10([LogUniform(1e-6, 1e-2).sample(rng) for _ in range(2000)])
    assert logs.min() >= -6 and logs.max() < -2
    assert abs(logs.mean() + 4) < 0.1                      # uniform in the exponent
    assert {Choice(["a", 1]).sample(rng) for _ in range(50)} == {"a", 1}
    assert {IntUniform(2, 4).sample(rng) for _ in range(100)} == {2, 3, 4}
    u = [Uniform(-1, 1).sample(rng) for _ in range(100)]
    assert -1 <= min(u) and max(u) < 1
    assert type(Choice([50, 100]).sample(rng)) is int       # as given, not a NumPy scalar


@pytest.mark.parametrize("make, message", [
    (lambda: LogUniform(0, 1), "low > 0"),
    (lambda: Uniform(2, 1), "low must be < high"),
    (lambda: Uniform(0, float("inf")), "finite"),
    (lambda: Choice([]), "at least one option"),
    (lambda: IntUniform(3, 1), "low must be <= high"),
])
def test_distributions_validate(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_space_and_trials_are_refused():
    with pytest.raises(TypeError, match=r"space\['lr'\]"):
        trial_plan({"lr": [0.1, 0.01]}, 3)
    with pytest.raises(ValueError, match="n_trials"):
        trial_plan(SPACE, 0)
    with pytest.raises(ValueError, match="mode"):
        random_search(train_mlp, SPACE, 2, mode="best")
    with pytest.raises(TypeError, match="module-level function"):
        random_search(lambda params, seed: 0.0, SPACE, 2, n_jobs=2)


def test_trial_plan_is_seeded_and_prefix_stable():
    plan = trial_plan(SPACE, 5, seed=3)
    assert plan == trial_plan(SPACE, 5, seed=3)
    assert trial_plan(SPACE, 3, seed=3) == plan[:3]          # more trials keep the first ones
    assert plan != trial_plan(SPACE, 5, seed=4)
    assert len({seed for _, seed in plan}) == 5
    assert list(plan[0][0]) == list(SPACE)
    assert sample_params(SPACE, np.random.default_rng(0)).keys() == SPACE.keys()


def test_validation_split(digits):
    (x, t), _ = load_digits()
    (xa, ta), (xv, tv) = validation_split(x, t, 0.2, seed=1)
    assert len(xv) == round(0.2 * len(x)) and len(xa) + len(xv) == len(x)
    (xb, _), (xw, _) = validation_split(x, t, 0.2, seed=1)
    assert np.array_equal(xv, xw) and np.array_equal(xa, xb)
    with pytest.raises(ValueError, match="fraction"):
        validation_split(x, t, 1.0)


# ----------------------------------------------------------------------------- results
def test_inline_search_ranks_and_reports(inline_result):
    r = inline_result
    assert isinstance(r, SearchResult) and len(r.trials) == N_TRIALS
    assert sorted(t.index for t in r.trials) == list(range(N_TRIALS))
    scores = [t.score for t in r.trials]
    assert scores == sorted(scores, reverse=True)
    assert r.best is r.trials[0] and r.best_params == r.trials[0].params
    assert r.best.score > 0.5                               # some trial learned the digits
    assert set(r.best.metrics) == {"val_acc", "train_acc", "val_acc_history", "train_acc_history"}
    assert len(r.best.metrics["val_acc_history"]) == 8
    lines = r.table().splitlines()
    assert lines[0].split() == ["rank", "trial", "val_acc", "train_acc", "lr", "weight_decay",
                                "hidden"]
    assert len(lines) == N_TRIALS + 2 and lines[2].split()[0] == "1"
    assert "e-" in lines[2].split()[4]                      # log-scaled params in e-notation
    assert len(r.table(top=2).splitlines()) == 4


def test_same_table_on_a_process_pool(digits, inline_result):
    """forkserver/spawn workers from cnn_core._mp, 2 of them: trials finish in any order."""
    result = search(digits, n_jobs=2)
    assert result.table() == inline_result.table()
    assert [(t.index, t.score) for t in result.trials] == \
        [(t.index, t.score) for t in inline_result.trials]


@pytest.mark.skipif(os.environ.get("CNN_CORE_SKIP_DASK") == "1",
                    reason="CNN_CORE_SKIP_DASK=1: no distributed in this run (wheel test)")
def test_same_table_on_a_dask_cluster(digits, inline_result):
    import distributed  # part of the test extra: CI fails, not skips, without it
    # In-process worker, but real TCP on the loopback: tasks and results are serialised as
    # on a remote cluster.  No dashboard, nothing listens beyond 127.0.0.1.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        result = search(digits, executor=client.get_executor())
    assert result.table() == inline_result.table()


def test_any_executor_and_callback(digits, inline_result):
    seen = []
    with ThreadPoolExecutor(1) as pool:
        result = search(digits, executor=pool, callback=lambda t: seen.append(t.index))
        assert pool.submit(lambda: 1).result() == 1           # a passed executor stays open
    assert sorted(seen) == list(range(N_TRIALS))
    assert result.table() == inline_result.table()


def _quadratic(params, seed):
    if params["x"] < 0:
        raise ValueError("x must be >= 0 here")
    return {"loss": (params["x"] - 2) ** 2, "seed_parity": seed % 2}


def test_failed_trials_rank_last_and_min_mode():
    result = random_search(_quadratic, {"x": Choice([-1.0, 1.0, 2.0, 5.0])}, 12, seed=0,
                           n_jobs=1, metric="loss", mode="min")
    ok = [t for t in result.trials if t.ok]
    failed = [t for t in result.trials if not t.ok]
    assert failed and ok and result.trials == ok + failed
    assert all("ValueError: x must be >= 0" in t.error and math.isnan(t.score) for t in failed)
    assert result.best.params == {"x": 2.0} and result.best.score == 0.0
    assert "error" in result.table().splitlines()[0]


def test_missing_metric_is_a_failed_trial_and_no_best():
    result = random_search(_quadratic, {"x": Choice([1.0])}, 2, n_jobs=1, metric="val_acc")
    assert all("val_acc" in t.error for t in result.trials)
    with pytest.raises(ValueError, match="no trial succeeded"):
        result.best


def test_trial_restores_threads_and_global_rng():
    import cnn_core
    before = cnn_core.get_num_threads()
    state = np.random.get_state()[1].copy()
    random_search(_quadratic, {"x": Choice([1.0])}, 2, n_jobs=1, metric="loss")
    assert cnn_core.get_num_threads() == before
    assert np.array_equal(np.random.get_state()[1], state)
    assert Trial(0, {}, 0).ok is False
