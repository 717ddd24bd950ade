"""cnn_core.benchmark runs end to end, and bench/book_numpy.py is the same network as cnn_core.

The benchmark is smoke-tested on tiny settings (batch 8, 2 repeats, --quick): what is
checked is that every measurement comes back positive and the JSON file is written, not
any speed.  The reference test proves that the NumPy code bench/compare.py times against
computes exactly cnn_core's SimpleConvNet.
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cnn_core import benchmark
from cnn_core.models import SimpleConvNet

BOOK_NUMPY = Path(__file__).resolve().parents[1] / "bench" / "book_numpy.py"


@pytest.fixture(scope="module")
def book_numpy():
    """bench/book_numpy.py, imported from the repository by path (bench/ is no package)."""
    if not BOOK_NUMPY.is_file():
        pytest.skip(f"{BOOK_NUMPY} is not here (tests run outside the repository)")
    spec = importlib.util.spec_from_file_location("book_numpy", BOOK_NUMPY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_quick_writes_json(tmp_path, restore_num_threads, capsys):
    path = tmp_path / "bench.json"
    assert benchmark.main(["--quick", "--threads", "1", "--repeats", "2", "--batch-size", "8",
                           "--random-data", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert {r["model"] for r in result["train_step"]} == set(benchmark.MODELS)
    for row in result["train_step"] + result["inference"]:
        assert row["median_ms"] > 0 and row["gflops"] > 0
    assert all(len(row["times_ms"]) == 2 for row in result["train_step"])
    assert all(v > 0 for v in result["gemm_peak_gflops"].values())
    for r in result["peak_rss"].values():
        assert r["delta_bytes"] is None or r["delta_bytes"] >= 0
    assert "train ms" in capsys.readouterr().out


def test_run_returns_positive_times_and_profile(restore_num_threads):
    out = benchmark.run(threads=1, repeats=2, quick=True, batch_size=8, models=("simple_convnet",),
                        profile=True, rss=False, verbose=False)
    step, = out["train_step"]
    assert step["median_ms"] > 0 and step["threads"] == 1 and step["batch_size"] == 8
    assert out["inference"][0]["n_images"] == 1000
    profile, = out["profile"]
    # rows are the nodes the passes run: conv + ReLU + pool fused, then Affine, Relu, ...
    assert [r["layer"] for r in profile["layers"]] == [
        "Conv2D(1->30, k=5, s=1, p=0) + Relu() + MaxPool(2x2, s=2, p=0)", "Affine(4320->100)",
        "Relu()", "Affine(100->10)"]
    assert profile["layers"][0]["output_shape"] == [30, 12, 12]
    assert all(r["forward_ms"] > 0 and r["backward_ms"] > 0 for r in profile["layers"])
    assert profile["layers"][0]["gemm_forward_ms"] > 0
    assert profile["layers"][0]["kernels_forward_ms"] > 0   # im2col and the max-pool kernel
    assert profile["layers"][2]["kernels_forward_ms"] > 0   # the ReLU kernel


def test_profile_reports_convolution_kernels_and_products(restore_num_threads):
    """DeepConvNet's layers: conv1 runs im2col, the others Winograd; both report the time of
    their compiled kernels and of their matrix products at their own shapes."""
    p = benchmark.profile_train_step("deep_convnet", batch_size=8, repeats=1, threads=1,
                                     warmup=1)
    convs = [r for r in p["layers"] if r["layer"].startswith("Conv2D")]
    assert len(convs) == 6
    for r in convs:
        assert r["kernels_forward_ms"] > 0 and r["kernels_backward_ms"] > 0, r["layer"]
        assert r["gemm_forward_ms"] > 0 and r["gemm_backward_ms"] > 0, r["layer"]
        assert r["kernels_forward_ms"] < r["forward_ms"], r["layer"]


def test_flop_counts_from_layer_shapes():
    # SimpleConvNet: conv 24*24*30*25, Affine 4320*100 and 100*10 multiply-adds per image
    macs = 24 * 24 * 30 * 25 + 4320 * 100 + 100 * 10
    counts = benchmark.flop_counts("simple_convnet", batch_size=100)
    assert counts["forward"] == 2 * macs * 100
    assert counts["train_step"] == 2 * (3 * macs - 24 * 24 * 30 * 25) * 100


def test_peak_rss_delta_in_process_sees_an_allocation():
    def setup():
        # an anonymous mapping, every page written: malloc may serve a 64 MiB array from
        # freed heap it keeps (cnn_core._memory), which is already resident
        def touch():
            import mmap
            m = mmap.mmap(-1, 64 * 2 ** 20)
            for i in range(0, len(m), mmap.PAGESIZE):
                m[i] = 1
            m.close()
        return touch
    r = benchmark.peak_rss_delta(setup, fresh_process=False)
    if r["delta_bytes"] is None:
        pytest.skip(r["method"])
    assert r["delta_bytes"] > 32 * 2 ** 20


def test_book_numpy_simple_convnet_equals_cnn_core(book_numpy):
    ref = book_numpy.SimpleConvNet(seed=3, weight_init_std=0.1)
    net = SimpleConvNet(dtype=np.float64)
    assert sorted(ref.params) == sorted(net.params)
    for name, value in ref.params.items():
        net.params[name] = value
    x = np.random.default_rng(0).random((7, 1, 28, 28))
    np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=0, atol=1e-10)
