"""Plot helpers.  matplotlib is an optional extra (``pip install cnn_core[plot]``),
imported lazily and used headless (Agg): every helper saves a PNG file."""
import os


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'cnn_core[plot]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def plot_history(trainer_or_history, path, title=None):
    """Loss per step and accuracies per epoch, side by side; saved to ``path`` (PNG)."""
    plt = _pyplot()
    t = trainer_or_history
    losses = getattr(t, "train_loss_list", None)
    history = getattr(t, "history", t)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        ax1.plot(range(1, len(losses) + 1), losses, lw=0.6)
        ax1.set_xlabel("iteration")
    else:
        ax1.plot([h["epoch"] for h in history], [h["loss"] for h in history], marker="o")
        ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.set_title("training loss")
    epochs = [h["epoch"] for h in history]
    for key, label in (("train_acc", "train"), ("val_acc", "validation"), ("test_acc", "test")):
        if history and key in history[0]:
            ax2.plot(epochs, [h[key] for h in history], marker="o", label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.set_title("accuracy")
    ax2.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- helpers
def pyplot():
    """matplotlib.pyplot, imported lazily with the headless Agg backend (a clear error if missing)."""
    return _pyplot()


def save_figure(fig, path, dpi=100):
    """Save ``fig`` to ``path`` (PNG; parent directories are created), close it, return ``path``."""
    from pathlib import Path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(os.fspath(path), dpi=dpi)
    _pyplot().close(fig)
    return path


def smooth_curve(x):
    """The book's ``smooth_curve`` (``common/util.py``): a normalised 11-point Kaiser window
    (beta 2) over ``x`` with reflected ends, so the result has ``len(x)`` points.

    Curves shorter than the window are returned unchanged (as a float array).
    """
    import numpy as np
    x = np.asarray(x, dtype=np.float64)
    window_len = 11
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    if len(x) < window_len:
        return x.copy()
    s = np.r_[x[window_len - 1:0:-1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5:len(y) - 5]


def plot_image_grid(images, path, titles=None, ncols=10, cmap="gray_r", title=None,
                    cell=1.0, symmetric=False):
    """Small images (``(N, H, W)`` or ``(N, 1, H, W)``) on a grid without axes; saved to ``path``.

    ``titles``: one string per image (e.g. "7→2").  ``symmetric``: a colour scale centred on 0
    shared by all images (for filters); otherwise each image uses its own range.
    """
    import numpy as np
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got shape {images.shape}")
    n = len(images)
    if n == 0:
        raise ValueError("images is empty: nothing to draw")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must hold one string per image ({n}), got {len(titles)}")
    plt = _pyplot()
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    extra = 0.35 if title else 0.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + extra),
                             squeeze=False)
    lim = float(np.max(np.abs(images))) or 1.0
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        kw = dict(vmin=-lim, vmax=lim) if symmetric else {}
        ax.imshow(images[i], cmap=cmap, interpolation="nearest", **kw)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
