"""cnn_core's compiled kernels against the book's vectorised NumPy algorithms (issue 2).

For every kernel -- im2col, col2im, max and average pooling forward and backward, batch
norm statistics/forward/backward -- at the layer shapes of the book's SimpleConvNet and
DeepConvNet (batch 100), in float32 and float64, this times ``cnn_core.functional``
against the NumPy version of the same textbook algorithm in ``bench/book_numpy.py``
(im2col by slicing over filter offsets, col2im by scatter-add, pooling through im2col +
max/argmax, batch norm with NumPy's mean/var).  Each pair is first checked to give the
same result.  The two implementations' runs are interleaved so that load from other
processes hits both alike; each sample loops the call until it lasts >= 2 ms, and the
median of ``--repeats`` samples after a warm-up is reported.

Targets (issue 2): im2col + col2im (sum of their times over the conv shapes) >= 5x faster
than NumPy, pooling forward + backward >= 10x.

    python bench/kernels.py [--threads 1,2] [--repeats 15] [--json PATH]

To measure the BLAS-free kernels the environment hardly matters, but on machines where
OPENBLAS_CORETYPE is forced, run ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...``
for numbers comparable with bench/compare.py; the BLAS kernel in use is printed.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import book_numpy as ref  # noqa: E402

from cnn_core import functional as F  # noqa: E402
from cnn_core.benchmark import (blas_summary, environment, thread_limits,  # noqa: E402
                                thread_list)

BATCH = 100
#: (layer, input shape, kernel, stride, pad) of every convolution of the book's two CNNs
CONV_CASES = (
    ("SimpleConvNet conv1", (BATCH, 1, 28, 28), 5, 1, 0),
    ("DeepConvNet conv1", (BATCH, 1, 28, 28), 3, 1, 1),
    ("DeepConvNet conv2", (BATCH, 16, 28, 28), 3, 1, 1),
    ("DeepConvNet conv3", (BATCH, 16, 14, 14), 3, 1, 1),
    ("DeepConvNet conv4", (BATCH, 32, 14, 14), 3, 1, 2),
    ("DeepConvNet conv5", (BATCH, 32, 8, 8), 3, 1, 1),
    ("DeepConvNet conv6", (BATCH, 64, 8, 8), 3, 1, 1),
)
#: (layer, input shape) of every 2x2 stride-2 pooling
POOL_CASES = (
    ("SimpleConvNet pool1", (BATCH, 30, 24, 24)),
    ("DeepConvNet pool1", (BATCH, 16, 28, 28)),
    ("DeepConvNet pool2", (BATCH, 32, 16, 16)),
    ("DeepConvNet pool3", (BATCH, 64, 8, 8)),
)
#: batch norm where the book uses it (MultiLayerNetExtend's hidden layers) and, per
#: channel, at DeepConvNet's activation shapes
BN_CASES = (
    ("MultiLayerNetExtend hidden", (BATCH, 100)),
    ("after DeepConvNet conv2", (BATCH, 16, 28, 28)),
    ("after DeepConvNet conv4", (BATCH, 32, 16, 16)),
    ("after DeepConvNet conv6", (BATCH, 64, 8, 8)),
)
EPS = 1e-6
MIN_SAMPLE_S = 2e-3


def _cases(dtype, rng):
    """(group, kernel, layer, shape, cnn_core callable, numpy callable, check pair) for all."""
    cases = []
    for layer, shape, k, s, p in CONV_CASES:
        x = rng.standard_normal(shape).astype(dtype)
        cols = F.im2col(x, k, k, s, p)
        dcols = rng.standard_normal(cols.shape).astype(dtype)
        cases.append(("im2col + col2im", "im2col", layer, shape,
                      lambda x=x, k=k, s=s, p=p: F.im2col(x, k, k, s, p),
                      lambda x=x, k=k, s=s, p=p: ref.im2col(x, k, k, s, p)))
        cases.append(("im2col + col2im", "col2im", layer, shape,
                      lambda d=dcols, sh=shape, k=k, s=s, p=p: F.col2im(d, sh, k, k, s, p),
                      lambda d=dcols, sh=shape, k=k, s=s, p=p: ref.col2im(d, sh, k, k, s, p)))
    for layer, shape in POOL_CASES:
        x = rng.standard_normal(shape).astype(dtype)
        _, argmax = F.maxpool2d_forward(x, 2, 2, 2)
        _, arg_np = ref.maxpool_forward(x, 2, 2, 2)
        dout = rng.standard_normal(shape[:2] + (shape[2] // 2, shape[3] // 2)).astype(dtype)
        cases += [
            ("pooling forward + backward", "maxpool forward", layer, shape,
             lambda x=x: F.maxpool2d_forward(x, 2, 2, 2)[0],
             lambda x=x: ref.maxpool_forward(x, 2, 2, 2)[0]),
            ("pooling forward + backward", "maxpool backward", layer, shape,
             lambda d=dout, a=argmax, sh=shape: F.maxpool2d_backward(d, a, sh),
             lambda d=dout, a=arg_np, sh=shape: ref.maxpool_backward(d, a, sh, 2, 2, 2)),
            ("pooling forward + backward", "avgpool forward", layer, shape,
             lambda x=x: F.avgpool2d_forward(x, 2, 2, 2),
             lambda x=x: ref.avgpool_forward(x, 2, 2, 2)),
            ("pooling forward + backward", "avgpool backward", layer, shape,
             lambda d=dout, sh=shape: F.avgpool2d_backward(d, sh, 2, 2, 2),
             lambda d=dout, sh=shape: ref.avgpool_backward(d, sh, 2, 2, 2)),
        ]
    for layer, shape in BN_CASES:
        x = rng.standard_normal(shape).astype(dtype)
        n_feat = shape[1]
        gamma = (1 + 0.1 * rng.standard_normal(n_feat)).astype(dtype)
        beta = (0.1 * rng.standard_normal(n_feat)).astype(dtype)
        dout = rng.standard_normal(shape).astype(dtype)
        mean, var = F.batchnorm_stats(x)                  # float64, as cnn_core keeps them
        _, inv_std = F.batchnorm_forward(x, gamma, beta, mean, var, EPS)
        mean_np, var_np = ref.batchnorm_stats(x)          # x's dtype, as NumPy gives them
        _, std_np = ref.batchnorm_forward(x, gamma, beta, mean_np, var_np, EPS)
        cases += [
            ("batch norm", "BN stats", layer, shape,
             lambda x=x: F.batchnorm_stats(x), lambda x=x: ref.batchnorm_stats(x)),
            ("batch norm", "BN forward", layer, shape,
             lambda x=x, g=gamma, b=beta, m=mean, v=var: F.batchnorm_forward(x, g, b, m, v, EPS)[0],
             lambda x=x, g=gamma, b=beta, m=mean_np, v=var_np:
                 ref.batchnorm_forward(x, g, b, m, v, EPS)[0]),
            ("batch norm", "BN backward", layer, shape,
             lambda d=dout, x=x, g=gamma, m=mean, i=inv_std: F.batchnorm_backward(d, x, g, m, i),
             lambda d=dout, x=x, g=gamma, m=mean_np, s=std_np:
                 ref.batchnorm_backward(d, x, g, m, s)),
        ]
    return cases


def _max_rel_error(a, b):
    """Largest |a - b| relative to the size of b, over arrays or tuples of arrays."""
    if isinstance(a, tuple):
        return max(_max_rel_error(u, v) for u, v in zip(a, b))
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _loops(fn):
    """How many calls make a sample of at least MIN_SAMPLE_S."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    return max(1, math.ceil(MIN_SAMPLE_S / max(once, 1e-9)))


def _sample(fn, loops):
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def time_pair(fast, slow, repeats, warmup=2):
    """Median seconds per call of ``fast`` and ``slow``, their samples interleaved."""
    for _ in range(warmup):
        fast()
        slow()
    loops_fast, loops_slow = _loops(fast), _loops(slow)
    t_fast, t_slow = [], []
    for _ in range(repeats):
        t_fast.append(_sample(fast, loops_fast))
        t_slow.append(_sample(slow, loops_slow))
    return statistics.median(t_fast), statistics.median(t_slow)


def run(threads=(1,), repeats=15, dtypes=(np.float32, np.float64), seed=0, verbose=True):
    """Time every case for every dtype and thread count; returns rows and aggregates."""
    rows = []
    for dtype in dtypes:
        cases = _cases(np.dtype(dtype), np.random.default_rng(seed))
        tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
        for group, kernel, layer, shape, fast, slow in cases:
            err = _max_rel_error(fast(), slow())
            for n in threads:
                with thread_limits(n):
                    t_fast, t_slow = time_pair(fast, slow, repeats)
                row = {"group": group, "kernel": kernel, "layer": layer, "shape": list(shape),
                       "dtype": np.dtype(dtype).name, "threads": n,
                       "cnn_core_ms": t_fast * 1e3, "numpy_ms": t_slow * 1e3,
                       "speedup": t_slow / t_fast, "max_rel_error": err, "check_ok": err <= tol}
                rows.append(row)
                if verbose:
                    _print_row(row)
    return rows, aggregates(rows)


TARGETS = {"im2col + col2im": 5.0, "pooling forward + backward": 10.0}


def aggregates(rows):
    """Sum of NumPy times / sum of cnn_core times per group (and per max/avg pooling),
    for each (dtype, threads) and over both dtypes."""
    groups = {}
    for r in rows:
        names = [r["group"]]
        if r["kernel"].startswith(("maxpool", "avgpool")):
            names.append(r["kernel"].split()[0] + " forward + backward")
        for name in names:
            for dtype in (r["dtype"], "both dtypes"):
                g = groups.setdefault((name, dtype, r["threads"]), [0.0, 0.0])
                g[0] += r["cnn_core_ms"]
                g[1] += r["numpy_ms"]
    out = []
    for (name, dtype, n), (fast, slow) in groups.items():
        target = TARGETS.get(name)
        out.append({"aggregate": name, "dtype": dtype, "threads": n, "cnn_core_ms": fast,
                     "numpy_ms": slow, "speedup": slow / fast, "target": target,
                     "target_met": None if target is None else slow / fast >= target})
    return out


HEAD = (f"{'kernel':<17} {'layer':<27} {'shape':<18} {'dtype':<7} {'thr':>3} "
        f"{'cnn_core ms':>11} {'numpy ms':>9} {'speedup':>8}  check")


def _print_row(r):
    shape = "x".join(map(str, r["shape"]))
    check = "ok" if r["check_ok"] else f"MISMATCH (rel err {r['max_rel_error']:.1e})"
    print(f"{r['kernel']:<17} {r['layer']:<27} {shape:<18} {r['dtype']:<7} {r['threads']:>3} "
          f"{r['cnn_core_ms']:11.3f} {r['numpy_ms']:9.3f} {r['speedup']:7.1f}x  {check}",
          flush=True)


def _print_aggregates(aggs):
    print(f"\n{'aggregate (sum of times)':<30} {'dtype':<12} {'thr':>3} {'cnn_core ms':>11} "
          f"{'numpy ms':>9} {'speedup':>8}  target")
    for a in sorted(aggs, key=lambda a: (a["aggregate"], a["threads"], a["dtype"])):
        target = "" if a["target"] is None else (
            f">= {a['target']:.0f}x: {'met' if a['target_met'] else 'NOT met'}")
        print(f"{a['aggregate']:<30} {a['dtype']:<12} {a['threads']:>3} {a['cnn_core_ms']:11.3f} "
              f"{a['numpy_ms']:9.3f} {a['speedup']:7.1f}x  {target}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=thread_list, default=(1, 2),
                        help="cnn_core kernel thread counts, comma-separated (default 1,2; "
                             "the NumPy code runs on one core whatever the count)")
    parser.add_argument("--repeats", type=int, default=15, help="timed samples per kernel")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    env = environment()
    print(f"cnn_core {env['cnn_core']}, NumPy {env['numpy']}, {env['cpu']} "
          f"({env['cpu_count']} cores), OpenMP {'on' if env['openmp'] else 'off'}")
    print(blas_summary(env))
    print(f"median of {args.repeats} interleaved samples after warm-up, batch {BATCH}\n")
    print(HEAD)
    print("-" * len(HEAD))
    dtypes = tuple(np.dtype(d) for d in args.dtypes.split(","))
    rows, aggs = run(args.threads, args.repeats, dtypes)
    _print_aggregates(aggs)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "config": {"threads": list(args.threads),
                       "repeats": args.repeats, "dtypes": [d.name for d in dtypes],
                       "batch": BATCH}, "kernels": rows, "aggregates": aggs}, f, indent=1)
        print(f"\nwrote {args.json}")
    return 0 if all(r["check_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
