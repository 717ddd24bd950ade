"""Gradient checking: backpropagation against float64 central differences."""
import numpy as np

from .layers import BatchNormalization, Dropout


def gradient_check(network, x, t, eps=1e-6, max_entries=50, seed=0):
    """Max relative error between ``network.gradient`` and central differences, per parameter.

    The network must be float64 (``network.cast(np.float64)``).  At most
    ``max_entries`` entries per parameter are perturbed (chosen with ``seed``;
    all of them if the parameter is smaller).  Dropout masks are held fixed by
    replaying each Dropout's random state for every evaluation, and BatchNorm
    running statistics are restored afterwards.  The relative error of an entry
    is ``|a - n| / max(|a| + |n|, floor)`` with ``floor = 1e-7 * (1 + max|a|)``
    of that parameter, so that entries whose gradient is zero up to round-off
    do not dominate.
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
        errors = {}
        for name, p in network.params.items():
            g = grads[name]
            flat = p.reshape(-1)
            idx = np.arange(flat.size)
            if flat.size > max_entries:
                idx = pick.choice(flat.size, max_entries, replace=False)
            floor = 1e-7 * (1.0 + float(np.max(np.abs(g))))
            worst = 0.0
            for i in idx:
                old = flat[i]
                flat[i] = old + eps
                f_plus = loss()
                flat[i] = old - eps
                f_minus = loss()
                flat[i] = old
                num = (f_plus - f_minus) / (2 * eps)
                ana = g.reshape(-1)[i]
                worst = max(worst, abs(ana - num) / max(abs(ana) + abs(num), floor))
            errors[name] = worst
        return errors
    finally:
        replay()
        for b, (m, v) in zip(bns, running):
            b.running_mean, b.running_var = m, v
