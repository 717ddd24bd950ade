"""The book's optimizers (chapter 6, ``common/optimizer.py``), validated and checkpointable.

Every optimizer has the book's ``update(params, grads)``: ``params`` and
``grads`` are dicts of arrays under matching keys, and each ``params[key]`` is
updated **in place**, so layers holding the array (or a view of it) see the new
values.  Per-parameter state (``v``, ``h``, ``m``) lives in dicts keyed by the
parameter name, with the book's attribute names, and is created on first use
with ``np.zeros_like``.  The update formulas are the book's, operation for
operation (same rounding), including where the ``1e-7`` sits.

Hyperparameters are checked on construction and on every later assignment, so
``opt.lr *= 0.5`` (learning-rate decay) works and ``opt.lr = -1`` is refused.

``state_dict()`` returns a flat dict that ``np.savez`` / :func:`cnn_core.io.save_npz`
can write as it is: ``{"optimizer": "Adam", "lr": 0.001, ..., "iter": 3,
"m/W1": array, "v/W1": array, ...}`` (a slot name, a slash, the parameter
name).  ``load_state_dict`` accepts it back, also after a round trip through a
file (0-d arrays in place of the scalars).
"""
import math
import numbers
from collections.abc import Mapping

import numpy as np

from . import functional as F

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam",
           "OPTIMIZERS", "get_optimizer"]

EPS = 1e-7   # the book's epsilon in AdaGrad, RMSprop and Adam (added to sqrt(h), not under it)


# ----------------------------------------------------------------------------- validators
def _real(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _learning_rate(name, value):
    v = _real(name, value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _unit_interval(name, value):
    v = _real(name, value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


def _counter(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def _python_scalar(key, value):
    """A scalar from a state dict, also when a file turned it into a 0-d array."""
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"state entry {key!r} must be a scalar, got an array of "
                             f"shape {value.shape}")
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ----------------------------------------------------------------------------- base
class Optimizer:
    """Shared machinery: validated hyperparameters, lazy state, checkpoints.

    Subclasses list their constructor arguments in ``_hyperparams`` (with a
    validator in ``_checks``), their per-parameter state dicts in ``_slots``,
    integer counters in ``_counters``, and implement ``_update(items)`` over
    ``(name, param, grad)`` triples that :meth:`update` has validated.
    """

    _hyperparams = ("lr",)
    _checks = {"lr": _learning_rate}
    _slots = ()
    _counters = ()

    def __init__(self, lr=0.01):
        self.lr = lr
        for slot in self._slots:
            setattr(self, slot, {})
        for counter in self._counters:
            setattr(self, counter, 0)

    def __setattr__(self, name, value):
        check = self._checks.get(name) or (_counter if name in self._counters else None)
        object.__setattr__(self, name, check(name, value) if check else value)

    def __repr__(self):
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._hyperparams)
        return f"{type(self).__name__}({args})"

    # -------------------------------------------------------------- updating
    def update(self, params, grads):
        """Update every ``params[key]`` in place from ``grads[key]`` (the book's call)."""
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
        if not isinstance(grads, Mapping):
            raise TypeError(f"grads must be a dict of arrays, got {type(grads).__name__}")
        items = []
        for key, param in params.items():       # check everything before changing anything
            if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
                got = (f"ndarray of dtype {param.dtype}" if isinstance(param, np.ndarray)
                       else type(param).__name__)
                raise TypeError(f"params[{key!r}] must be a float ndarray (updated in place), "
                                f"got {got}")
            if not param.flags.writeable:
                raise ValueError(f"params[{key!r}] is read-only and cannot be updated in place")
            if key not in grads:
                raise KeyError(f"grads has no entry for parameter {key!r} "
                               f"(grads keys: {list(grads)})")
            grad = np.asarray(grads[key])
            if grad.shape != param.shape:
                raise ValueError(f"grads[{key!r}] has shape {grad.shape}, params[{key!r}] has "
                                 f"shape {param.shape}")
            if grad.dtype.kind not in "fiub":
                raise TypeError(f"grads[{key!r}] must be numeric, got dtype {grad.dtype}")
            for slot in self._slots:
                state = getattr(self, slot).get(key)
                if state is not None and state.shape != param.shape:
                    raise ValueError(f"state {slot}[{key!r}] has shape {state.shape}, the "
                                     f"parameter has shape {param.shape} (a state_dict from "
                                     f"another model?)")
            items.append((key, param, grad))
        self._update(items)

    def step(self, params_and_grads):
        """``update`` from ``(name, param, grad)`` triples (``Sequential.params_and_grads()``)."""
        params, grads = {}, {}
        for name, param, grad in params_and_grads:
            if name in params:
                raise ValueError(f"parameter name {name!r} appears twice")
            params[name], grads[name] = param, grad
        self.update(params, grads)

    def _state(self, slot, key, like):
        """The ``slot`` state of parameter ``key``, created as zeros on first use (the book)."""
        states = getattr(self, slot)
        if key not in states:
            states[key] = np.zeros_like(like)
        return states[key]

    def _update(self, items):
        raise NotImplementedError

    # -------------------------------------------------------------- checkpoints
    def state_dict(self):
        """A deep copy of the state as a flat dict (suitable for ``np.savez(f, **d)``)."""
        d = {"optimizer": type(self).__name__}
        for name in self._hyperparams:
            d[name] = getattr(self, name)
        for name in self._counters:
            d[name] = getattr(self, name)
        for slot in self._slots:
            for key, value in getattr(self, slot).items():
                d[f"{slot}/{key}"] = value.copy()
        return d

    def load_state_dict(self, state_dict):
        """Restore hyperparameters, counters and state from :meth:`state_dict` output.

        Arrays are copied.  Nothing changes unless the whole dict is valid.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        cls = type(self).__name__
        if "optimizer" not in state_dict:
            raise ValueError(f"state_dict has no 'optimizer' entry (expected {cls!r})")
        kind = _python_scalar("optimizer", state_dict["optimizer"])
        if kind != cls:
            raise ValueError(f"state_dict is for optimizer {kind!r}, not {cls!r}")
        scalars, slots, unknown = {}, {slot: {} for slot in self._slots}, []
        for key, value in state_dict.items():
            if key == "optimizer":
                continue
            if key in self._hyperparams:
                scalars[key] = self._checks[key](key, _python_scalar(key, value))
            elif key in self._counters:
                scalars[key] = _counter(key, _python_scalar(key, value))
            elif isinstance(key, str) and key.partition("/")[0] in slots and "/" in key:
                slot, _, name = key.partition("/")
                arr = np.asarray(value)
                if arr.dtype.kind != "f":
                    raise TypeError(f"state entry {key!r} must be a float array, "
                                    f"got dtype {arr.dtype}")
                slots[slot][name] = np.array(arr, copy=True)
            else:
                unknown.append(key)
        if unknown:
            raise ValueError(f"state_dict has keys {unknown!r} that {cls} does not use "
                             f"(expected {list(self._hyperparams) + list(self._counters)} and "
                             f"'<slot>/<param>' with slot in {list(self._slots)})")
        for name, value in scalars.items():
            setattr(self, name, value)
        for slot, states in slots.items():
            setattr(self, slot, states)


# ------------------------------------------------------------------ the book's optimizers
class SGD(Optimizer):
    """Stochastic gradient descent: W <- W - lr * dL/dW.

    Robbins & Monro, "A Stochastic Approximation Method", Ann. Math. Statist. 22 (1951).
    """

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _update(self, items):
        for _, param, grad in items:
            param -= self.lr * grad


class Momentum(Optimizer):
    """Momentum SGD: v <- momentum * v - lr * g;  W <- W + v.

    Polyak, "Some methods of speeding up the convergence of iteration methods",
    USSR Comput. Math. Math. Phys. 4(5) (1964).
    """

    _hyperparams = ("lr", "momentum")
    _checks = {"lr": _learning_rate, "momentum": _unit_interval}
    _slots = ("v",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _update(self, items):
        for key, param, grad in items:
            v = self._state("v", key, param)
            v *= self.momentum            # in place, same rounding as the book's
            v -= self.lr * grad           # v = momentum*v - lr*g
            param += v


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient, in the book's form:

    v <- momentum * v - lr * g;  W <- W + momentum**2 * v - (1 + momentum) * lr * g.

    Nesterov, "A method for solving the convex programming problem with
    convergence rate O(1/k^2)", Soviet Math. Dokl. 27 (1983); the book cites the
    reformulation of Bengio, Boulanger-Lewandowski & Pascanu, "Advances in
    Optimizing Recurrent Networks", ICASSP 2013 (arXiv:1212.0901).
    """

    _hyperparams = ("lr", "momentum")
    _checks = {"lr": _learning_rate, "momentum": _unit_interval}
    _slots = ("v",)

    def __init__(self, lr=0.01, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _update(self, items):
        for key, param, grad in items:
            v = self._state("v", key, param)
            v *= self.momentum
            v -= self.lr * grad
            param += self.momentum * self.momentum * v
            param -= (1 + self.momentum) * self.lr * grad


class AdaGrad(Optimizer):
    """AdaGrad: h <- h + g*g;  W <- W - lr * g / (sqrt(h) + 1e-7).

    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 12 (2011).
    """

    _slots = ("h",)

    def __init__(self, lr=0.01):
        super().__init__(lr)

    def _update(self, items):
        for key, param, grad in items:
            h = self._state("h", key, param)
            h += grad * grad
            param -= self.lr * grad / (np.sqrt(h) + EPS)


class RMSprop(Optimizer):
    """RMSprop: h <- decay_rate * h + (1 - decay_rate) * g*g;  W <- W - lr * g / (sqrt(h) + 1e-7).

    Tieleman & Hinton, "Lecture 6.5 - rmsprop: divide the gradient by a running
    average of its recent magnitude", COURSERA: Neural Networks for Machine Learning (2012).
    """

    _hyperparams = ("lr", "decay_rate")
    _checks = {"lr": _learning_rate, "decay_rate": _unit_interval}
    _slots = ("h",)

    def __init__(self, lr=0.01, decay_rate=0.99):
        super().__init__(lr)
        self.decay_rate = decay_rate

    def _update(self, items):
        for key, param, grad in items:
            h = self._state("h", key, param)
            h *= self.decay_rate
            h += (1 - self.decay_rate) * grad * grad
            param -= self.lr * grad / (np.sqrt(h) + EPS)


class Adam(Optimizer):
    """Adam, in the book's form (bias correction folded into the step size):

    iter <- iter + 1;  lr_t = lr * sqrt(1 - beta2**iter) / (1 - beta1**iter)
    m <- m + (1 - beta1) * (g - m);  v <- v + (1 - beta2) * (g**2 - v)
    W <- W - lr_t * m / (sqrt(v) + 1e-7)

    This equals the paper's Algorithm 1 (bias-corrected m_hat, v_hat) with its epsilon
    replaced by 1e-7 / sqrt(1 - beta2**iter): the epsilon sits outside the bias correction.
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (arXiv:1412.6980).
    """

    _hyperparams = ("lr", "beta1", "beta2")
    _checks = {"lr": _learning_rate, "beta1": _unit_interval, "beta2": _unit_interval}
    _slots = ("m", "v")
    _counters = ("iter",)

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        super().__init__(lr)
        self.beta1 = beta1
        self.beta2 = beta2

    def _update(self, items):
        self.iter += 1
        # A Python float (math.sqrt is correctly rounded, as np.sqrt) keeps float32
        # parameters in float32 arithmetic under NumPy 2's promotion rules.
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key, param, grad in items:
            m = self._state("m", key, param)
            v = self._state("v", key, param)
            if _fused_ok(param, grad, m, v):   # one pass instead of about ten
                F.adam_update(param, grad, m, v, lr_t, self.beta1, self.beta2, EPS)
                continue
            m += (1 - self.beta1) * (grad - m)
            v += (1 - self.beta2) * (grad ** 2 - v)
            param -= lr_t * m / (np.sqrt(v) + EPS)


def _fused_ok(param, *others):
    """True when the compiled fused update applies: ndarrays of param's float dtype and
    shape, C-contiguous (and param, the states writeable)."""
    if not isinstance(param, np.ndarray) or param.dtype not in (np.float32, np.float64):
        return False
    for a in (param,) + others:
        if (not isinstance(a, np.ndarray) or a.dtype != param.dtype or a.shape != param.shape
                or not a.flags.c_contiguous):
            return False
    return param.flags.writeable and all(a.flags.writeable for a in others[1:])


# ----------------------------------------------------------------------------- factory
#: the book's names, lower-cased, to classes
OPTIMIZERS = {cls.__name__.lower(): cls
              for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam)}


def get_optimizer(name, **kwargs):
    """An optimizer by the book's name, case-insensitively: ``get_optimizer("adam", lr=1e-3)``."""
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a str, got {type(name).__name__}")
    cls = OPTIMIZERS.get(name.lower())
    if cls is None:
        valid = ", ".join(cls.__name__ for cls in OPTIMIZERS.values())
        raise ValueError(f"unknown optimizer {name!r}; valid names (any case): {valid}")
    return cls(**kwargs)
