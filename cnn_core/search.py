"""Random hyperparameter search (Bergstra & Bengio, "Random Search for Hyper-Parameter
Optimization", JMLR 13 (2012)), the book's chapter 6.5 method, on any executor.

A search space maps names to distributions::

    from cnn_core.search import Choice, LogUniform, random_search, train_mlp
    space = {"lr": LogUniform(1e-4, 1e-1), "weight_decay": LogUniform(1e-8, 1e-4),
             "hidden": Choice([50, 100])}
    result = random_search(train_mlp, space, n_trials=20, seed=0,
                           args=(x_train, t_train, x_val, t_val))
    print(result.table())
    result.best_params

**Reproducible whatever the executor.**  Every trial's parameters and seed are derived up
front from the master ``seed`` (trial i uses ``SeedSequence(seed, spawn_key=(i,))``), so
trial i is the same draw whether trials run in this process, in a process pool or on a
Dask cluster, in any order, and extending ``n_trials`` keeps the first trials.  Each trial
runs with 1 OpenMP kernel thread and 1 BLAS thread (no oversubscription, and BLAS results
that do not depend on the machine's thread count) and seeds NumPy's and Python's global
generators from its seed before calling the objective.

**Executors.**  ``executor=None`` runs trials on a local ``ProcessPoolExecutor`` started with
:func:`cnn_core._mp.get_context` (forkserver/spawn: plain fork is unsafe after OpenMP has
run); ``n_jobs=1`` runs them inline instead.  Any ``concurrent.futures.Executor`` may be
passed, e.g. a Dask cluster's (``pip install distributed``)::

    from distributed import Client
    with Client("scheduler-address:8786") as client:
        result = random_search(train_mlp, space, 100, executor=client.get_executor(), ...)

A passed executor is not shut down.  The objective must be importable by the workers (a
module-level function, as :func:`train_mlp`), and is called as
``objective(params, seed, *args, **kwargs)``.  It returns the score (a number), or a dict of
metrics of which ``metric`` is the score; other scalar metrics appear in the table, and
non-scalar ones (curves) are kept in :attr:`Trial.metrics`.  A trial that raises is recorded
as failed (score NaN, ranked last) with its error message.
"""
import math
import numbers
import os
import pickle
import random
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Uniform", "LogUniform", "IntUniform", "Choice", "sample_params", "trial_plan",
           "Trial", "SearchResult", "random_search", "validation_split", "train_mlp"]


# ----------------------------------------------------------------------------- distributions
class Distribution:
    def sample(self, rng):
        raise NotImplementedError


def _finite(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class Uniform(Distribution):
    """A float uniform in [low, high)."""

    def __init__(self, low, high):
        self.low, self.high = _finite("low", low), _finite("high", high)
        if not self.low < self.high:
            raise ValueError(f"low must be < high, got low={low!r}, high={high!r}")

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def __repr__(self):
        return f"{type(self).__name__}({self.low:g}, {self.high:g})"


class LogUniform(Uniform):
    """A float whose logarithm is uniform: 10**U(log10 low, log10 high), as the book's
    ``10 ** np.random.uniform(-6, -2)``; 0 < low < high."""

    def __init__(self, low, high):
        super().__init__(low, high)
        if self.low <= 0:
            raise ValueError(f"LogUniform needs low > 0, got {low!r}")

    def sample(self, rng):
        return float(10.0 ** rng.uniform(math.log10(self.low), math.log10(self.high)))


class IntUniform(Distribution):
    """An int uniform in [low, high], both ends included."""

    def __init__(self, low, high):
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (low, high)):
            raise TypeError(f"IntUniform needs int bounds, got {low!r}, {high!r}")
        if not low <= high:
            raise ValueError(f"low must be <= high, got low={low!r}, high={high!r}")
        self.low, self.high = int(low), int(high)

    def sample(self, rng):
        return int(rng.integers(self.low, self.high, endpoint=True))

    def __repr__(self):
        return f"IntUniform({self.low}, {self.high})"


class Choice(Distribution):
    """One of ``options``, each equally likely (returned as given, not as a NumPy scalar)."""

    def __init__(self, options):
        self.options = list(options)
        if not self.options:
            raise ValueError("Choice needs at least one option, got none")

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def __repr__(self):
        return f"Choice({self.options!r})"


def _check_space(space):
    if not isinstance(space, dict) or not space:
        raise ValueError(f"space must be a non-empty dict of name -> distribution, got {space!r}")
    for name, dist in space.items():
        if not isinstance(dist, Distribution):
            raise TypeError(f"space[{name!r}] must be a Uniform, LogUniform, IntUniform or "
                            f"Choice, got {dist!r}")


def sample_params(space, rng):
    """One draw from every distribution of ``space``, in the space's key order."""
    return {name: dist.sample(rng) for name, dist in space.items()}


def trial_plan(space, n_trials, seed=0):
    """``[(params, trial_seed), ...]``: what every trial will run, from the master seed alone."""
    _check_space(space)
    if isinstance(n_trials, bool) or not isinstance(n_trials, numbers.Integral) or n_trials < 1:
        raise ValueError(f"n_trials must be an int >= 1, got {n_trials!r}")
    plan = []
    for i in range(int(n_trials)):
        params_ss = np.random.SeedSequence(seed, spawn_key=(i, 0))
        seed_ss = np.random.SeedSequence(seed, spawn_key=(i, 1))
        plan.append((sample_params(space, np.random.default_rng(params_ss)),
                     int(seed_ss.generate_state(1, np.uint32)[0])))
    return plan


# ----------------------------------------------------------------------------- running a trial
def _run_trial(objective, params, seed, args, kwargs):
    """In the worker: 1 kernel + 1 BLAS thread, global generators seeded, errors captured.

    Returns ``(value, error, seconds)``.  Thread settings and the global generators'
    states are restored afterwards (the worker may be this process: inline or Dask threads).
    """
    from threadpoolctl import threadpool_limits

    from . import set_num_threads
    np_state, py_state = np.random.get_state(), random.getstate()
    previous = set_num_threads(1)
    t0 = time.perf_counter()
    try:
        with threadpool_limits(1):
            np.random.seed(seed)
            random.seed(seed)
            return objective(dict(params), seed, *args, **kwargs), None, time.perf_counter() - t0
    except Exception as exc:  # a failed trial is a result, not the end of the search
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return None, last, time.perf_counter() - t0
    finally:
        set_num_threads(previous)
        np.random.set_state(np_state)
        random.setstate(py_state)


@dataclass
class Trial:
    """One trial: its index, parameters, seed, score, metrics and error (None if it ran)."""
    index: int
    params: dict
    seed: int
    score: float = float("nan")
    metrics: dict = field(default_factory=dict)
    error: str = None
    seconds: float = 0.0

    @property
    def ok(self):
        return self.error is None and math.isfinite(self.score)


def _score(value, metric):
    if isinstance(value, dict):
        if metric not in value:
            raise KeyError(f"the objective returned metrics {sorted(value)} without the "
                           f"metric {metric!r} (pass metric=...)")
        return float(value[metric]), dict(value)
    return float(value), {metric: float(value)}


class SearchResult:
    """The trials of a search, ranked best first (failed and NaN trials last, ties by index)."""

    def __init__(self, trials, space, metric, mode, seed):
        self.space, self.metric, self.mode, self.seed = space, metric, mode, seed
        sign = -1.0 if mode == "max" else 1.0
        self.trials = sorted(trials, key=lambda t: (not t.ok, sign * t.score if t.ok else 0.0,
                                                    t.index))

    @property
    def best(self):
        if not self.trials or not self.trials[0].ok:
            raise ValueError("no trial succeeded: " + "; ".join(
                f"trial {t.index}: {t.error}" for t in self.trials[:3]))
        return self.trials[0]

    @property
    def best_params(self):
        return dict(self.best.params)

    def rows(self):
        """``[{"rank", "trial", metric, other scalar metrics..., params...}, ...]`` ranked."""
        out = []
        for rank, t in enumerate(self.trials, 1):
            row = {"rank": rank, "trial": t.index, self.metric: t.score}
            for k, v in t.metrics.items():
                if k != self.metric and isinstance(v, numbers.Real):
                    row[k] = float(v)
            row.update(t.params)
            if t.error:
                row["error"] = t.error
            out.append(row)
        return out

    def table(self, top=None):
        """The ranked table as text (floats of log-scaled parameters in e-notation)."""
        rows = self.rows()[:top]
        cols = []
        for row in rows:
            cols += [k for k in row if k not in cols]
        log_cols = {k for k, d in self.space.items() if isinstance(d, LogUniform)}

        def cell(k, v):
            if v is None:
                return ""
            if isinstance(v, float):
                if math.isnan(v):
                    return "nan"
                return f"{v:.3e}" if k in log_cols else f"{v:.4f}"
            return str(v)

        cells = [cols] + [[cell(k, r.get(k)) for k in cols] for r in rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self):
        ok = sum(t.ok for t in self.trials)
        best = f", best {self.metric}={self.trials[0].score:.4g}" if ok else ""
        return f"SearchResult({len(self.trials)} trials, {ok} ok{best})"


def random_search(objective, space, n_trials=20, *, seed=0, executor=None, n_jobs=None,
                  metric="score", mode="max", args=(), kwargs=None, callback=None):
    """Run ``n_trials`` random trials of ``objective`` over ``space``; a :class:`SearchResult`.

    ``executor``: any ``concurrent.futures.Executor`` (not shut down here); None: a local
    process pool of ``n_jobs`` workers (default: the CPU count), or inline with ``n_jobs=1``.
    ``metric``/``mode``: which returned metric ranks the trials, and whether larger
    (``"max"``) or smaller (``"min"``) is better.  ``callback(trial)`` is called in this
    process as each trial finishes (in completion order, which varies; the result does not).
    """
    if not callable(objective):
        raise TypeError(f"objective must be a callable, got {objective!r}")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1):
        raise ValueError(f"n_jobs must be an int >= 1 or None, got {n_jobs!r}")
    plan = trial_plan(space, n_trials, seed)
    args, kwargs = tuple(args), dict(kwargs or {})
    trials = []

    def record(i, outcome):
        value, error, seconds = outcome
        params, trial_seed = plan[i]
        trial = Trial(i, params, trial_seed, error=error, seconds=seconds)
        if error is None:
            try:
                trial.score, trial.metrics = _score(value, metric)
            except (KeyError, TypeError, ValueError) as exc:
                trial.error = f"{type(exc).__name__}: {exc}"
        trials.append(trial)
        if callback is not None:
            callback(trial)

    if executor is None and n_jobs == 1:
        for i, (params, trial_seed) in enumerate(plan):
            record(i, _run_trial(objective, params, trial_seed, args, kwargs))
        return SearchResult(trials, space, metric, mode, seed)

    from ._mp import get_context
    own = executor is None
    if own:
        try:
            pickle.dumps(objective)
        except Exception as exc:
            raise TypeError(f"objective {objective!r} cannot be sent to worker processes "
                            f"({exc}); use a module-level function, or n_jobs=1") from None
        executor = ProcessPoolExecutor(max_workers=min(n_jobs or os.cpu_count() or 1, len(plan)),
                                       mp_context=get_context())
    try:
        futures = {executor.submit(_run_trial, objective, params, trial_seed, args, kwargs): i
                   for i, (params, trial_seed) in enumerate(plan)}
        for future in as_completed(futures):
            record(futures[future], future.result())
    finally:
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
    return SearchResult(trials, space, metric, mode, seed)


# ----------------------------------------------------------------------------- the book's trial
def validation_split(x, t, fraction=0.2, seed=0):
    """``(x_train, t_train), (x_val, t_val)``: a seeded random ``fraction`` held out for
    validation (the book shuffles, then takes the first 20 %); the test set stays unseen."""
    fraction = _finite("fraction", fraction)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    x, t = np.asarray(x), np.asarray(t)
    if len(x) != len(t):
        raise ValueError(f"x has {len(x)} samples but t has {len(t)}")
    n_val = int(round(len(x) * fraction))
    if not 0 < n_val < len(x):
        raise ValueError(f"fraction={fraction!r} of {len(x)} samples leaves an empty split")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return (x[train], t[train]), (x[val], t[val])


def train_mlp(params, seed, x_train, t_train, x_val, t_val, *, epochs=50, hidden=100,
              hidden_layers=6, batch_size=100, optimizer="SGD"):
    """The book's hyperparameter_optimization trial: MultiLayerNet (ReLU, He) trained with
    ``optimizer`` for ``epochs``; returns ``{"val_acc", "train_acc", "val_acc_history",
    "train_acc_history"}`` (accuracies after every epoch).

    ``params`` holds ``lr`` and may hold ``weight_decay`` (default 0) and ``hidden`` (units
    per layer), ``hidden_layers``, ``batch_size``, which override the keywords.
    """
    from .models import MultiLayerNet
    from .trainer import Trainer
    p = dict(params)
    if "lr" not in p:
        raise KeyError(f"params must hold 'lr', got {sorted(p)}")
    layers = int(p.get("hidden_layers", hidden_layers))
    network = MultiLayerNet(int(np.prod(np.shape(x_train)[1:])),
                            [int(p.get("hidden", hidden))] * layers, int(np.max(t_train)) + 1,
                            weight_decay_lambda=float(p.get("weight_decay", 0.0)), seed=seed)
    trainer = Trainer(network, x_train, t_train, epochs=epochs,
                      mini_batch_size=int(p.get("batch_size", batch_size)), optimizer=optimizer,
                      optimizer_param={"lr": float(p["lr"])}, validation_data=(x_val, t_val),
                      verbose=False, seed=seed)
    trainer.train()
    return {"val_acc": trainer.val_acc_list[-1], "train_acc": trainer.train_acc_list[-1],
            "val_acc_history": list(trainer.val_acc_list),
            "train_acc_history": list(trainer.train_acc_list)}
