"""The cnn-core command line, end to end."""
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from cnn_core import load_model
from cnn_core.cli import main
from _paths import MNIST_DIR

#: run `python -m` from outside the checkout, so that the source tree cannot shadow the install
OUTSIDE = tempfile.gettempdir()


def test_train_evaluate_on_bundled_digits(tmp_path, capsys):
    out = tmp_path / "digits.npz"
    plot = tmp_path / "curves.png"
    argv = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "3", "--quiet",
            "--out", str(out), "--seed", "1", "--threads", "1"]
    try:
        import matplotlib  # noqa: F401
        argv += ["--plot", str(plot)]
    except ImportError:
        plot = None
    assert main(argv) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    final = float(text.split("final test accuracy:")[1].split()[0])
    assert final > 0.9
    assert out.exists() and (plot is None or plot.stat().st_size > 1000)
    assert main(["evaluate", str(out), "--dataset", "digits"]) == 0
    text = capsys.readouterr().out
    assert f"accuracy: {final:.4f}" in text
    matrix = [list(map(int, line.split()[1:])) for line in text.splitlines()[3:13]]
    assert np.trace(matrix) / np.sum(matrix) == pytest.approx(final, abs=1e-4)


def test_train_with_cosine_lr_decay(tmp_path, capsys, monkeypatch):
    seen = {}
    from cnn_core import trainer as trainer_module
    original = trainer_module.Trainer.train

    def spy(self):
        result = original(self)
        seen["lrs"] = [h["lr"] for h in self.history]
        return result
    monkeypatch.setattr(trainer_module.Trainer, "train", spy)
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "4", "--lr", "0.01",
                 "--lr-decay", "cosine", "--quiet", "--out", str(tmp_path / "m.npz")]) == 0
    assert seen["lrs"] == pytest.approx([0.01, 0.01 * 0.5 * (1 + 2 ** -0.5), 0.005,
                                         0.01 * 0.5 * (1 - 2 ** -0.5)])
    assert float(capsys.readouterr().out.split("final test accuracy:")[1].split()[0]) > 0.5


@pytest.mark.needs_data
def test_train_simple_convnet_one_epoch_on_mnist_reaches_98_percent(tmp_path, capsys):
    """The book's settings (Adam, lr 0.001, batch 100), one epoch over the 60,000 images."""
    out = tmp_path / "mnist.npz"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(MNIST_DIR), "--model",
                 "simple_convnet", "--epochs", "1", "--optimizer", "adam", "--lr", "0.001",
                 "--batch-size", "100", "--seed", "0", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    final = float(text.split("final test accuracy:")[1].split()[0])
    assert final >= 0.98, text
    assert main(["evaluate", str(out), "--dataset", "mnist", "--data-dir", str(MNIST_DIR)]) == 0
    assert f"accuracy: {final:.4f}" in capsys.readouterr().out
    assert load_model(out).input_shape == (1, 28, 28)


def test_info(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "OpenMP:" in text and "kernel threads:" in text and "BLAS:" in text


@pytest.mark.parametrize("argv,needle", [
    (["train", "--model", "resnet"], "--model"),
    (["train", "--bogus-flag"], "unrecognized arguments"),
    (["train", "--epochs", "many"], "--epochs"),
    (["train", "--lr-decay", "linear"], "--lr-decay"),
    (["train", "--lr-decay", "1.5"], "--lr-decay"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_flags_give_one_line_error(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "cnn_core"] + argv, capture_output=True,
                          text=True, timeout=120, cwd=OUTSIDE)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_runtime_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.npz" in err[0]
    assert main(["train", "--dataset", "idx:" + str(tmp_path), "--quiet"]) == 1


def test_help_for_each_command():
    for cmd in ([], ["train"], ["evaluate"], ["info"]):
        proc = subprocess.run([sys.executable, "-m", "cnn_core"] + cmd + ["--help"],
                              capture_output=True, text=True, timeout=120, cwd=OUTSIDE)
        assert proc.returncode == 0 and "usage: cnn-core" in proc.stdout


def test_export_writes_onnx_that_runs(tmp_path, capsys):
    import onnxruntime as ort
    out = tmp_path / "m.npz"
    assert main(["train", "--dataset", "digits", "--model", "simple_convnet", "--epochs", "1",
                 "--quiet", "--out", str(out)]) == 0
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(out), str(onnx_path)]) == 0
    net = load_model(out)
    x = np.random.default_rng(0).random((5,) + net.input_shape, dtype=np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, net.predict(x), rtol=1e-5, atol=1e-5)


def test_bench_quick_runs(tmp_path, capsys):
    json_path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--random-data", "--no-rss", "--threads", "1",
                 "--models", "mlp", "--json", str(json_path)]) == 0
    assert json_path.stat().st_size > 100
    assert "mlp" in capsys.readouterr().out
