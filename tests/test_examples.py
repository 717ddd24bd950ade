"""The book's experiments (examples/, chapters 2-8) at reduced size.

Each test runs one example's ``main(argv)`` in this process with ``--quick`` (or smaller
flags), ``--out`` a temporary directory and one thread, then checks that the numbers it
prints show what its figure is about (XOR's truth table, std 0.01's loss stuck at 2.30, BN
learning where the plain net does not, ...) and that the PNG was written.  Two tests run a
script as a program, by absolute path from a temporary directory (never from the checkout,
whose uncompiled source tree would shadow the installed package).
"""
import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _paths import DLFS_DIR, MNIST_DIR

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if not EXAMPLES.is_dir():   # wheel tests copy tests/ alone
    pytest.skip(f"no examples/ beside tests/ ({EXAMPLES})", allow_module_level=True)
import matplotlib  # noqa: E402,F401  (the test extra has it: CI fails, not skips, without it)
if str(EXAMPLES) not in sys.path:
    sys.path.append(str(EXAMPLES))


@pytest.fixture
def run(tmp_path, capsys):
    """run(module, *flags) -> printed text; asserts exit status 0."""
    def _run(module, *flags, data=False):
        argv = [*flags, "--out", str(tmp_path), "--threads", "1"]
        if data:
            argv += ["--data-dir", str(MNIST_DIR)]
        assert importlib.import_module(module).main(argv) == 0
        return capsys.readouterr().out
    return _run


def png(tmp_path, name):
    path = tmp_path / name
    assert path.is_file(), f"{name} not written; found {sorted(p.name for p in tmp_path.iterdir())}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
    return path


def table(text, first_column):
    """Rows (lists of strings) of the printed table whose header starts with ``first_column``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        rows.append(line.split())
    return lines[start].split(), rows


def number(text, label):
    return float(re.search(re.escape(label) + r"\s*([-\d.e+]+)", text).group(1))


# ----------------------------------------------------------------------------- no data needed
def test_perceptron_gates_truth_tables_exact(run, tmp_path):
    header, rows = table(run("ch02_perceptron_gates"), "x1")
    assert header == ["x1", "x2", "AND", "NAND", "OR", "XOR"]
    got = {(int(r[0]), int(r[1])): [int(v) for v in r[2:]] for r in rows}
    assert got == {(0, 0): [0, 1, 0, 0], (1, 0): [0, 1, 1, 1],
                   (0, 1): [0, 1, 1, 1], (1, 1): [1, 0, 1, 0]}
    png(tmp_path, "perceptron_gates.png")


def test_activation_values(run, tmp_path):
    header, rows = table(run("ch03_activations", "--points", "-1", "0", "0.5", "2"), "x")
    values = {r[0]: dict(zip(header[1:], map(float, r[1:]))) for r in rows}
    assert values["0"] == {"step": 0, "sigmoid": 0.5, "relu": 0, "tanh": 0}
    assert values["0.5"]["step"] == 1 and values["2"]["relu"] == 2
    assert values["-1"]["sigmoid"] == pytest.approx(1 / (1 + np.e), abs=1e-4)
    assert values["2"]["tanh"] == pytest.approx(np.tanh(2), abs=1e-4)
    png(tmp_path, "activations.png")


def test_gradient_descent_path(run, tmp_path):
    text = run("ch04_gradient_descent", "--lr", "0.1", "10", "--steps", "20")
    # x_k = (1 - 2 lr)^k x_0 exactly for x0² + x1²: 0.8^20 * (-3, 4)
    final = re.search(r"lr=0.1: x = \(([-\d.e]+), ([-\d.e]+)\)", text)
    assert float(final.group(1)) == pytest.approx(-3 * 0.8 ** 20, rel=1e-4)
    assert float(final.group(2)) == pytest.approx(4 * 0.8 ** 20, rel=1e-4)
    assert float(re.search(r"lr=10: .*f = ([-\d.e+]+)", text).group(1)) > 1e20   # diverges
    png(tmp_path, "gradient_descent.png")


def test_optimizer_paths(run, tmp_path):
    _, rows = table(run("ch06_optimizer_paths"), "optimizer")
    # columns: optimizer, lr, x, y, f(x, y), f at step 15, y sign changes
    f_end = {r[0]: float(r[4]) for r in rows}
    zigzags = {r[0]: int(r[6]) for r in rows}
    assert list(f_end) == ["SGD", "Momentum", "AdaGrad", "Adam"]
    assert all(v < 0.2 for v in f_end.values())                     # all near the minimum
    assert zigzags["SGD"] >= 20 and zigzags["AdaGrad"] == 0          # SGD zig-zags in y
    assert f_end["AdaGrad"] < f_end["SGD"]
    png(tmp_path, "optimizer_paths.png")


def _stats(text, activation, label):
    _, rows = table(text.split(f"{activation}: activation {label}")[1], "init")
    return {r[0]: [float(v) for v in r[1:]] for r in rows}


def test_weight_init_histograms(run, tmp_path):
    text = run("ch06_weight_init_histogram", "--quick")
    saturated, std = _stats(text, "sigmoid", "saturated fraction"), _stats(text, "sigmoid", "std")
    assert min(saturated["1"]) > 0.3                     # std 1: piled up at 0 and 1
    assert max(std["0.01"]) < 0.04 < 0.05 < min(std["xavier"])   # std 0.01: all near 0.5
    assert max(saturated["xavier"]) < 0.01 and min(std["xavier"]) > 0.05
    png(tmp_path, "weight_init_histogram_sigmoid.png")
    text = run("ch06_weight_init_histogram", "--quick", "--activation", "relu",
               "--inits", "0.01", "he")
    mean = _stats(text, "relu", "mean")
    assert mean["0.01"][-1] < 1e-3 < 0.1 < mean["he"][-1]
    png(tmp_path, "weight_init_histogram_relu.png")


# ----------------------------------------------------------------------------- MNIST
@pytest.mark.needs_data
def test_mnist_inference_with_book_weights(run, tmp_path):
    text = run("ch03_mnist_inference", "--quick", "--params", str(DLFS_DIR / "sample_weight.pkl"),
               data=True)
    one = number(text, "accuracy, one image at a time:")
    assert one == number(text, "accuracy, batches of 100:") and one > 0.9
    png(tmp_path, "mnist_inference.png")


@pytest.mark.needs_data
def test_two_layer_net_numerical_gradient_learns(run, tmp_path):
    text = run("ch04_two_layer_net", "--quick", data=True)
    assert "numerical gradient" in text
    assert number(text, "last loss:") < number(text, "first loss:") - 0.1
    assert number(text, "final test accuracy:") > 0.15
    png(tmp_path, "two_layer_net_numerical.png")


@pytest.mark.needs_data
def test_two_layer_net_backprop_learns(run, tmp_path):
    text = run("ch05_two_layer_net", "--quick", data=True)
    assert number(text, "final test accuracy:") > 0.8
    png(tmp_path, "two_layer_net_backprop.png")


@pytest.mark.needs_data
def test_gradient_check_agrees(run, tmp_path):
    text = run("ch05_gradient_check", "--quick", data=True)
    header, rows = table(text, "param")
    assert [r[0] for r in rows] == ["W1", "b1", "W2", "b2"]
    assert all(float(r[2]) < 1e-9 for r in rows)           # mean |backprop - numerical|
    assert all(float(r[-1]) < 1e-6 for r in rows)          # sampled relative error
    assert number(text, "largest difference:") < 1e-8
    png(tmp_path, "gradient_check.png")


@pytest.mark.needs_data
def test_optimizers_on_mnist(run, tmp_path):
    text = run("ch06_optimizer_mnist", "--quick", "--iters", "150", "--test-size", "500",
               data=True)
    _, rows = table(text, "optimizer")
    loss = {r[0]: float(r[-2]) for r in rows}
    assert set(loss) == {"SGD", "Momentum", "AdaGrad", "Adam"}
    assert all(loss["SGD"] > loss[k] for k in ("Momentum", "AdaGrad", "Adam"))
    png(tmp_path, "optimizer_mnist.png")


@pytest.mark.needs_data
def test_weight_init_on_mnist(run, tmp_path):
    text = run("ch06_weight_init_mnist", "--quick", "--iters", "150", "--test-size", "500",
               data=True)
    _, rows = table(text, "init")
    loss = {r[0]: float(r[1]) for r in rows}
    assert loss["std=0.01"] == pytest.approx(np.log(10), abs=0.02)   # stuck at ln 10
    assert loss["He"] < 1.8 and loss["He"] < loss["Xavier"]
    png(tmp_path, "weight_init_mnist_relu.png")


@pytest.mark.needs_data
def test_batch_norm_learns_where_plain_does_not(run, tmp_path):
    _, rows = table(run("ch06_batch_norm", "--quick", data=True), "weight")
    assert len(rows) == 16
    plain_best, bn_best = np.array([[float(r[3]), float(r[4])] for r in rows]).T
    assert np.sum(bn_best > plain_best + 0.3) >= 6
    assert np.all(plain_best[-6:] < 0.2) and np.all(bn_best[-6:] > 0.3)   # tiny scales
    png(tmp_path, "batch_norm.png")


@pytest.mark.needs_data
def test_overfitting_and_weight_decay(run, tmp_path):
    text = run("ch06_overfitting", "--quick", "--settings", "none", "weight_decay", data=True)
    _, rows = table(text, "setting")
    gap = {r[0]: float(r[-2]) for r in rows}
    train = {r[0]: float(r[-4]) for r in rows}
    assert train["no"] > 0.95                              # memorises the 300 images
    assert gap["no"] > 0.15 and gap["weight"] < gap["no"]
    png(tmp_path, "overfitting.png")


@pytest.mark.needs_data
def test_hyperparameter_search_example(run, tmp_path):
    text = run("ch06_hyperparameter_search", "--quick", "--executor", "inline", data=True)
    header, rows = table(text, "rank")
    assert header[:5] == ["rank", "trial", "val_acc", "train_acc", "lr"]
    assert [int(r[0]) for r in rows] == list(range(1, 7))
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert number(text, "best val_acc:") == scores[0]
    best = ast.literal_eval(text.split("best parameters:")[1].splitlines()[0].strip())
    assert f"{best['lr']:.3e}" == rows[0][4] and f"{best['weight_decay']:.3e}" == rows[0][5]
    png(tmp_path, "hyperparameter_search.png")


@pytest.mark.needs_data
def test_simple_convnet_training_and_filters(run, tmp_path):
    text = run("ch07_simple_convnet", "--quick", data=True)
    assert number(text, "test accuracy:") > 0.2
    _, rows = table(text, "filters")
    assert float(rows[1][2]) > float(rows[0][2])          # filters smoother after training
    for name in ("simple_convnet_training.png", "simple_convnet_filters_before.png",
                 "simple_convnet_filters_after.png"):
        png(tmp_path, name)


@pytest.mark.needs_data
def test_simple_convnet_book_filters(run, tmp_path):
    text = run("ch07_simple_convnet", "--quick", "--book-params",
               str(DLFS_DIR / "simple_convnet_params.pkl"), data=True)
    assert number(text, "test accuracy:") >= 0.95
    _, rows = table(text, "filters")
    assert float(rows[1][2]) > 0.4 > abs(float(rows[0][2]))
    png(tmp_path, "simple_convnet_filters_after.png")


@pytest.mark.needs_data
def test_deep_convnet_book_params_and_float16(run, tmp_path):
    text = run("ch08_deep_convnet", "--quick", "--params",
               str(DLFS_DIR / "deep_convnet_params.pkl"), data=True)
    acc32, acc16 = number(text, "float32 accuracy:"), number(text, "float16 accuracy:")
    assert acc32 >= 0.97 and abs(acc16 - acc32) <= 0.004
    assert round((1 - acc32) * 500) == number(text, "misclassified:")
    png(tmp_path, "deep_convnet_misclassified.png")


def test_half_precision_network_stores_float16():
    from ch08_deep_convnet import HalfPrecisionNetwork
    from cnn_core import DeepConvNet
    net = DeepConvNet(seed=0)
    half = HalfPrecisionNetwork(net)
    assert {w.dtype for ws in half.weights for w in ws.values()} == {np.dtype(np.float16)}
    assert half.nbytes * 2 == sum(p.nbytes for p in net.params.values())
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    out = half.predict(x)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), net.predict(x), rtol=0.02, atol=0.02)
    assert all(p.dtype == np.float32 for p in net.params.values())   # the network is unchanged


# ----------------------------------------------------------------------------- as programs
def _script(tmp_path, *argv):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, *map(str, argv)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_script_runs_by_path_outside_the_checkout(tmp_path):
    proc = _script(tmp_path, EXAMPLES / "ch02_perceptron_gates.py", "--out", "figs")
    assert proc.returncode == 0, proc.stderr
    assert "XOR" in proc.stdout
    png(tmp_path / "figs", "perceptron_gates.png")


def test_run_dispatches_by_name(tmp_path):
    proc = _script(tmp_path, EXAMPLES / "run.py", "--list")
    assert proc.returncode == 0, proc.stderr
    run_module = importlib.import_module("run")
    for name, (module, _, _) in run_module.EXPERIMENTS.items():
        assert name in proc.stdout and (EXAMPLES / f"{module}.py").is_file()
    proc = _script(tmp_path, EXAMPLES / "run.py", "gradient-descent", "--steps", "5", "--out", ".")
    assert proc.returncode == 0, proc.stderr
    png(tmp_path, "gradient_descent.png")
