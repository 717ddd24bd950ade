"""Timing harness for cnn_core's book networks (the engine of ``cnn-core bench``).

What it measures, all in float32 with the book's batch of 100 and Adam:

* :func:`time_train_step` -- one training step (forward, loss, backward, Adam update)
  of ``simple_convnet``, ``deep_convnet`` or ``mlp`` (784-100-100-10 ReLU), on real MNIST
  batches when they are passed, else on random data of MNIST's shape;
* :func:`time_inference` -- scores of the 10,000 test images (or random data of that shape);
* :func:`peak_rss_delta` -- extra peak resident memory of a workload, in a fresh process;
* :func:`gemm_peak_gflops` -- the machine's float32 GEMM rate (a large ``np.matmul``), the
  yardstick of the GFLOP/s that :func:`flop_counts` turns step times into;
* :func:`profile_train_step` -- per-layer forward/backward times of one step, with the
  share of the im2col/col2im/pooling kernels and of the GEMMs in each convolution.

Every time is the median of ``repeats`` runs after ``warmup`` runs that are not counted.
Threads: :func:`thread_limits` sets cnn_core's kernel threads and BLAS's threads to the
same ``n`` for the duration of a measurement (never nested: the kernels call no BLAS
inside their parallel regions).  ``bench/compare.py`` reuses these functions to put
cnn_core beside the book's NumPy code and PyTorch.  No import of torch or of ``bench/``.
"""
import argparse
import contextlib
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

__all__ = ["MODELS", "build_model", "thread_limits", "time_callable", "flop_counts",
           "time_train_step", "time_inference", "peak_rss_delta", "train_workload",
           "gemm_peak_gflops", "profile_train_step", "load_mnist_or_none", "random_mnist",
           "make_batches", "environment", "blas_summary", "run", "main"]

#: the benchmarked networks (names shared with bench/book_numpy.py and bench/torch_models.py)
MODELS = ("simple_convnet", "deep_convnet", "mlp")
IMAGE_SHAPE = (1, 28, 28)
N_TEST_IMAGES = 10_000


# ----------------------------------------------------------------------------- building blocks
def build_model(name, dtype=np.float32, seed=0):
    """The book's network called ``name`` (one of :data:`MODELS`), 28x28 MNIST input."""
    from . import models
    if name == "simple_convnet":
        return models.SimpleConvNet(dtype=dtype, seed=seed)
    if name == "deep_convnet":
        return models.DeepConvNet(dtype=dtype, seed=seed)
    if name == "mlp":
        return models.MultiLayerNet(784, [100, 100], 10, dtype=dtype, seed=seed)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")


@contextlib.contextmanager
def thread_limits(n):
    """cnn_core's OpenMP kernels and the BLAS under ``np.matmul`` both on ``n`` threads."""
    from threadpoolctl import threadpool_limits

    from ._threads import set_num_threads
    previous = set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        set_num_threads(previous)


def time_callable(fn, repeats=10, warmup=2):
    """Run ``fn()`` ``warmup`` times untimed, then ``repeats`` times: median/min/all in ms."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats!r}, {warmup!r}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "times_ms": times}


def flop_counts(model_name, batch_size=100):
    """Analytic FLOPs (2 per multiply-add) of the convolutions and Affine layers, from the
    layer shapes: ``forward`` per batch, ``train_step`` = forward + dW + dx GEMMs, without the
    dx of the first layer (which no implementation needs).  Element-wise work (ReLU,
    pooling, softmax, Adam) is below 1% here and not counted, as is usual for GFLOP/s."""
    from .layers import Affine, Convolution
    net = build_model(model_name)
    shapes = [net.input_shape] + net.output_shapes
    macs = []
    for layer, out_shape in zip(net.layers, shapes[1:]):
        if isinstance(layer, Convolution):
            macs.append(int(np.prod(out_shape)) * int(np.prod(layer.W.shape[1:])))
        elif isinstance(layer, Affine):
            macs.append(int(layer.W.shape[0]) * int(layer.W.shape[1]))
    forward = 2 * sum(macs) * batch_size
    backward = 2 * (2 * sum(macs) - macs[0]) * batch_size
    return {"forward": forward, "train_step": forward + backward,
            "forward_per_image": 2 * sum(macs)}


def random_mnist(n, seed=0, dtype=np.float32):
    """``n`` random images of MNIST's shape in [0, 1) and random labels 0..9."""
    rng = np.random.default_rng(seed)
    return rng.random((n,) + IMAGE_SHAPE, dtype=np.float64).astype(dtype), rng.integers(0, 10, n)


def make_batches(x, t, batch_size, count, seed=0):
    """``count`` (x, t) mini-batches: consecutive slices of x, t cycled, or random ones."""
    if x is None:
        x, t = random_mnist(batch_size * min(count, 4), seed)
    x = np.asarray(x, np.float32).reshape((-1,) + IMAGE_SHAPE)
    t = np.asarray(t)
    n = x.shape[0] // batch_size
    if n < 1:
        raise ValueError(f"need at least batch_size={batch_size} images, got {x.shape[0]}")
    return [(np.ascontiguousarray(x[(i % n) * batch_size:(i % n + 1) * batch_size]),
             t[(i % n) * batch_size:(i % n + 1) * batch_size]) for i in range(count)]


def _train_step_fn(net, batches):
    """A closure doing one step on the next batch: net.gradient + Adam.update (the book's)."""
    from .optim import Adam
    optimizer = Adam(lr=0.001)
    batches = itertools.cycle(batches)

    def step():
        xb, tb = next(batches)
        grads = net.gradient(xb, tb)
        optimizer.update(net.params, grads)
    return step


# ----------------------------------------------------------------------------- measurements
def time_train_step(model_name, batch_size=100, repeats=10, threads=1, x=None, t=None,
                    warmup=2, seed=0):
    """Median time of one float32 training step (forward, loss, backward, Adam update).

    ``x`` (N, 1, 28, 28) or (N, 784) and labels ``t``: real batches, taken in order;
    without them, random data of MNIST's shape.  Returns a dict (ms, GFLOP/s, ...).
    """
    net = build_model(model_name, seed=seed)
    step = _train_step_fn(net, make_batches(x, t, batch_size, warmup + repeats, seed))
    with thread_limits(threads):
        timing = time_callable(step, repeats, warmup)
    flops = flop_counts(model_name, batch_size)["train_step"]
    return dict(timing, model=model_name, threads=threads, batch_size=batch_size,
                data="random" if x is None else "mnist", flops=flops,
                gflops=flops / (timing["median_ms"] * 1e6))


def time_inference(model_name, x=None, threads=1, repeats=3, warmup=1, seed=0):
    """Median time of ``net.predict`` over ``x`` (default: random data of the 10,000 MNIST
    test images' shape); ``predict`` runs in chunks of 1,000 images."""
    if x is None:
        x, _ = random_mnist(N_TEST_IMAGES, seed)
    x = np.ascontiguousarray(np.asarray(x, np.float32).reshape((-1,) + IMAGE_SHAPE))
    net = build_model(model_name, seed=seed)
    with thread_limits(threads):
        for _ in range(warmup):     # a whole pass, as bench/torch_models.py does
            net.predict(x)
        timing = time_callable(lambda: net.predict(x), repeats, 0)
    flops = flop_counts(model_name)["forward_per_image"] * len(x)
    return dict(timing, model=model_name, threads=threads, n_images=len(x),
                images_per_s=len(x) / (timing["median_ms"] / 1e3),
                flops=flops, gflops=flops / (timing["median_ms"] * 1e6))


def gemm_peak_gflops(threads=1, n=2048, repeats=5, dtype=np.float32):
    """The float32 GEMM rate of this machine's BLAS: best of ``repeats`` ``(n, n) @ (n, n)``."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n)).astype(dtype)
    b = rng.random((n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    with thread_limits(threads):
        timing = time_callable(lambda: np.matmul(a, b, out=out), repeats, 1)
    return 2.0 * n ** 3 / (timing["min_ms"] * 1e6)


# ----------------------------------------------------------------------------- peak memory
def _current_rss():
    """Resident set size in bytes (None where it cannot be read)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        return None


def _peak_rss():
    """Peak resident set size in bytes: VmHWM on Linux, ru_maxrss elsewhere (None if neither)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:   # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024   # bytes on macOS, KiB elsewhere


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measure_peak(setup, args, kwargs):
    """In this process: ``workload = setup(*args, **kwargs)``, then the peak above the RSS
    that setup left, while ``workload()`` runs."""
    workload = setup(*args, **kwargs)
    if not callable(workload):
        raise TypeError(f"setup must return the workload as a callable, got {workload!r}")
    gc.collect()
    before = _current_rss()
    reset = _reset_peak_rss()
    peak_before = _peak_rss()
    workload()
    peak = _peak_rss()
    if peak is None or (before is None and peak_before is None):
        return {"delta_bytes": None, "method": "unavailable on this platform"}
    if reset:
        baseline, method = before, "VmHWM reset through /proc/self/clear_refs"
    else:
        # The peak cannot be reset: the delta above the earlier peak is a lower bound,
        # close to exact in a fresh process, whose earlier peak is about its current RSS.
        baseline = max(v for v in (before, peak_before) if v is not None)
        method = "ru_maxrss above the earlier peak (lower bound)"
    return {"delta_bytes": max(0, peak - baseline), "baseline_bytes": before,
            "peak_bytes": peak, "method": method}


def peak_rss_delta(setup, *args, fresh_process=True, timeout=1800, **kwargs):
    """Extra peak resident memory of a workload, in bytes, as a dict.

    ``setup(*args, **kwargs)`` builds what the workload needs (network, data) and returns a
    zero-argument callable, the workload; the result's ``delta_bytes`` is the peak RSS while
    it runs minus the RSS after setup.  With ``fresh_process`` (default) all of this happens
    in a new interpreter ("spawn"), so nothing the caller allocated before counts; ``setup``
    must then be a module-level function.  ``delta_bytes`` is None where the platform has no
    way to read the peak (Windows without psutil).
    """
    if not fresh_process:
        return _measure_peak(setup, args, kwargs)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # The child does not keep freed heap (cnn_core._memory): memory that setup freed would
    # then serve the workload without raising the RSS, and the footprint would read low.
    saved = os.environ.get("CNN_CORE_KEEP_MEMORY")
    os.environ["CNN_CORE_KEEP_MEMORY"] = "0"
    try:
        # spawn, not fork: a fresh interpreter, and safe after OpenMP use (see cnn_core._mp)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_measure_peak, setup, args, kwargs).result(timeout)
    finally:
        if saved is None:
            del os.environ["CNN_CORE_KEEP_MEMORY"]
        else:
            os.environ["CNN_CORE_KEEP_MEMORY"] = saved


def train_workload(model_name, steps=20, batch_size=100, threads=1, seed=0):
    """:func:`peak_rss_delta` setup: a network and a batch; the workload trains ``steps`` steps."""
    from threadpoolctl import threadpool_limits

    from ._threads import set_num_threads
    set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")
    net = build_model(model_name, seed=seed)
    step = _train_step_fn(net, make_batches(None, None, batch_size, 1, seed))

    def run():
        for _ in range(steps):
            step()
    return run


# ----------------------------------------------------------------------------- profile
_KERNELS = ("im2col", "col2im", "maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward",
            "avgpool2d_backward", "batchnorm_stats", "batchnorm_forward", "batchnorm_backward",
            "adam_update")


#: compiled kernels that cnn_core.functional calls directly, inside convolutions (and their
#: fused pooling and ReLU) and in the 2x2 pooling and ReLU entry points, by module
_CONV_KERNELS = {"_im2col": ("im2col_t", "col2im_t"),
                 "_winograd": ("pad_planes", "input_transform", "output_transform",
                               "output_adjoint", "input_adjoint"),
                 "_pool": ("maxpool2x2_forward", "maxpool2x2_backward"),
                 "_elementwise": ("relu_forward", "relu_backward")}


@contextlib.contextmanager
def _timed_kernels(sink):
    """Wrap the functional kernel entry points, and the compiled kernels a convolution calls,
    so that their time adds to ``sink[name]`` (callers look the names up at call time, so
    they see the wrappers).  Kernels run by the convolution's worker threads add up: on
    several threads the sum can exceed the wall time."""
    import threading
    from . import functional
    lock = threading.Lock()
    targets = [(functional, name) for name in _KERNELS]
    targets += [(getattr(functional, module), name)
                for module, names in _CONV_KERNELS.items() for name in names]
    originals = [(owner, name, getattr(owner, name)) for owner, name in targets]

    def wrap(name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                with lock:
                    sink[name] = sink.get(name, 0.0) + elapsed
        return timed
    try:
        for owner, name, fn in originals:
            setattr(owner, name, wrap(name, fn))
        yield
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def _conv_gemm_ms(layer, repeats):
    """Median ms of a convolution step's matrix products at its shapes, run alone as the
    convolution runs them: (forward, backward).  im2col: one GEMM per sample for the
    forward, dW and dcols.  Winograd: the 16 cell products per micro-batch for the forward,
    dU and dV, times the number of micro-batches."""
    from . import functional as F
    W = layer.params["W"]
    n_filters, n_channels, kh, kw = W.shape
    n_batch, _, h, w = layer.x.shape
    out_h = F.conv_output_size(h, kh, layer.stride, layer.pad)
    out_w = F.conv_output_size(w, kw, layer.stride, layer.pad)
    rng = np.random.default_rng(0)
    if F._conv_algorithm(layer.algorithm, W.shape, layer.stride) == "winograd":
        plan = F._WinogradPlan(layer.x.shape, n_filters, layer.pad, out_h, out_w,
                               W.dtype.itemsize)
        u = F._winograd_weights(W)
        u_t = np.ascontiguousarray(u.transpose(0, 2, 1))
        v = plan.view(plan.cells(n_channels, W.dtype), n_channels, plan.step)
        m = plan.view(plan.cells(n_filters, W.dtype), n_filters, plan.step)
        v[...] = rng.standard_normal(v.shape)
        m[...] = rng.standard_normal(m.shape)
        du = np.empty((16, n_filters, n_channels), dtype=W.dtype)
        fwd = time_callable(lambda: np.matmul(u, v, out=m), repeats, 1)["median_ms"]
        bwd = (time_callable(lambda: np.matmul(m, v.transpose(0, 2, 1), out=du), repeats,
                             1)["median_ms"]
               + time_callable(lambda: np.matmul(u_t, m, out=v), repeats, 1)["median_ms"])
        return fwd * plan.n_micro, bwd * plan.n_micro
    w2 = W.reshape(n_filters, -1)
    cols = rng.standard_normal((n_batch, w2.shape[1], out_h * out_w)).astype(W.dtype)
    dout = rng.standard_normal((n_batch, n_filters, out_h * out_w)).astype(W.dtype)
    fwd = time_callable(lambda: np.matmul(w2, cols), repeats, 1)["median_ms"]
    bwd = (time_callable(lambda: np.matmul(dout, cols.transpose(0, 2, 1)), repeats, 1)["median_ms"]
           + time_callable(lambda: np.matmul(w2.T, dout), repeats, 1)["median_ms"])
    return fwd, bwd


def profile_train_step(model_name, batch_size=100, repeats=10, threads=1, x=None, t=None,
                       warmup=2, seed=0):
    """Per-layer median forward and backward ms of one training step, plus loss and Adam.

    Each row also holds the time spent in cnn_core's compiled kernels (im2col, col2im,
    Winograd transforms, pooling, batch norm; summed over threads) during that layer, and
    for convolutions the time of its matrix products run alone at the same shapes (on one
    thread's worth of work: the whole batch); the rest is layout, copies and checks.
    """
    from .optim import Adam
    net = build_model(model_name, seed=seed)
    batches = make_batches(x, t, batch_size, warmup + repeats, seed)
    optimizer = Adam(lr=0.001)
    # the nodes the passes really run: fused conv + ReLU + pool nodes, a Relu after its pool
    order = net.execution_order()
    samples = [{"forward": [], "backward": [], "kernels_fwd": [], "kernels_bwd": []}
               for _ in order]
    extra = {"loss forward": [], "loss backward": [], "Adam update": [], "total": []}
    clock = time.perf_counter
    from ._workers import blas_single_thread
    # BLAS single-threaded for the layers, as in Sequential's own passes
    with thread_limits(threads), blas_single_thread():
        for i, (xb, tb) in enumerate(batches):
            record = i >= warmup
            step_start = clock()
            h = net._as_input(xb)
            for k, node in enumerate(order):
                sink = {}
                with _timed_kernels(sink):
                    start = clock()
                    h = node.forward(h, True)
                    elapsed = clock() - start
                if record:
                    samples[k]["forward"].append(elapsed)
                    samples[k]["kernels_fwd"].append(sum(sink.values()))
            start = clock()
            net.last_layer.forward(h, tb)
            loss_fwd = clock() - start
            start = clock()
            dout = net.last_layer.backward(1)
            loss_bwd = clock() - start
            for k in reversed(range(len(order))):
                sink = {}
                with _timed_kernels(sink):
                    start = clock()
                    dout = order[k].backward(dout)
                    elapsed = clock() - start
                if record:
                    samples[k]["backward"].append(elapsed)
                    samples[k]["kernels_bwd"].append(sum(sink.values()))
            start = clock()
            grads = {name: layer.grads[key] for name, (layer, key) in net._index.items()}
            optimizer.update(net.params, grads)
            adam = clock() - start
            if record:
                extra["loss forward"].append(loss_fwd)
                extra["loss backward"].append(loss_bwd)
                extra["Adam update"].append(adam)
                extra["total"].append(clock() - step_start)
        rows = []
        from .layers import Convolution
        position = {id(layer): k for k, layer in enumerate(net.layers)}
        for k, node in enumerate(order):
            s = {key: statistics.median(v) * 1e3 for key, v in samples[k].items()}
            parts = getattr(node, "layers", (node,))
            row = {"layer": repr(node),
                   "output_shape": list(net.output_shapes[max(position[id(p)] for p in parts)]),
                   "forward_ms": s["forward"], "backward_ms": s["backward"],
                   "kernels_forward_ms": s["kernels_fwd"], "kernels_backward_ms": s["kernels_bwd"]}
            if isinstance(parts[0], Convolution):
                row["gemm_forward_ms"], row["gemm_backward_ms"] = _conv_gemm_ms(parts[0], repeats)
            rows.append(row)
    others = {key: statistics.median(v) * 1e3 for key, v in extra.items()}
    return {"model": model_name, "threads": threads, "batch_size": batch_size, "layers": rows,
            "loss_forward_ms": others["loss forward"], "loss_backward_ms": others["loss backward"],
            "adam_ms": others["Adam update"], "step_ms": others["total"]}


def _print_profile(p):
    total = p["step_ms"]
    print(f"\nprofile: {p['model']}, batch {p['batch_size']}, {p['threads']} thread(s); "
          f"step {total:.2f} ms (median; kern = compiled kernels, summed over threads; "
          f"gemm = the layer's matrix products timed alone)")
    width = max([32] + [len(r["layer"]) for r in p["layers"]])
    head = (f"{'layer':<{width}} {'fwd ms':>8} {'kern':>7} {'gemm':>7} {'bwd ms':>8} {'kern':>7} "
            f"{'gemm':>7} {'% step':>7}")
    print(head)
    print("-" * len(head))

    def fmt(v):
        return f"{v:7.2f}" if v is not None else f"{'':7}"
    for r in p["layers"]:
        share = 100 * (r["forward_ms"] + r["backward_ms"]) / total
        print(f"{r['layer']:<{width}} {r['forward_ms']:8.2f} {fmt(r['kernels_forward_ms'] or None)} "
              f"{fmt(r.get('gemm_forward_ms'))} {r['backward_ms']:8.2f} "
              f"{fmt(r['kernels_backward_ms'] or None)} {fmt(r.get('gemm_backward_ms'))} "
              f"{share:7.1f}")
    for name, key in (("SoftmaxWithLoss", "loss_forward_ms"), ("SoftmaxWithLoss backward",
                                                              "loss_backward_ms"),
                      ("Adam update", "adam_ms")):
        print(f"{name:<{width}} {p[key]:8.2f} {'':>7} {'':>7} {'':>8} {'':>7} {'':>7} "
              f"{100 * p[key] / total:7.1f}")


# ----------------------------------------------------------------------------- data, environment
def load_mnist_or_none(data_dir=None):
    """MNIST as float32 (N, 1, 28, 28) from ``data_dir`` (or cnn_core's default directory),
    never downloading; None when the files are not there."""
    from . import datasets
    try:
        return datasets.load_mnist(flatten=False, dtype=np.float32, data_dir=data_dir,
                                   download=False, progress=False)
    except OSError:
        return None


def environment():
    """What the numbers depend on: versions, CPU, threads, the BLAS and its kernel."""
    from threadpoolctl import threadpool_info

    from . import __version__
    from ._threads import openmp_enabled
    blas = [{k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                      "threading_layer", "filepath")}
            for info in threadpool_info() if info.get("user_api") == "blas"]
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cnn_core": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "openmp": openmp_enabled(), "blas": blas,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def blas_summary(env):
    """One line naming the BLAS, its version and the kernel it runs (and a forced CORETYPE)."""
    parts = [f"{b['internal_api']} {b['version']} kernel={b['architecture']}" for b in env["blas"]]
    note = ""
    if env["OPENBLAS_CORETYPE"]:
        note = (f"  [OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} is set: the BLAS runs that "
                f"kernel, not the best one for this CPU]")
    return "BLAS: " + ("; ".join(parts) or "none found") + note


# ----------------------------------------------------------------------------- run, main
def run(threads=(1, 2), repeats=10, json_path=None, quick=False, batch_size=100,
        models=MODELS, data=None, profile=False, rss=True, rss_steps=20, verbose=True):
    """Every measurement above for each thread count; prints a table, returns a dict and
    writes it as JSON to ``json_path`` if given.

    ``data``: ``((x_train, t_train), (x_test, t_test))`` (e.g. :func:`load_mnist_or_none`),
    else random data of MNIST's shape.  ``quick``: at most 3 repeats, 1,000 inference
    images, a smaller GEMM and 5 steps for the memory measurement (a smoke run).
    """
    threads = tuple(int(n) for n in (threads if np.iterable(threads) else (threads,)))
    if quick:
        repeats, rss_steps = min(repeats, 3), min(rss_steps, 5)
    (x_train, t_train), (x_test, _) = data if data is not None else ((None, None), (None, None))
    n_infer = 1000 if quick else N_TEST_IMAGES
    if x_test is None:
        x_test, _ = random_mnist(n_infer)
    x_test = x_test[:n_infer]
    infer_repeats = 1 if quick else 3
    env = environment()
    out = {"environment": env, "config": {
        "threads": list(threads), "repeats": repeats, "batch_size": batch_size, "quick": quick,
        "dtype": "float32", "optimizer": "Adam(lr=0.001)", "models": list(models),
        "train_data": "random" if x_train is None else "mnist", "inference_images": len(x_test),
        "inference_data": "random" if data is None else "mnist"},
        "gemm_peak_gflops": {}, "train_step": [], "inference": [], "peak_rss": {}, "profile": []}
    say = print if verbose else (lambda *a, **k: None)
    say(f"cnn_core {env['cnn_core']}, NumPy {env['numpy']}, {env['cpu']} ({env['cpu_count']} "
        f"cores), OpenMP {'on' if env['openmp'] else 'off'}")
    say(blas_summary(env))
    for n in threads:
        peak = gemm_peak_gflops(n, n=1024 if quick else 2048, repeats=3 if quick else 5)
        out["gemm_peak_gflops"][str(n)] = peak
        for model in models:
            step = time_train_step(model, batch_size, repeats, n, x_train, t_train)
            step["pct_of_gemm_peak"] = 100 * step["gflops"] / peak
            out["train_step"].append(step)
            inf = time_inference(model, x_test, n, infer_repeats)
            inf["pct_of_gemm_peak"] = 100 * inf["gflops"] / peak
            out["inference"].append(inf)
    if rss:
        for model in models:
            out["peak_rss"][model] = dict(
                peak_rss_delta(train_workload, model, rss_steps, batch_size, threads[0]),
                steps=rss_steps, threads=threads[0])
    if profile:
        for model in ("simple_convnet", "deep_convnet"):
            if model in models:
                out["profile"].append(profile_train_step(model, batch_size, repeats, threads[0],
                                                         x_train, t_train))
    if verbose:
        _print_table(out)
        for p in out["profile"]:
            _print_profile(p)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(out, f, indent=1)
        say(f"\nwrote {json_path}")
    return out


def _print_table(out):
    cfg = out["config"]
    print(f"\nfloat32, batch {cfg['batch_size']}, Adam, median of {cfg['repeats']} runs after "
          f"warm-up; train data: {cfg['train_data']}; inference: {cfg['inference_images']} "
          f"images ({cfg['inference_data']})")
    head = (f"{'model':<15} {'thr':>3} {'train ms':>9} {'GFLOP/s':>8} {'% peak':>7} "
            f"{'infer ms':>9} {'img/s':>8} {'GFLOP/s':>8} {'% peak':>7}")
    print(head)
    print("-" * len(head))
    for step, inf in zip(out["train_step"], out["inference"]):
        print(f"{step['model']:<15} {step['threads']:>3} {step['median_ms']:9.2f} "
              f"{step['gflops']:8.1f} {step['pct_of_gemm_peak']:7.1f} {inf['median_ms']:9.1f} "
              f"{inf['images_per_s']:8.0f} {inf['gflops']:8.1f} {inf['pct_of_gemm_peak']:7.1f}")
    print("float32 GEMM peak (np.matmul): " + ", ".join(
        f"{v:.1f} GFLOP/s on {n} thread(s)" for n, v in out["gemm_peak_gflops"].items()))
    for model, r in out["peak_rss"].items():
        mb = "n/a" if r["delta_bytes"] is None else f"{r['delta_bytes'] / 2 ** 20:.1f} MiB"
        print(f"peak extra RSS of {r['steps']} {model} training steps: {mb} ({r['method']})")


def thread_list(text):
    """argparse type for --threads: comma-separated ints >= 1 (shared with bench/)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ints separated by commas, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {text!r}")
    return values


def main(argv=None):
    """``cnn-core bench`` / ``python -m cnn_core.benchmark``."""
    parser = argparse.ArgumentParser(
        prog="cnn-core bench", description="Time cnn_core's book networks: training step, "
        "inference, peak memory, GFLOP/s against the machine's GEMM peak.")
    parser.add_argument("--threads", type=thread_list, default=(1, 2),
                        help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--models", type=lambda s: tuple(s.split(",")), default=MODELS,
                        help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--data-dir", default=None,
                        help="MNIST directory (default: cnn_core's; random data if absent)")
    parser.add_argument("--random-data", action="store_true", help="do not look for MNIST")
    parser.add_argument("--json", default=None, metavar="PATH", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--profile", action="store_true",
                        help="also time each layer's forward and backward")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-memory measurement")
    args = parser.parse_args(argv)
    for m in args.models:
        if m not in MODELS:
            parser.error(f"--models: {m!r} is not one of {', '.join(MODELS)}")
    if args.repeats < 1 or args.batch_size < 1:
        parser.error("--repeats and --batch-size must be >= 1")
    data = None if args.random_data else load_mnist_or_none(args.data_dir)
    if data is None:
        print("MNIST not found: timing on random data of MNIST's shape")
    run(args.threads, args.repeats, args.json, args.quick, args.batch_size, args.models, data,
        args.profile, not args.no_rss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
