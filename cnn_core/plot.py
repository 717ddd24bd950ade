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
