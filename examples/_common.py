"""Plumbing shared by the example scripts: flags, data, threads, figures and tables.

Not part of the library.  Every example is ``python examples/NAME.py [flags]`` (or
``python examples/run.py NAME [flags]``) and has the same common flags:

``--out DIR``     where the PNG figures go (created; default ``figures``)
``--quick``       reduced sizes (seconds; what the tests run) for every size flag not given
``--seed N``      the seed of everything random in the run (default 0)
``--threads N``   kernel (OpenMP) and BLAS threads, restored when the run ends (default 1, see
                  DEFAULT_THREADS; 0: the libraries' own defaults)
``--data-dir D``  the MNIST directory (examples that read MNIST); default: ``$CNN_CORE_DATA``
                  or the per-user cache, downloaded if missing (see ``cnn_core.datasets``)
"""
import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

__all__ = ["make_parser", "parse", "threads", "figure_path", "load_mnist_subset", "print_table",
           "fmt"]


#: default ``--threads``: 1 kernel thread and 1 BLAS thread.  The examples' matrices are small
#: (batches of 100) and the machines they run on are often shared: measured on a busy 2-core
#: machine, ch05's 2,000 steps took 6.8 s with 1 thread and 29.7 s with 2, one SimpleConvNet
#: epoch on 10,000 images 3.1 s against 16.4 s.  ``--threads 0`` restores the libraries'
#: defaults (all cores), which pays off on an idle machine with many cores.
DEFAULT_THREADS = 1


def make_parser(description, *, data=False, out="figures", threads=DEFAULT_THREADS):
    """An ``ArgumentParser`` holding the common flags; the example adds its own."""
    p = argparse.ArgumentParser(description=description, allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=out, help="directory for the PNG figures")
    p.add_argument("--quick", action="store_true",
                   help="reduced sizes for a smoke run (for every size flag not given)")
    p.add_argument("--seed", type=int, default=0, help="seed of everything random")
    p.add_argument("--threads", type=int, default=threads,
                   help="kernel and BLAS threads (0: the libraries' own defaults)")
    if data:
        p.add_argument("--data-dir", default=None,
                       help="MNIST directory (default: $CNN_CORE_DATA or the user cache)")
    return p


def parse(parser, argv, quick=None):
    """Parse ``argv``; with ``--quick``, the flags not given take ``quick``'s values."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    # argparse leaves alone what the namespace already holds unless the flag is given.
    namespace = argparse.Namespace(**quick) if quick and "--quick" in argv else None
    return parser.parse_args(argv, namespace=namespace)


@contextlib.contextmanager
def threads(n):
    """Kernel and BLAS threads set to ``n`` in the block, then restored (None or 0: unchanged)."""
    if not n:
        yield
        return
    import cnn_core
    from threadpoolctl import threadpool_limits
    previous = cnn_core.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        cnn_core.set_num_threads(previous)


def figure_path(args, name):
    """``args.out / name``, the directory created."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def saved(path):
    print(f"figure: {path}", flush=True)
    return path


def load_mnist_subset(args, n_train=None, n_test=None, flatten=True):
    """The book's MNIST (pixel/255, float32), cut to the first ``n_train``/``n_test`` samples
    (the book's ``x_train[:300]`` style; None keeps all)."""
    from cnn_core.datasets import DatasetNotFoundError, load_mnist
    try:
        (x_train, t_train), (x_test, t_test) = load_mnist(flatten=flatten, progress=False,
                                                          data_dir=args.data_dir)
    except DatasetNotFoundError as exc:
        raise SystemExit(f"error: {exc}\n(give --data-dir DIR)") from None
    return (x_train[:n_train], t_train[:n_train]), (x_test[:n_test], t_test[:n_test])


def fmt(value, spec=".4f"):
    if isinstance(value, (float, np.floating)):
        return format(float(value), spec)
    return str(value)


def print_table(header, rows, spec=".4f", title=None):
    """Rows of values under ``header``, columns aligned, floats formatted with ``spec``."""
    cells = [[str(h) for h in header]] + [[fmt(v, spec) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    if title:
        print(title)
    for k, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(flush=True)
