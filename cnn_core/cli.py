"""The ``cnn-core`` command line: ``train``, ``evaluate``, ``info``, ``bench`` and ``export``."""
import argparse
import sys

import numpy as np

MODELS = ("simple_convnet", "deep_convnet", "mlp", "mlp_bn", "two_layer")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, non-zero exit
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _dataset(spec, data_dir=None, dtype=np.float32):
    """(x_train, t_train), (x_test, t_test) as (N, C, H, W) images, from a --dataset value."""
    from . import datasets
    if spec == "digits":
        return datasets.load_digits(flatten=False, dtype=dtype)
    if spec == "mnist":
        return datasets.load_mnist(flatten=False, dtype=dtype, data_dir=data_dir)
    if spec.startswith("idx:"):
        return datasets.load_idx(spec[4:], flatten=False, dtype=dtype)
    raise ValueError(f"--dataset must be mnist, digits or idx:DIR, got {spec!r}")


def _lr_decay(text):
    if text == "cosine":
        return text
    try:
        factor = float(text)
    except ValueError:
        factor = float("nan")
    if not 0 < factor <= 1:
        raise argparse.ArgumentTypeError(f"expected 'cosine' or a factor in (0, 1], got {text!r}")
    return factor


def build_model(name, input_shape, n_classes, dtype=np.float32, seed=None, weight_decay=0.0):
    from . import models
    d = int(np.prod(input_shape))
    kw = dict(dtype=dtype, seed=seed)
    if name == "simple_convnet":
        # The book's architecture with He initialisation: the book's weight_init_std=0.01
        # reaches 96.1 % after one MNIST epoch, He 98.1 % (Adam, lr 0.001, batch 100, seed 0).
        size = 5 if min(input_shape[1:]) >= 12 else 3
        return models.SimpleConvNet(input_shape, {"filter_num": 30, "filter_size": size, "pad": 0,
                                                  "stride": 1}, 100, n_classes,
                                    weight_init_std="he", **kw)
    if name == "deep_convnet":
        return models.DeepConvNet(input_shape, output_size=n_classes, **kw)
    if name == "mlp":
        return models.MultiLayerNet(d, [100, 100], n_classes, weight_decay_lambda=weight_decay, **kw)
    if name == "mlp_bn":
        return models.MultiLayerNetExtend(d, [100, 100], n_classes, use_batchnorm=True,
                                          weight_decay_lambda=weight_decay, **kw)
    if name == "two_layer":
        return models.TwoLayerNet(d, 50, n_classes, weight_init_std="he", **kw)
    raise ValueError(f"--model must be one of {', '.join(MODELS)}, got {name!r}")


def _set_threads(n):
    from . import set_num_threads
    if n is not None:
        set_num_threads(n)
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)


def cmd_train(args):
    from .trainer import Trainer
    _set_threads(args.threads)
    (x_train, t_train), (x_test, t_test) = _dataset(args.dataset, args.data_dir)
    n_classes = int(max(t_train.max(), t_test.max())) + 1
    net = build_model(args.model, x_train.shape[1:], n_classes, seed=args.seed,
                      weight_decay=args.weight_decay)
    if args.weight_decay and args.model not in ("mlp", "mlp_bn"):
        net.weight_decay_lambda = args.weight_decay
    if not args.quiet:
        print(net.summary())
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param={"lr": args.lr}, verbose=False, progress=not args.quiet,
                      evaluate_sample_num_per_epoch=args.eval_samples,
                      seed=args.seed, validation_split=args.validation_split,
                      checkpoint=args.checkpoint, lr_decay=args.lr_decay)
    print(f"{'epoch':>5} {'loss':>8} {'train_acc':>9} {'test_acc':>8} {'seconds':>8}")
    trainer.callbacks.append(_PrintRow())
    trainer.train()
    print(f"final test accuracy: {trainer.final_test_acc:.4f}")
    if args.out:
        net.save_params(args.out)
        print(f"saved parameters to {args.out}")
    if args.plot:
        from .plot import plot_history
        plot_history(trainer, args.plot, title=f"{args.model} on {args.dataset}")
        print(f"saved curves to {args.plot}")
    return 0


def _bench(argv):
    from . import benchmark
    result = benchmark.main(argv)
    return result if isinstance(result, int) else 0


class _PrintRow:
    def on_epoch_end(self, trainer, logs):
        print(f"{logs['epoch']:>5} {logs['loss']:>8.4f} {logs['train_acc']:>9.4f} "
              f"{logs.get('test_acc', float('nan')):>8.4f} {logs['train_time']:>8.2f}", flush=True)


def cmd_evaluate(args):
    from . import load_model
    _set_threads(args.threads)
    net = load_model(args.model_file)
    _, (x_test, t_test) = _dataset(args.dataset, args.data_dir, net.dtype)
    scores = net.predict(x_test)
    pred = scores.argmax(axis=1)
    n_classes = scores.shape[1]
    labels = t_test if t_test.ndim == 1 else t_test.argmax(axis=1)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels.astype(np.intp), pred), 1)
    print(f"accuracy: {np.mean(pred == labels):.4f} ({int(np.sum(pred == labels))}/{len(labels)})")
    print("confusion matrix (rows: true label, columns: predicted):")
    width = max(5, len(str(cm.max())) + 1)
    print("     " + "".join(f"{j:>{width}}" for j in range(n_classes)))
    for i in range(n_classes):
        print(f"{i:>4} " + "".join(f"{v:>{width}}" for v in cm[i]))
    return 0


def cmd_info(args):
    import platform

    from threadpoolctl import threadpool_info

    from . import __version__, get_num_threads, openmp_enabled
    print(f"cnn_core {__version__} (Python {platform.python_version()}, NumPy {np.__version__})")
    print(f"OpenMP: {'on' if openmp_enabled() else 'off'}; kernel threads: {get_num_threads()}")
    from ._memory import keep_freed_memory
    print(f"freed memory kept between steps: {keep_freed_memory()}")
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            print(f"BLAS: {info.get('internal_api')} {info.get('version')} "
                  f"({info.get('num_threads')} threads, {info.get('architecture')})")
    return 0


def cmd_export(args):
    from .onnx import cli_export
    return cli_export(args.model_file, args.out, softmax=args.softmax, opset=args.opset,
                      dtype=args.dtype)


def main(argv=None):
    parser = _Parser(prog="cnn-core", description="Train and evaluate the networks of "
                     "'Deep Learning from Scratch' with cnn_core's fast CPU kernels.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a network and save its parameters")
    p.add_argument("--model", choices=MODELS, default="simple_convnet")
    p.add_argument("--dataset", default="digits", help="mnist, digits (bundled, default) or idx:DIR")
    p.add_argument("--data-dir", default=None, help="directory of the MNIST files")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", default="Adam",
                   choices=["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"],
                   type=lambda s: {k.lower(): k for k in ("SGD", "Momentum", "Nesterov", "AdaGrad",
                                                          "RMSprop", "Adam")}.get(s.lower(), s))
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--lr-decay", type=_lr_decay, default=None,
                   help="'cosine' (a half cosine from --lr to 0 over the epochs) or a factor "
                        "in (0, 1] applied to the learning rate after every epoch")
    p.add_argument("--validation-split", type=float, default=0.0)
    p.add_argument("--eval-samples", type=int, default=10000,
                   help="samples of each set scored after every epoch (default 10000; the final "
                        "test accuracy always uses the whole test set)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--checkpoint", default=None, help="save parameters here after every epoch")
    p.add_argument("--out", default="model.npz", help="where to save the trained parameters")
    p.add_argument("--plot", default=None, help="save loss/accuracy curves to this PNG")
    p.add_argument("--quiet", action="store_true", help="no summary, no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy and confusion matrix of a saved model")
    p.add_argument("model_file")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="version, OpenMP, threads and BLAS")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", add_help=False,
                       help="time cnn_core's training steps and inference on this machine "
                            "(cnn-core bench --help for options)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: _bench(a.bench_args))

    p = sub.add_parser("export", help="write a saved model as ONNX "
                       "(needs: pip install \"cnn_core[onnx]\")")
    p.add_argument("model_file", help="a .npz written by train --out or save_params")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--softmax", action="store_true", help="output probabilities, not scores")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="default: the model's dtype")
    p.set_defaults(func=cmd_export)

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its options belong to cnn_core.benchmark's own parser
        return _bench(argv[1:])
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"cnn-core: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
