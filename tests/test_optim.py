"""cnn_core.optim: the book's update formulas, state handling and validation.

The references below update one element at a time with Python floats, written
from the formulas in the book's chapter 6, not from cnn_core's code.  They use
the same operations in the same order, so float64 results agree bit for bit.
"""
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnn_core.io import load_npz, save_npz
from cnn_core.optim import (OPTIMIZERS, SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop,
                            get_optimizer)

P0 = [0.5, -1.25, 2.0]
GRADS = [[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05], [0.25, 0.125, -0.6]]


# ----------------------------------------------------------------------------- scalar references
def ref_sgd(lr):
    p, out = list(P0), []
    for g in GRADS:
        p = [pi - lr * gi for pi, gi in zip(p, g)]
        out.append(p)
    return out


def ref_momentum(lr, momentum):
    p, v, out = list(P0), [0.0] * 3, []
    for g in GRADS:
        v = [momentum * vi - lr * gi for vi, gi in zip(v, g)]
        p = [pi + vi for pi, vi in zip(p, v)]
        out.append(p)
    return out


def ref_nesterov(lr, momentum):
    p, v, out = list(P0), [0.0] * 3, []
    for g in GRADS:
        v = [momentum * vi - lr * gi for vi, gi in zip(v, g)]
        p = [pi + momentum * momentum * vi for pi, vi in zip(p, v)]
        p = [pi - (1 + momentum) * lr * gi for pi, gi in zip(p, g)]
        out.append(p)
    return out


def ref_adagrad(lr):
    p, h, out = list(P0), [0.0] * 3, []
    for g in GRADS:
        h = [hi + gi * gi for hi, gi in zip(h, g)]
        p = [pi - lr * gi / (math.sqrt(hi) + 1e-7) for pi, gi, hi in zip(p, g, h)]
        out.append(p)
    return out


def ref_rmsprop(lr, decay_rate):
    p, h, out = list(P0), [0.0] * 3, []
    for g in GRADS:
        h = [hi * decay_rate for hi in h]
        h = [hi + (1 - decay_rate) * gi * gi for hi, gi in zip(h, g)]
        p = [pi - lr * gi / (math.sqrt(hi) + 1e-7) for pi, gi, hi in zip(p, g, h)]
        out.append(p)
    return out


def ref_adam(lr, beta1, beta2):
    p, m, v, out = list(P0), [0.0] * 3, [0.0] * 3, []
    for t, g in enumerate(GRADS, start=1):
        lr_t = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
        m = [mi + (1 - beta1) * (gi - mi) for mi, gi in zip(m, g)]
        v = [vi + (1 - beta2) * (gi * gi - vi) for vi, gi in zip(v, g)]
        p = [pi - lr_t * mi / (math.sqrt(vi) + 1e-7) for pi, mi, vi in zip(p, m, v)]
        out.append(p)
    return out


CASES = [
    (SGD, dict(lr=0.1), lambda: ref_sgd(0.1)),
    (SGD, dict(), lambda: ref_sgd(0.01)),
    (Momentum, dict(lr=0.1, momentum=0.9), lambda: ref_momentum(0.1, 0.9)),
    (Momentum, dict(), lambda: ref_momentum(0.01, 0.9)),
    (Nesterov, dict(lr=0.1, momentum=0.8), lambda: ref_nesterov(0.1, 0.8)),
    (Nesterov, dict(), lambda: ref_nesterov(0.01, 0.9)),
    (AdaGrad, dict(lr=0.5), lambda: ref_adagrad(0.5)),
    (AdaGrad, dict(), lambda: ref_adagrad(0.01)),
    (RMSprop, dict(lr=0.05, decay_rate=0.9), lambda: ref_rmsprop(0.05, 0.9)),
    (RMSprop, dict(), lambda: ref_rmsprop(0.01, 0.99)),
    (Adam, dict(lr=0.1, beta1=0.8, beta2=0.99), lambda: ref_adam(0.1, 0.8, 0.99)),
    (Adam, dict(), lambda: ref_adam(0.001, 0.9, 0.999)),
]
IDS = [f"{cls.__name__}-{'defaults' if not kw else 'custom'}" for cls, kw, _ in CASES]


def run(opt, n_steps=3, dtype=np.float64, start=0):
    params = {"W": np.array(P0, dtype=dtype)}
    out = []
    for g in GRADS[start:start + n_steps]:
        opt.update(params, {"W": np.array(g, dtype=dtype)})
        out.append(params["W"].copy())
    return params, out


# ----------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("cls, kwargs, reference", CASES, ids=IDS)
def test_first_three_steps_match_the_formula(cls, kwargs, reference):
    _, steps = run(cls(**kwargs))
    for got, expected in zip(steps, reference()):
        assert_array_equal(got, np.array(expected))


def test_adam_equals_the_paper_with_a_rescaled_epsilon():
    """Kingma & Ba's Algorithm 1 with epsilon = 1e-7 / sqrt(1 - beta2**t)."""
    lr, b1, b2 = 0.1, 0.9, 0.999
    _, steps = run(Adam(lr, b1, b2))
    p, m, v = np.array(P0), np.zeros(3), np.zeros(3)
    for t, (g, got) in enumerate(zip(np.array(GRADS), steps), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + 1e-7 / np.sqrt(1 - b2 ** t))
        assert_allclose(got, p, rtol=1e-13)


@pytest.mark.parametrize("cls, kwargs, reference", CASES, ids=IDS)
def test_float32_parameters_stay_float32(cls, kwargs, reference):
    params, steps = run(cls(**kwargs), dtype=np.float32)
    assert params["W"].dtype == np.float32
    assert_allclose(steps[-1], np.array(reference()[-1]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, lr", [("SGD", 0.95), ("Momentum", 0.1), ("Nesterov", 0.1),
                                      ("AdaGrad", 1.5), ("RMSprop", 0.1), ("Adam", 0.3)])
def test_book_chapter6_comparison_gets_closer_to_the_minimum(name, lr):
    """f(x, y) = x**2 / 20 + y**2 from (-7, 2), 30 steps (the book's optimizer_compare_naive)."""
    opt = get_optimizer(name, lr=lr)
    params = {"x": np.array(-7.0), "y": np.array(2.0)}
    for _ in range(30):
        opt.update(params, {"x": params["x"] / 10.0, "y": 2.0 * params["y"]})
    assert math.hypot(params["x"], params["y"]) < math.hypot(-7.0, 2.0) / 2


# ----------------------------------------------------------------------------- in place, lazily
@pytest.mark.parametrize("cls", list(OPTIMIZERS.values()))
def test_update_is_in_place(cls):
    weights = np.array(P0)
    layer_view = weights[1:]                    # what a layer might hold
    params = {"W": weights}
    cls().update(params, {"W": np.array(GRADS[0])})
    assert params["W"] is weights
    assert np.shares_memory(layer_view, params["W"])
    assert not np.array_equal(weights, P0)
    assert_array_equal(layer_view, weights[1:])


def test_state_is_created_lazily_per_parameter_name():
    opt = Adam()
    assert opt.m == {} and opt.v == {} and opt.iter == 0
    params = {"W": np.ones((2, 3), dtype=np.float32)}
    opt.update(params, {"W": np.full((2, 3), 0.5, dtype=np.float32)})
    assert set(opt.m) == {"W"} and opt.m["W"].shape == (2, 3) and opt.m["W"].dtype == np.float32
    assert opt.iter == 1
    params["b"] = np.zeros(3)                   # a parameter that appears later
    opt.update(params, {"W": np.zeros((2, 3)), "b": np.ones(3)})
    assert set(opt.v) == {"W", "b"}
    momentum = Momentum()
    assert momentum.v == {}
    momentum.update({"x": np.zeros(2)}, {"x": np.ones(2)})
    assert_array_equal(momentum.v["x"], [-0.01, -0.01])


def test_step_takes_name_param_grad_triples():
    a, b = Momentum(lr=0.1), Momentum(lr=0.1)
    pa, pb = {"0.weight": np.array(P0)}, {"0.weight": np.array(P0)}
    for g in GRADS:
        a.update(pa, {"0.weight": np.array(g)})
        b.step([("0.weight", pb["0.weight"], np.array(g))])
    assert_array_equal(pa["0.weight"], pb["0.weight"])
    with pytest.raises(ValueError, match="appears twice"):
        b.step([("w", np.zeros(1), np.zeros(1)), ("w", np.zeros(1), np.zeros(1))])


def test_update_validates_before_changing_anything():
    opt = SGD(lr=1.0)
    params = {"a": np.zeros(2), "b": np.zeros(3)}
    with pytest.raises(KeyError, match="no entry for parameter 'b'"):
        opt.update(params, {"a": np.ones(2)})
    with pytest.raises(ValueError, match=r"grads\['b'\] has shape \(2,\)"):
        opt.update(params, {"a": np.ones(2), "b": np.ones(2)})
    assert_array_equal(params["a"], [0.0, 0.0])     # 'a' was not updated
    with pytest.raises(TypeError, match=r"params\['w'\] must be a float ndarray"):
        opt.update({"w": [1.0, 2.0]}, {"w": np.ones(2)})
    with pytest.raises(TypeError, match="got ndarray of dtype int64"):
        opt.update({"w": np.zeros(2, dtype=np.int64)}, {"w": np.ones(2)})
    frozen = np.zeros(2)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        opt.update({"w": frozen}, {"w": np.ones(2)})
    with pytest.raises(TypeError, match="params must be a dict"):
        opt.update([np.zeros(2)], {})


# ----------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("cls, kwargs, error, match", [
    (SGD, dict(lr=-0.1), ValueError, "lr must be a finite number >= 0, got -0.1"),
    (SGD, dict(lr=float("nan")), ValueError, "lr must be a finite number >= 0"),
    (SGD, dict(lr=float("inf")), ValueError, "lr must be a finite number >= 0"),
    (SGD, dict(lr="0.1"), TypeError, "lr must be a real number, got '0.1'"),
    (SGD, dict(lr=True), TypeError, "lr must be a real number"),
    (Momentum, dict(momentum=1.0), ValueError, r"momentum must be in \[0, 1\), got 1.0"),
    (Momentum, dict(momentum=-0.5), ValueError, r"momentum must be in \[0, 1\)"),
    (Nesterov, dict(momentum=1.5), ValueError, r"momentum must be in \[0, 1\)"),
    (Nesterov, dict(lr=-1), ValueError, "lr must be"),
    (AdaGrad, dict(lr=-1e-3), ValueError, "lr must be"),
    (RMSprop, dict(decay_rate=1.0), ValueError, r"decay_rate must be in \[0, 1\)"),
    (Adam, dict(beta1=1.0), ValueError, r"beta1 must be in \[0, 1\)"),
    (Adam, dict(beta2=-0.1), ValueError, r"beta2 must be in \[0, 1\)"),
    (Adam, dict(lr=None), TypeError, "lr must be a real number, got None"),
])
def test_bad_hyperparameters_are_refused_by_name(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


def test_lr_is_mutable_and_still_validated():
    opt = Adam(lr=np.float32(0.5))
    assert type(opt.lr) is float and opt.lr == 0.5
    opt.lr *= 0.5                               # learning-rate decay
    assert opt.lr == 0.25
    with pytest.raises(ValueError, match="lr must be"):
        opt.lr = -1.0
    assert opt.lr == 0.25
    with pytest.raises(ValueError, match="momentum must be"):
        Momentum().momentum = 1.0


def test_repr_shows_the_hyperparameters():
    assert repr(SGD()) == "SGD(lr=0.01)"
    assert repr(Momentum(lr=0.1)) == "Momentum(lr=0.1, momentum=0.9)"
    assert repr(Nesterov()) == "Nesterov(lr=0.01, momentum=0.9)"
    assert repr(AdaGrad(lr=1.5)) == "AdaGrad(lr=1.5)"
    assert repr(RMSprop()) == "RMSprop(lr=0.01, decay_rate=0.99)"
    assert repr(Adam()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999)"


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("cls, kwargs, reference", CASES, ids=IDS)
def test_state_dict_round_trip_continues_identically(cls, kwargs, reference):
    original = cls(**kwargs)
    params, _ = run(original, n_steps=2)
    state = original.state_dict()
    restored = cls()                            # default hyperparameters, overwritten by the load
    restored.load_state_dict(state)
    assert repr(restored) == repr(original)
    params_copy = {"W": params["W"].copy()}
    g = {"W": np.array(GRADS[2])}
    original.update(params, g)
    restored.update(params_copy, g)
    assert_array_equal(params["W"], params_copy["W"])
    assert_array_equal(params["W"], np.array(reference()[2]))


@pytest.mark.parametrize("cls", list(OPTIMIZERS.values()))
def test_state_dict_is_flat_deep_copied_and_survives_a_file(cls, tmp_path):
    opt = cls()
    params, _ = run(opt, n_steps=2)
    state = opt.state_dict()
    assert state["optimizer"] == cls.__name__
    for slot in opt._slots:
        arr = state[f"{slot}/W"]
        assert isinstance(arr, np.ndarray)
        assert not np.shares_memory(arr, getattr(opt, slot)["W"])
        arr += 100.0                             # does not reach the optimizer
        assert not np.any(getattr(opt, slot)["W"] >= 50)
    state = opt.state_dict()
    # through cnn_core.io (scalars become 0-d arrays) ...
    save_npz(tmp_path / "opt.npz", state, {"note": "optimizer state"})
    arrays, meta = load_npz(tmp_path / "opt.npz")
    from_file = cls()
    from_file.load_state_dict(arrays)
    # ... and through plain np.savez / np.load
    np.savez(tmp_path / "plain.npz", **state)
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as f:
        from_plain = cls()
        from_plain.load_state_dict(dict(f))
    results = []
    for o in (opt, from_file, from_plain):
        p = {"W": params["W"].copy()}
        o.update(p, {"W": np.array(GRADS[2])})
        results.append(p["W"])
    assert_array_equal(results[0], results[1])
    assert_array_equal(results[0], results[2])
    if cls is Adam:
        assert from_file.iter == opt.iter == 3


def test_load_state_dict_refuses_mismatches_and_changes_nothing():
    opt = Adam(lr=0.1)
    run(opt, n_steps=1)
    before = opt.state_dict()
    with pytest.raises(ValueError, match="for optimizer 'SGD', not 'Adam'"):
        opt.load_state_dict(SGD().state_dict())
    with pytest.raises(ValueError, match="no 'optimizer' entry"):
        opt.load_state_dict({"lr": 0.1})
    bad = dict(before, lr=-5.0)
    with pytest.raises(ValueError, match="lr must be"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="does not use"):
        opt.load_state_dict(dict(before, **{"h/W": np.zeros(3)}))
    with pytest.raises(ValueError, match="iter must be an int >= 0"):
        opt.load_state_dict(dict(before, iter=-1))
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        opt.load_state_dict([1, 2])
    after = opt.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        assert_array_equal(after[key], before[key])


def test_state_of_another_shape_is_refused_on_update():
    opt = Momentum()
    opt.load_state_dict({"optimizer": "Momentum", "lr": 0.01, "momentum": 0.9,
                         "v/W": np.zeros(5)})
    with pytest.raises(ValueError, match=r"state v\['W'\] has shape \(5,\)"):
        opt.update({"W": np.zeros(3)}, {"W": np.ones(3)})


# ----------------------------------------------------------------------------- factory
@pytest.mark.parametrize("name, cls", [("SGD", SGD), ("sgd", SGD), ("Momentum", Momentum),
                                       ("MOMENTUM", Momentum), ("Nesterov", Nesterov),
                                       ("AdaGrad", AdaGrad), ("adagrad", AdaGrad),
                                       ("RMSprop", RMSprop), ("rmsprop", RMSprop),
                                       ("Adam", Adam), ("adam", Adam)])
def test_get_optimizer_accepts_the_books_names_in_any_case(name, cls):
    assert type(get_optimizer(name)) is cls


def test_get_optimizer_passes_arguments_and_explains_errors():
    opt = get_optimizer("momentum", lr=0.2, momentum=0.5)
    assert (opt.lr, opt.momentum) == (0.2, 0.5)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprpo'.*SGD, Momentum, Nesterov, "
                                         "AdaGrad, RMSprop, Adam"):
        get_optimizer("rmsprpo")
    with pytest.raises(TypeError, match="optimizer name must be a str"):
        get_optimizer(SGD)
    with pytest.raises(ValueError, match="lr must be"):
        get_optimizer("adam", lr=-1)
