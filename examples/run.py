"""Run any experiment of the book's chapters 2-8 by name: ``python examples/run.py NAME [flags]``.

    python examples/run.py --list                      # the experiments and what they show
    python examples/run.py optimizer-paths --out figures
    python examples/run.py batch-norm --quick          # any experiment's own flags follow its name
    python examples/run.py all --quick --out figures --dlfs-dir ../shared/data/dlfs

Each experiment is also a script of its own (``python examples/ch06_batch_norm.py``) with a
``main(argv)``; ``NAME --help`` lists its flags.
"""
import importlib
import sys
import time
from pathlib import Path

#: name -> (module, the book's script it reproduces, the book parameter file it needs or None)
EXPERIMENTS = {
    "perceptron-gates": ("ch02_perceptron_gates", "ch02 and_gate/nand_gate/or_gate/xor_gate", None),
    "activations": ("ch03_activations", "ch03 step_function/sigmoid/relu", None),
    "mnist-inference": ("ch03_mnist_inference", "ch03 neuralnet_mnist(_batch)", "sample_weight.pkl"),
    "gradient-descent": ("ch04_gradient_descent", "ch04 gradient_method", None),
    "two-layer-numerical": ("ch04_two_layer_net", "ch04 train_neuralnet", None),
    "two-layer-backprop": ("ch05_two_layer_net", "ch05 train_neuralnet", None),
    "gradient-check": ("ch05_gradient_check", "ch05 gradient_check", None),
    "optimizer-paths": ("ch06_optimizer_paths", "ch06 optimizer_compare_naive", None),
    "optimizer-mnist": ("ch06_optimizer_mnist", "ch06 optimizer_compare_mnist", None),
    "weight-init-histogram": ("ch06_weight_init_histogram",
                              "ch06 weight_init_activation_histogram", None),
    "weight-init-mnist": ("ch06_weight_init_mnist", "ch06 weight_init_compare", None),
    "batch-norm": ("ch06_batch_norm", "ch06 batch_norm_test", None),
    "overfitting": ("ch06_overfitting", "ch06 overfit_weight_decay/overfit_dropout", None),
    "hyperparameter-search": ("ch06_hyperparameter_search", "ch06 hyperparameter_optimization",
                              None),
    "simple-convnet": ("ch07_simple_convnet", "ch07 train_convnet/visualize_filter", None),
    "deep-convnet": ("ch08_deep_convnet",
                     "ch08 misclassified_mnist/half_float_network", "deep_convnet_params.pkl"),
}


def _module(name):
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(EXPERIMENTS[name][0])


def _resolve(name):
    if name in EXPERIMENTS:
        return name
    for key, (module, _, _) in EXPERIMENTS.items():
        if name in (module, module + ".py", key.replace("-", "_")):
            return key
    raise SystemExit(f"unknown experiment {name!r}; python examples/run.py --list shows them")


def _list():
    width = max(map(len, EXPERIMENTS))
    for key, (module, book, params) in EXPERIMENTS.items():
        doc = (_module(key).__doc__ or "").strip().splitlines()[0]
        print(f"{key:<{width}}  {doc}")
        print(f"{'':<{width}}  book: {book}; script: examples/{module}.py"
              + (f"; needs --params {params}" if params else ""))


def _run_all(argv):
    dlfs = "."
    if "--dlfs-dir" in argv:
        k = argv.index("--dlfs-dir")
        dlfs = argv[k + 1]
        argv = argv[:k] + argv[k + 2:]
    failed = []
    for key, (_, _, params) in EXPERIMENTS.items():
        extra = ["--params", str(Path(dlfs) / params)] if params else []
        print(f"==================== {key}", flush=True)
        t0 = time.perf_counter()
        try:
            status = _module(key).main(list(argv) + extra)
        except SystemExit as exc:
            status = exc.code
        print(f"---- {key}: {'ok' if not status else f'failed ({status})'} "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        if status:
            failed.append(key)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if argv[0] == "--list":
        _list()
        return 0
    if argv[0] == "all":
        return _run_all(argv[1:])
    return _module(_resolve(argv[0])).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
