"""The Trainer: the book's loop and history, and the options beyond the book."""
import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import cnn_core
from cnn_core import MultiLayerNet, SimpleConvNet, Trainer, load_model
from cnn_core.datasets import load_digits
from cnn_core.trainer import TrainingDivergedError


@pytest.fixture(scope="module")
def digits():
    return load_digits(flatten=True)


def _trainer(digits, net=None, **kw):
    (x_train, t_train), (x_test, t_test) = digits
    net = net or MultiLayerNet(64, [30], 10, seed=0)
    kw.setdefault("optimizer", "Adam")
    kw.setdefault("optimizer_param", {"lr": 0.01})
    return Trainer(net, x_train, t_train, x_test, t_test, epochs=kw.pop("epochs", 3),
                   mini_batch_size=50, verbose=False, seed=0, **kw)


def test_book_histories_and_learning(digits):
    tr = _trainer(digits, epochs=4)
    tr.train()
    assert len(tr.train_acc_list) == len(tr.test_acc_list) == 4
    assert len(tr.train_loss_list) == 4 * tr.iter_per_epoch
    assert tr.test_acc_list[-1] > 0.9 and tr.final_test_acc == tr.test_acc_list[-1]
    assert np.mean(tr.train_loss_list[-10:]) < np.mean(tr.train_loss_list[:10])


def test_shuffled_epochs_cover_every_sample_once_and_book_sampling(digits):
    tr = _trainer(digits)
    seen = np.concatenate(list(tr._batches()))
    np.testing.assert_array_equal(np.sort(seen), np.arange(tr.train_size))
    book = _trainer(digits, sampling="book")
    draws = list(book._batches())
    assert len(draws) == book.iter_per_epoch and all(len(d) == 50 for d in draws)
    assert len(np.unique(np.concatenate(draws))) < book.train_size  # with replacement
    with pytest.raises(ValueError, match="sampling"):
        _trainer(digits, sampling="bogus")


def test_seeded_runs_identical_at_one_and_two_threads(digits, restore_num_threads):
    histories = []
    for threads in (1, 2, 2):
        cnn_core.set_num_threads(threads)
        (x_train, t_train), (x_test, t_test) = load_digits(flatten=False)
        net = SimpleConvNet((1, 8, 8), {"filter_num": 8, "filter_size": 3, "pad": 1, "stride": 1},
                            hidden_size=20, seed=5)
        with threadpool_limits(threads):
            tr = Trainer(net, x_train, t_train, x_test, t_test, epochs=2, mini_batch_size=64,
                         optimizer="Adam", optimizer_param={"lr": 0.005}, verbose=False, seed=7)
            tr.train()
        histories.append((tr.train_loss_list, tr.train_acc_list, tr.test_acc_list))
    assert histories[0] == histories[1] == histories[2]


def test_validation_split_early_stopping_and_restore_best(digits):
    tr = _trainer(digits, validation_split=0.25, epochs=10, early_stopping_patience=2,
                  restore_best=True, optimizer="SGD", optimizer_param={"lr": 0.0})
    n_total = len(digits[0][0])
    assert len(tr.validation_data[0]) == round(0.25 * n_total)
    assert tr.train_size == n_total - round(0.25 * n_total)
    before = {k: v.copy() for k, v in tr.network.params.items()}
    tr.train()  # lr 0: nothing improves after epoch 1
    assert tr.stopped_early and tr.current_epoch == 3 and tr.best_epoch == 1
    assert len(tr.val_acc_list) == 3
    for k in before:
        np.testing.assert_array_equal(tr.network.params[k], before[k])


def test_restore_best_puts_back_the_best_epoch(digits):
    class Spoil:  # ruins the weights after epoch 2 is scored, so epoch 1 or 2 stays best
        def on_epoch_end(self, trainer, logs):
            if logs["epoch"] == 2:
                for v in trainer.network.params.values():
                    v[...] = 0

    spoil = Spoil()
    tr = _trainer(digits, epochs=3, validation_split=0.2, restore_best=True, callbacks=[spoil])
    tr.train()
    assert tr.best_epoch in (1, 2)
    assert tr.val_acc_list[-1] < max(tr.val_acc_list[:2])  # the spoiled run is worse
    assert tr.network.accuracy(*tr.validation_data) == pytest.approx(max(tr.val_acc_list))


def test_checkpoints_and_lr_decay(digits, tmp_path):
    tr = _trainer(digits, epochs=3, checkpoint=tmp_path / "ckpt-{epoch}.npz", lr_decay=0.5)
    tr.train()
    assert tr.optimizer.lr == pytest.approx(0.01 * 0.5 ** 3)
    assert [h["lr"] for h in tr.history] == pytest.approx([0.01, 0.005, 0.0025])
    for e in (1, 2, 3):
        assert (tmp_path / f"ckpt-{e}.npz").exists()
    last = load_model(tmp_path / "ckpt-3.npz")
    x_test, t_test = digits[1]
    assert last.accuracy(x_test, t_test) == pytest.approx(tr.final_test_acc)
    tr2 = _trainer(digits, epochs=2, lr_decay=lambda epoch, lr: lr / (1 + epoch))
    tr2.train()
    assert tr2.optimizer.lr == pytest.approx(0.01 / 2 / 3)


def test_cosine_lr_decay(digits):
    tr = _trainer(digits, epochs=4, lr_decay="cosine")
    tr.train()
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert [h["lr"] for h in tr.history] == pytest.approx(expected)
    assert tr.optimizer.lr == pytest.approx(0.0, abs=1e-15)
    # raising epochs and training again continues along the longer schedule
    tr2 = _trainer(digits, epochs=2, lr_decay="cosine")
    tr2.train()
    tr2.epochs = 4
    tr2.train()
    assert [h["lr"] for h in tr2.history] == pytest.approx(
        [0.01, 0.005] + [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in (2, 3)])
    for bad in ("linear", "0", -0.5, 1.5, [0.5]):
        with pytest.raises(ValueError, match="lr_decay"):
            _trainer(digits, epochs=2, lr_decay=bad)


def test_nan_loss_stops_with_clear_error_and_checkpoint_intact(digits, tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    tr = _trainer(digits, epochs=1, checkpoint=ckpt)
    tr.train()
    good = load_model(ckpt)
    tr.epochs = 5
    tr.optimizer.lr = 1e30  # diverges
    with pytest.raises(TrainingDivergedError, match="loss became"):
        tr.train()
    again = load_model(ckpt)
    x_test, _ = digits[1]
    np.testing.assert_array_equal(good.predict(x_test), again.predict(x_test))
    assert all(np.all(np.isfinite(p)) for p in again.params.values())


def test_bad_trainer_arguments(digits):
    with pytest.raises(ValueError, match="epochs"):
        _trainer(digits, epochs=0)
    with pytest.raises(ValueError, match="validation_split"):
        _trainer(digits, validation_split=1.5)
    with pytest.raises(ValueError, match="optimizer|Bogus"):
        _trainer(digits, optimizer="Bogus")
    (x_train, t_train), _ = digits
    with pytest.raises(ValueError, match="t_train"):
        Trainer(MultiLayerNet(64, [5], 10), x_train, t_train[:-1])
