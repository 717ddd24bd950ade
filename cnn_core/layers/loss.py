"""SoftmaxWithLoss: softmax output and cross-entropy loss as one node (the book's class)."""
import numpy as np

from .base import Layer


def as_labels(t, n_samples, n_classes):
    """Index labels (N,) from index or one-hot labels, validated."""
    t = np.asarray(t)
    if t.ndim == 2:
        if t.shape != (n_samples, n_classes):
            raise ValueError(f"one-hot t must have shape ({n_samples}, {n_classes}), got {t.shape}")
        return t.argmax(axis=1)
    if t.shape != (n_samples,):
        raise ValueError(f"t must be ({n_samples},) index labels or ({n_samples}, {n_classes}) "
                         f"one-hot, got shape {t.shape}")
    if t.dtype.kind not in "iub":
        if t.dtype.kind == "f" and np.all(t == np.round(t)):
            t = t.astype(np.intp)
        else:
            raise TypeError(f"index labels t must be integers, got dtype {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        raise ValueError(f"labels t must be in [0, {n_classes}), got values in "
                         f"[{t.min()}, {t.max()}]")
    return t.astype(np.intp, copy=False)


class SoftmaxWithLoss(Layer):
    """loss = mean cross-entropy of softmax(x) against t (index or one-hot labels).

    The loss is computed from the log-softmax (max-shifted), not as the book's
    ``-log(y + 1e-7)``: it never overflows, never takes log(0), and its exact
    gradient is the one backward returns, ``(y - t) * dout / N``, so gradient
    checks hold to round-off.
    """

    def forward(self, x, t):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"scores must be 2-D (N, classes), got shape {x.shape}")
        self.t = as_labels(t, x.shape[0], x.shape[1])
        shifted = x - x.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        self.y = exp / total
        log_p = shifted[np.arange(len(self.t)), self.t] - np.log(total[:, 0])
        self.loss = float(-np.mean(log_p, dtype=np.float64))
        return self.loss

    def backward(self, dout=1):
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1
        dx *= dx.dtype.type(dout / n)
        return dx
