"""cnn_core against the book's NumPy code and PyTorch, in one run (issue 5).

For each thread count (default 1 and 2; cnn_core's kernels and BLAS via
cnn_core.benchmark.thread_limits, NumPy's BLAS via threadpoolctl, PyTorch via
torch.set_num_threads) and batch 100:

* training step (forward, loss, backward, Adam update) of SimpleConvNet, DeepConvNet and
  the 784-100-100-10 MLP: cnn_core float32, bench/book_numpy.py float64 (the book's
  precision), PyTorch float32;
* inference on the 10,000 MNIST test images (cnn_core and PyTorch in chunks of 1,000,
  the NumPy code in the book's chunks of 100);
* peak extra RSS of 20 DeepConvNet training steps per implementation, each in a fresh
  process (cnn_core.benchmark.peak_rss_delta);
* achieved GFLOP/s (analytic FLOPs of the layer shapes) against the float32 GEMM peak
  measured with np.matmul (and PyTorch's own torch.mm peak).

cnn_core and PyTorch are timed in ``--rounds`` alternating rounds (default 3) of
``--repeats`` steps each, and each median is taken over all of its rounds: this machine's
speed drifts by 10 % over minutes, and alternating keeps that drift out of their ratio.
Times are medians of the timed runs after warm-up; the NumPy inference is a single
timed run after a warm-up chunk (DeepConvNet takes ~26 s on 10,000 images: ``--skip-slow``
leaves it out).  PyTorch is skipped, with a message, when it is not importable.
Results go to ``--json`` (default bench/results.json).

    python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install -r bench/requirements.txt
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. \\
        /tmp/benchvenv/bin/python bench/compare.py [--quick] [--skip-slow]
"""
import argparse
import itertools
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import book_numpy  # noqa: E402

from cnn_core import benchmark  # noqa: E402

IMPLS = ("cnn_core", "numpy", "torch")


def load_data(data_dir=None):
    """MNIST from ``data_dir``, else the shared data beside the repository, else cnn_core's
    default directory; None if none has the files (random data is used then)."""
    if data_dir:
        return benchmark.load_mnist_or_none(data_dir)
    shared = os.environ.get("CNN_CORE_SHARED_DATA")
    candidates = [Path(shared) / "mnist"] if shared else []
    candidates += [BENCH_DIR.parents[1] / "shared" / "data" / "mnist", None]  # None: cnn_core's
    for directory in candidates:
        data = benchmark.load_mnist_or_none(directory)
        if data is not None:
            return data
    return None


def _import_torch_models():
    try:
        import torch_models
        return torch_models, None
    except ImportError as exc:
        return None, (f"PyTorch not importable ({exc}): its columns are skipped; install "
                      f"bench/requirements.txt into a bench venv to include it")


# ----------------------------------------------------------------------------- NumPy timings
def numpy_train_step(model_name, batch_size, repeats, threads, x=None, t=None, warmup=2, seed=0):
    """The book's training step (float64): gradient by backprop, then Adam.update."""
    net = book_numpy.build_model(model_name, seed)
    optimizer = book_numpy.Adam(lr=0.001)
    batches = [(np.asarray(xb, np.float64), tb) for xb, tb in
               benchmark.make_batches(x, t, batch_size, warmup + repeats, seed)]
    batches = itertools.cycle(batches)

    def step():
        book_numpy.train_step(net, optimizer, *next(batches))
    with benchmark.thread_limits(threads):
        timing = benchmark.time_callable(step, repeats, warmup)
    flops = benchmark.flop_counts(model_name, batch_size)["train_step"]
    return dict(timing, model=model_name, threads=threads, batch_size=batch_size,
                flops=flops, gflops=flops / (timing["median_ms"] * 1e6))


def numpy_inference(model_name, x, threads, seed=0, batch_size=100):
    """One timed pass over ``x`` after a warm-up chunk (the NumPy code is slow)."""
    net = book_numpy.build_model(model_name, seed)
    x = np.asarray(x, np.float64)
    with benchmark.thread_limits(threads):
        book_numpy.inference(net, x[:batch_size], batch_size)
        timing = benchmark.time_callable(lambda: book_numpy.inference(net, x, batch_size), 1, 0)
    flops = benchmark.flop_counts(model_name)["forward_per_image"] * len(x)
    return dict(timing, model=model_name, threads=threads, n_images=len(x),
                images_per_s=len(x) / (timing["median_ms"] / 1e3),
                flops=flops, gflops=flops / (timing["median_ms"] * 1e6))


# ----------------------------------------------------------------------------- the run
def merge_rounds(runs):
    """One timing from several rounds of the same measurement: all their times together."""
    merged = dict(runs[0])
    times = [t for r in runs for t in r["times_ms"]]
    merged.update(times_ms=times, median_ms=statistics.median(times), min_ms=min(times),
                  rounds=len(runs))
    merged["gflops"] = merged["flops"] / (merged["median_ms"] * 1e6)
    if "images_per_s" in merged:
        merged["images_per_s"] = merged["n_images"] / (merged["median_ms"] / 1e3)
    return merged


def run(threads=(1, 2), repeats=10, batch_size=100, quick=False, skip_slow=False,
        models=book_numpy.MODELS, data=None, rss=True, rss_steps=20, json_path=None, rounds=3):
    torch_models, torch_msg = _import_torch_models()
    if quick:
        repeats, rss_steps = min(repeats, 3), min(rss_steps, 5)
    (x_train, t_train), (x_test, _) = data if data is not None else ((None, None), (None, None))
    n_infer = 1000 if quick else benchmark.N_TEST_IMAGES
    if x_test is None:
        x_test, _ = benchmark.random_mnist(n_infer)
    x_test = x_test[:n_infer]
    env = benchmark.environment()
    if torch_models is not None:
        import torch
        env["torch"] = torch.__version__
        env["torch_parallel"] = torch.__config__.parallel_info().splitlines()[:8]
    out = {"environment": env, "config": {
        "threads": list(threads), "repeats": repeats, "batch_size": batch_size, "quick": quick,
        "skip_slow": skip_slow, "models": list(models), "rss_steps": rss_steps,
        "rounds": rounds,
        "data": "random" if data is None else "mnist", "inference_images": len(x_test),
        "dtypes": {"cnn_core": "float32", "numpy": "float64", "torch": "float32"},
        "inference_chunk": {"cnn_core": 1000, "numpy": 100, "torch": 1000}},
        "notes": [] if torch_msg is None else [torch_msg],
        "gemm_peak_gflops": {"numpy": {}, "torch": {}},
        "train_step": {impl: [] for impl in IMPLS}, "inference": {impl: [] for impl in IMPLS},
        "peak_rss": {}}
    print(f"cnn_core {env['cnn_core']}, NumPy {env['numpy']}, PyTorch {env.get('torch', '-')}, "
          f"{env['cpu']} ({env['cpu_count']} cores)")
    print(benchmark.blas_summary(env))
    if torch_msg:
        print(torch_msg)
    gemm_n = 1024 if quick else 2048

    def progress(text):
        print(f"  {text}", file=sys.stderr, flush=True)

    for n in threads:   # the GEMM peaks first, before anything else warms or fragments memory
        out["gemm_peak_gflops"]["numpy"][str(n)] = benchmark.gemm_peak_gflops(n, n=gemm_n)
        if torch_models is not None:
            out["gemm_peak_gflops"]["torch"][str(n)] = torch_models.gemm_peak_gflops(n, n=gemm_n)
    timed = {"cnn_core": (benchmark.time_train_step, benchmark.time_inference)}
    if torch_models is not None:
        timed["torch"] = (torch_models.time_train_step, torch_models.time_inference)
    for n in threads:                   # cnn_core and PyTorch in alternating rounds
        for model in models:
            steps = {impl: [] for impl in timed}
            passes = {impl: [] for impl in timed}
            for r in range(rounds):
                for impl, (train_step, inference) in timed.items():
                    progress(f"{impl} {model}, {n} thread(s), round {r + 1}/{rounds}")
                    steps[impl].append(train_step(model, batch_size, repeats, n, x_train,
                                                  t_train))
                    passes[impl].append(inference(model, x_test, n, 1 if quick else 3))
            for impl in timed:
                out["train_step"][impl].append(merge_rounds(steps[impl]))
                out["inference"][impl].append(merge_rounds(passes[impl]))
    for n in threads:
        for model in models:
            progress(f"numpy {model}, {n} thread(s)")
            out["train_step"]["numpy"].append(numpy_train_step(
                model, batch_size, repeats, n, x_train, t_train))
            if skip_slow and model == "deep_convnet":
                continue
            out["inference"]["numpy"].append(numpy_inference(model, x_test, n))
    if skip_slow and "deep_convnet" in models:
        out["notes"].append("NumPy DeepConvNet inference skipped (--skip-slow)")
    if rss and "deep_convnet" in models:
        setups = {"cnn_core": benchmark.train_workload, "numpy": book_numpy.make_train_workload}
        if torch_models is not None:
            setups["torch"] = torch_models.make_train_workload
        for impl, setup in setups.items():
            progress(f"peak RSS, {impl}")
            out["peak_rss"][impl] = dict(
                benchmark.peak_rss_delta(setup, "deep_convnet", rss_steps, batch_size, threads[0]),
                model="deep_convnet", steps=rss_steps, threads=threads[0])
    out["ratios"] = ratios(out)
    print_tables(out)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(out, f, indent=1)
        print(f"\nwrote {json_path}")
    return out


def _index(rows):
    return {(r["model"], r["threads"]): r for r in rows}


def ratios(out):
    """Per model and thread count: NumPy time / cnn_core time and PyTorch time / cnn_core
    time (above 1: cnn_core is faster), and each one's share of the GEMM peak."""
    rows = []
    for kind in ("train_step", "inference"):
        tables = {impl: _index(out[kind][impl]) for impl in IMPLS}
        for key, fast in tables["cnn_core"].items():
            peak = out["gemm_peak_gflops"]["numpy"][str(key[1])]
            row = {"kind": kind, "model": key[0], "threads": key[1]}
            for impl in IMPLS:
                r = tables[impl].get(key)
                row[f"{impl}_ms"] = None if r is None else r["median_ms"]
                row[f"{impl}_gflops"] = None if r is None else r["gflops"]
                row[f"{impl}_pct_of_gemm_peak"] = None if r is None else 100 * r["gflops"] / peak
            for impl in ("numpy", "torch"):
                row[f"{impl}_over_cnn_core"] = (None if row[f"{impl}_ms"] is None
                                                else row[f"{impl}_ms"] / row["cnn_core_ms"])
            rows.append(row)
    return rows


def _f(v, width, digits=1, suffix=""):
    return f"{'-':>{width}}" if v is None else f"{v:{width}.{digits}f}{suffix}"


def print_tables(out):
    cfg = out["config"]
    for kind, title in (("train_step", f"training step, batch {cfg['batch_size']} (ms)"),
                        ("inference", f"inference, {cfg['inference_images']} images (ms)")):
        rounds = cfg.get("rounds", 1)
        per_round = cfg["repeats"] if kind == "train_step" else (1 if cfg["quick"] else 3)
        runs = (f"cnn_core and torch: median of {rounds} alternating rounds x {per_round} runs; "
                f"NumPy: median of {cfg['repeats']} runs" if kind == "train_step" else
                f"cnn_core and torch: median of {rounds} alternating rounds x {per_round} runs; "
                f"NumPy: 1 run")
        print(f"\n{title}; {runs}; data: {cfg['data']}; ratio > 1 means cnn_core is faster")
        head = (f"{'model':<15} {'thr':>3} {'cnn_core':>9} {'numpy f64':>10} {'torch':>9} "
                f"{'numpy/cnn':>9} {'torch/cnn':>9} {'cnn GF/s':>9} {'%peak':>6} "
                f"{'torch GF/s':>10} {'%peak':>6}")
        print(head)
        print("-" * len(head))
        for r in out["ratios"]:
            if r["kind"] != kind:
                continue
            print(f"{r['model']:<15} {r['threads']:>3} {_f(r['cnn_core_ms'], 9)} "
                  f"{_f(r['numpy_ms'], 10)} {_f(r['torch_ms'], 9)} "
                  f"{_f(r['numpy_over_cnn_core'], 8, 1, 'x')} "
                  f"{_f(r['torch_over_cnn_core'], 8, 2, 'x')} "
                  f"{_f(r['cnn_core_gflops'], 9)} {_f(r['cnn_core_pct_of_gemm_peak'], 6)} "
                  f"{_f(r['torch_gflops'], 10)} {_f(r['torch_pct_of_gemm_peak'], 6)}")
    peaks = out["gemm_peak_gflops"]
    print("\nfloat32 GEMM peak, GFLOP/s: np.matmul " + ", ".join(
        f"{v:.1f} ({n} thr)" for n, v in peaks["numpy"].items()) + (
        "; torch.mm " + ", ".join(f"{v:.1f} ({n} thr)" for n, v in peaks["torch"].items())
        if peaks["torch"] else ""))
    for impl, r in out["peak_rss"].items():
        mb = "n/a" if r["delta_bytes"] is None else f"{r['delta_bytes'] / 2 ** 20:8.1f} MiB"
        print(f"peak extra RSS, {r['steps']} DeepConvNet training steps, {impl:<8}: {mb}  "
              f"({r['method']})")
    for note in out["notes"]:
        print(f"note: {note}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=benchmark.thread_list, default=(1, 2),
                        help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--repeats", type=int, default=10,
                        help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of cnn_core and PyTorch (default 3)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--models", type=lambda s: tuple(s.split(",")), default=book_numpy.MODELS)
    parser.add_argument("--data-dir", default=None, help="MNIST directory")
    parser.add_argument("--json", default=str(BENCH_DIR / "results.json"), metavar="PATH")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 repeats, 1,000 inference images, 5 memory steps")
    parser.add_argument("--skip-slow", action="store_true",
                        help="leave out the NumPy DeepConvNet inference (~26 s a pass)")
    parser.add_argument("--rss-steps", type=int, default=20)
    parser.add_argument("--no-rss", action="store_true", help="skip the memory measurement")
    args = parser.parse_args(argv)
    bad = [m for m in args.models if m not in book_numpy.MODELS]
    if bad:
        parser.error(f"--models: {bad} not in {', '.join(book_numpy.MODELS)}")
    data = load_data(args.data_dir)
    if data is None:
        print("MNIST not found: timing on random data of MNIST's shape")
    if args.rounds < 1 or args.repeats < 1:
        parser.error(f"--rounds and --repeats must be >= 1, got {args.rounds} and {args.repeats}")
    run(args.threads, args.repeats, args.batch_size, args.quick, args.skip_slow, args.models,
        data, not args.no_rss, args.rss_steps, args.json, 1 if args.quick else args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
