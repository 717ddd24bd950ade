"""The three benchmarked architectures in PyTorch (float32), for bench/compare.py.

SimpleConvNet, DeepConvNet and the 784-100-100-10 ReLU MLP with the book's layer
shapes (PyTorch's default initialisation: the weights' scale does not change the
time); a training step is forward, cross-entropy, backward and ``torch.optim.Adam``,
inference is ``model.eval()`` under ``torch.inference_mode()``.  Only the cost
matters here, so DeepConvNet uses PyTorch's inverted dropout where the book scales at
inference: the same work per step.

PyTorch lives in the bench environment only (bench/requirements.txt)::

    python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install -r bench/requirements.txt
    PYTHONPATH=. /tmp/benchvenv/bin/python bench/compare.py

Timing and FLOP counts come from cnn_core.benchmark, so all three implementations are
measured by the same code.
"""
import itertools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as TF

from cnn_core.benchmark import IMAGE_SHAPE, flop_counts, time_callable

MODELS = ("simple_convnet", "deep_convnet", "mlp")

try:   # one inter-op thread, as the other implementations; allowed only before any parallel work
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass


def build_model(name, seed=0):
    """One of :data:`MODELS` as an ``nn.Sequential`` in float32."""
    torch.manual_seed(seed)
    if name == "simple_convnet":
        return nn.Sequential(
            nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
            nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10))
    if name == "deep_convnet":
        layers, channels = [], 1
        for i, (out, pad) in enumerate(((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1))):
            layers += [nn.Conv2d(channels, out, 3, padding=pad), nn.ReLU()]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2, 2))
            channels = out
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 50), nn.ReLU(),
                             nn.Dropout(0.5), nn.Linear(50, 10), nn.Dropout(0.5))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100),
                             nn.ReLU(), nn.Linear(100, 10))
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")


def set_threads(n):
    """PyTorch's intra-op threads (its OpenMP and MKL/oneDNN pools) to ``n``."""
    torch.set_num_threads(int(n))


def _tensors(x, t):
    x = np.ascontiguousarray(np.asarray(x, np.float32).reshape((-1,) + IMAGE_SHAPE))
    x = torch.from_numpy(x)
    return x, (None if t is None else torch.from_numpy(np.asarray(t, np.int64)))


def make_train_step(model, lr=0.001):
    """``step(x, t)``: forward, cross-entropy, backward and an Adam update."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()

    def step(x, t):
        optimizer.zero_grad(set_to_none=True)
        loss = TF.cross_entropy(model(x), t)
        loss.backward()
        optimizer.step()
    return step


def _batches(x, t, batch_size, count, seed=0):
    if x is None:
        rng = np.random.default_rng(seed)
        x = rng.random((batch_size * min(count, 4),) + IMAGE_SHAPE).astype(np.float32)
        t = rng.integers(0, 10, len(x))
    x, t = _tensors(x, t)
    n = len(x) // batch_size
    return [(x[(i % n) * batch_size:(i % n + 1) * batch_size].contiguous(),
             t[(i % n) * batch_size:(i % n + 1) * batch_size].contiguous()) for i in range(count)]


def time_train_step(model_name, batch_size=100, repeats=10, threads=1, x=None, t=None, warmup=2,
                    seed=0):
    """Like ``cnn_core.benchmark.time_train_step``, for the PyTorch model."""
    set_threads(threads)
    model = build_model(model_name, seed)
    step = make_train_step(model)
    batches = _batches(x, t, batch_size, warmup + repeats, seed)
    batches = itertools.cycle(batches)
    timing = time_callable(lambda: step(*next(batches)), repeats, warmup)
    flops = flop_counts(model_name, batch_size)["train_step"]
    return dict(timing, model=model_name, threads=threads, batch_size=batch_size,
                data="random" if x is None else "mnist", flops=flops,
                gflops=flops / (timing["median_ms"] * 1e6))


def inference(model, x, batch_size=1000):
    """Scores of every image of the tensor ``x``, ``batch_size`` at a time."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def time_inference(model_name, x, threads=1, repeats=3, warmup=1, batch_size=1000, seed=0):
    """Median time of scoring every image of ``x`` (numpy, (N, 1, 28, 28) or (N, 784))."""
    set_threads(threads)
    model = build_model(model_name, seed)
    xt, _ = _tensors(x, None)
    for _ in range(warmup):     # a whole pass: the first passes over 10,000 images ran
        inference(model, xt, batch_size)      # up to 2x slower than later ones (allocator)
    timing = time_callable(lambda: inference(model, xt, batch_size), repeats, 0)
    flops = flop_counts(model_name)["forward_per_image"] * len(xt)
    return dict(timing, model=model_name, threads=threads, n_images=len(xt),
                images_per_s=len(xt) / (timing["median_ms"] / 1e3), flops=flops,
                gflops=flops / (timing["median_ms"] * 1e6))


def gemm_peak_gflops(threads=1, n=2048, repeats=5):
    """PyTorch's own float32 GEMM rate (its BLAS may differ from NumPy's)."""
    set_threads(threads)
    a = torch.rand(n, n)
    b = torch.rand(n, n)
    out = torch.empty(n, n)
    timing = time_callable(lambda: torch.mm(a, b, out=out), repeats, 1)
    return 2.0 * n ** 3 / (timing["min_ms"] * 1e6)


def make_train_workload(model_name, steps=20, batch_size=100, threads=1, seed=0):
    """Setup for ``cnn_core.benchmark.peak_rss_delta``: returns the callable training
    ``steps`` steps of the model on one batch."""
    set_threads(threads)
    model = build_model(model_name, seed)
    step = make_train_step(model)
    xb, tb = _batches(None, None, batch_size, 1, seed)[0]

    def run():
        for _ in range(steps):
            step(xb, tb)
    return run
