"""Gradient checking: backpropagation against float64 central differences."""
import numpy as np

from .layers import BatchNormalization, Dropout


class GradientCheckResult(dict):
    """``{name: error}``; ``skipped[name]`` counts entries left out at a kink."""

    def __init__(self, errors, skipped):
        super().__init__(errors)
        self.skipped = skipped


def gradient_check(network, x, t, eps=1e-6, max_entries=50, seed=0):
    """Max error between ``network.gradient`` and float64 central differences, per parameter.

    The network must be float64 (``network.cast(np.float64)``).  At most
    ``max_entries`` entries per parameter are perturbed (chosen with ``seed``;
    all of them if the parameter is smaller).  Dropout masks are held fixed by
    replaying each Dropout's random state for every evaluation, and BatchNorm
    running statistics are restored afterwards.

    Each entry gets two central differences, with steps ``eps`` and ``eps/2``.
    Where the loss is smooth they agree to round-off; where they disagree the
    perturbation crossed a kink (a ReLU at 0, a change of max-pool winner) and
    neither is a derivative: such entries are left out and counted in the
    result's ``skipped``.

    The error of a parameter is normwise: ``max|a - n| / max(max|a|, max|n|, 1e-3)``
    over the checked entries (a: backpropagation, n: numerical), so that an entry
    whose true gradient is zero (a bias before BatchNorm) is judged against the
    parameter's gradient scale, not by a ratio of round-off errors.
    """
    if network.dtype != np.float64:
        raise ValueError(f"gradient_check needs a float64 network, got {network.dtype}; "
                         f"call network.cast(np.float64) first")
    x = np.asarray(x)
    if any(isinstance(layer, BatchNormalization) for layer in network.layers) and len(x) < 2:
        raise ValueError(f"gradient_check of a network with BatchNorm needs a batch of at least 2 "
                         f"samples (batch statistics of one sample are degenerate), got {len(x)}")
    dropouts = [layer for layer in network.layers if isinstance(layer, Dropout)]
    rng_states = [d.rng.bit_generator.state for d in dropouts]
    bns = [layer for layer in network.layers if isinstance(layer, BatchNormalization)]
    running = [(b.running_mean, b.running_var) for b in bns]

    def replay():
        for d, s in zip(dropouts, rng_states):
            d.rng.bit_generator.state = s

    def loss():
        replay()
        return network.loss(x, t, train_flg=True)

    try:
        replay()
        grads = network.gradient(x, t)
        pick = np.random.default_rng(seed)
        errors, skipped = {}, {}
        for name, p in network.params.items():
            flat = p.reshape(-1)
            idx = np.arange(flat.size)
            if flat.size > max_entries:
                idx = pick.choice(flat.size, max_entries, replace=False)
            ana = grads[name].reshape(-1)[idx]
            num = np.empty((2, len(idx)))
            for j, i in enumerate(idx):
                old = flat[i]
                for k, h in enumerate((eps, eps / 2)):
                    flat[i] = old + h
                    f_plus = loss()
                    flat[i] = old - h
                    f_minus = loss()
                    num[k, j] = (f_plus - f_minus) / (2 * h)
                flat[i] = old
            scale = max(np.max(np.abs(ana)), np.max(np.abs(num)), 1e-3)
            smooth = np.abs(num[0] - num[1]) <= 1e-6 * scale
            skipped[name] = int(np.sum(~smooth))
            diff = np.abs(ana - num[1])[smooth]
            errors[name] = float(diff.max() / scale) if diff.size else 0.0
        return GradientCheckResult(errors, skipped)
    finally:
        replay()
        for b, (m, v) in zip(bns, running):
            b.running_mean, b.running_var = m, v
