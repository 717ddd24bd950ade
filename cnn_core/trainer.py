"""Trainer: the book's mini-batch training loop, with what users expect beyond it.

``Trainer(network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
optimizer='SGD', optimizer_param={'lr': 0.01}, evaluate_sample_num_per_epoch=None,
verbose=True)`` as in the book, plus keyword options:

* ``sampling='shuffle'`` (default: every epoch is a permutation, no sample drawn
  twice) or ``'book'`` (each step draws ``mini_batch_size`` indices with replacement);
* ``validation_split`` (a fraction of the training data held out, seeded) or
  ``validation_data=(x, t)``;
* ``early_stopping_patience`` (epochs without improvement of the monitored metric:
  validation accuracy if there is validation data, else training loss),
  ``restore_best`` (put the best epoch's weights back at the end),
  ``checkpoint`` (a path, may contain ``{epoch}``; written atomically each epoch),
  ``lr_decay`` (a factor applied each epoch, ``'cosine'`` (the learning rate follows
  ``lr0 * (1 + cos(pi * epoch / epochs)) / 2`` from epoch to epoch, reaching 0 after
  the last), or ``f(epoch, lr) -> lr``),
  ``callbacks`` (objects with ``on_epoch_end(trainer, logs)``; returning True stops);
* ``seed``: shuffling and validation split are reproducible, so with a seeded
  network two runs give identical histories;
* a loss that becomes NaN or infinite raises :class:`TrainingDivergedError`; the
  last checkpoint written before it is intact.
"""
import math
import numbers
import os
import time

import numpy as np

from ._dtype import as_float_array
from .optim import get_optimizer


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class Trainer:
    def __init__(self, network, x_train, t_train, x_test=None, t_test=None, epochs=20,
                 mini_batch_size=100, optimizer="SGD", optimizer_param={"lr": 0.01},
                 evaluate_sample_num_per_epoch=None, verbose=True, *, sampling="shuffle",
                 validation_split=0.0, validation_data=None, seed=None,
                 early_stopping_patience=None, restore_best=False, checkpoint=None,
                 lr_decay=None, callbacks=(), progress=None):
        self.network = network
        self.epochs = _positive_int("epochs", epochs)
        self.batch_size = _positive_int("mini_batch_size", mini_batch_size)
        if sampling not in ("shuffle", "book"):
            raise ValueError(f"sampling must be 'shuffle' or 'book', got {sampling!r}")
        self.sampling = sampling
        self.verbose = bool(verbose)
        self.progress = self.verbose if progress is None else bool(progress)
        self.rng = np.random.default_rng(seed)
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = (get_optimizer(optimizer, **dict(optimizer_param))
                          if isinstance(optimizer, str) else optimizer)

        x_train = as_float_array(x_train, "x_train", network.dtype)
        t_train = np.asarray(t_train)
        if len(x_train) != len(t_train):
            raise ValueError(f"x_train has {len(x_train)} samples but t_train has {len(t_train)}")
        if validation_data is not None and validation_split:
            raise ValueError("give validation_split or validation_data, not both")
        if not (0.0 <= float(validation_split) < 1.0):
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if validation_split:
            order = self.rng.permutation(len(x_train))
            n_val = max(1, int(round(len(x_train) * validation_split)))
            val, keep = order[:n_val], np.sort(order[n_val:])
            validation_data = (x_train[val], t_train[val])
            x_train, t_train = x_train[keep], t_train[keep]
        if len(x_train) == 0:
            raise ValueError("x_train is empty")
        self.x_train, self.t_train = x_train, t_train
        self.x_test = None if x_test is None else as_float_array(x_test, "x_test", network.dtype)
        self.t_test = None if t_test is None else np.asarray(t_test)
        self.validation_data = None if validation_data is None else (
            as_float_array(validation_data[0], "validation_data", network.dtype),
            np.asarray(validation_data[1]))
        self.train_size = len(x_train)
        self.iter_per_epoch = max(math.ceil(self.train_size / self.batch_size), 1)

        if early_stopping_patience is not None:
            early_stopping_patience = _positive_int("early_stopping_patience",
                                                    early_stopping_patience)
        self.early_stopping_patience = early_stopping_patience
        self.restore_best = bool(restore_best)
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        if isinstance(lr_decay, str):
            if lr_decay != "cosine":
                raise ValueError(f"lr_decay must be a factor in (0, 1], 'cosine' or a callable, "
                                 f"got {lr_decay!r}")
            if not isinstance(getattr(self.optimizer, "lr", None), numbers.Real):
                raise ValueError(f"lr_decay='cosine' needs an optimizer with a numeric lr, "
                                 f"got {type(self.optimizer).__name__}")
            lr_decay = _cosine_schedule(float(self.optimizer.lr), lambda: self.epochs)
        elif lr_decay is not None and not callable(lr_decay):
            try:
                factor = float(lr_decay)
            except (TypeError, ValueError):
                factor = math.nan
            if not (0 < factor <= 1):
                raise ValueError(f"lr_decay must be a factor in (0, 1], 'cosine' or a callable, "
                                 f"got {lr_decay!r}")
        self.lr_decay = lr_decay
        self.callbacks = list(callbacks)

        self.train_loss_list, self.train_acc_list, self.test_acc_list = [], [], []
        self.val_acc_list, self.history = [], []
        self.current_epoch = 0
        self.best_epoch, self.best_score, self._best_state = None, None, None
        self.stopped_early = False

    # ------------------------------------------------------------------ steps
    def _batches(self):
        n, bs = self.train_size, self.batch_size
        if self.sampling == "book":
            for _ in range(self.iter_per_epoch):
                yield self.rng.choice(n, bs)
        else:
            order = self.rng.permutation(n)
            for i in range(0, n, bs):
                yield order[i:i + bs]

    def train_step(self, idx):
        x_batch, t_batch = self.x_train[idx], self.t_train[idx]
        grads = self.network.gradient(x_batch, t_batch)
        loss = float(self.network.last_loss)
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the training loss became {loss} at epoch {self.current_epoch + 1} "
                f"(lr {getattr(self.optimizer, 'lr', '?')}); the last checkpoint "
                f"{self.checkpoint or '(none configured)'} is intact")
        self.optimizer.update(self.network.params, grads)
        self.train_loss_list.append(loss)
        return loss

    def _subset(self, x, t):
        n = self.evaluate_sample_num_per_epoch
        return (x, t) if n is None else (x[:n], t[:n])

    def _evaluate(self, logs):
        net = self.network
        logs["train_acc"] = net.accuracy(*self._subset(self.x_train, self.t_train))
        self.train_acc_list.append(logs["train_acc"])
        if self.x_test is not None:
            logs["test_acc"] = net.accuracy(*self._subset(self.x_test, self.t_test))
            self.test_acc_list.append(logs["test_acc"])
        if self.validation_data is not None:
            logs["val_acc"] = net.accuracy(*self.validation_data)
            self.val_acc_list.append(logs["val_acc"])

    # ------------------------------------------------------------------ loop
    def train(self):
        from tqdm.auto import tqdm

        if getattr(self.lr_decay, "from_completed_epochs", False) and hasattr(self.optimizer, "lr"):
            # the cosine schedule, from the epochs completed so far and the current total:
            # train() again after raising trainer.epochs goes on along the longer schedule
            self.optimizer.lr = self.lr_decay(self.current_epoch, self.optimizer.lr)
        for epoch in range(self.current_epoch, self.epochs):
            t0 = time.perf_counter()
            bar = tqdm(total=self.iter_per_epoch, desc=f"epoch {epoch + 1}/{self.epochs}",
                       disable=not self.progress, leave=False, unit="step")
            losses = []
            for i, idx in enumerate(self._batches()):
                losses.append(self.train_step(idx))
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
                bar.update(1)
            bar.close()
            self.current_epoch = epoch + 1
            logs = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                    "lr": getattr(self.optimizer, "lr", None),
                    "train_time": time.perf_counter() - t0}
            self._evaluate(logs)
            self.history.append(logs)
            if self.verbose:
                print(" ".join(_fmt(k, v) for k, v in logs.items()), flush=True)
            stop = self._end_of_epoch(logs)
            if stop:
                self.stopped_early = True
                break
        if self.restore_best and self._best_state is not None:
            for name, value in self._best_state.items():
                self.network.params[name] = value
        if self.x_test is not None:
            self.final_test_acc = self.network.accuracy(self.x_test, self.t_test)
            if self.verbose:
                print(f"=============== Final Test Accuracy ===============\n"
                      f"test acc: {self.final_test_acc:.4f}", flush=True)
        return self.history

    def _end_of_epoch(self, logs):
        score = logs["val_acc"] if "val_acc" in logs else -logs["loss"]
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_score, self.best_epoch = score, logs["epoch"]
            if self.restore_best:
                self._best_state = {k: v.copy() for k, v in self.network.params.items()}
        if self.checkpoint:
            self.network.save_params(self.checkpoint.format(epoch=logs["epoch"]))
        if self.lr_decay is not None and hasattr(self.optimizer, "lr"):
            self.optimizer.lr = (self.lr_decay(logs["epoch"], self.optimizer.lr)
                                 if callable(self.lr_decay) else self.optimizer.lr * self.lr_decay)
        stop = False
        for cb in self.callbacks:
            stop = bool(cb.on_epoch_end(self, logs)) or stop
        if (self.early_stopping_patience is not None
                and logs["epoch"] - self.best_epoch >= self.early_stopping_patience):
            if self.verbose:
                print(f"early stopping: no improvement for {self.early_stopping_patience} epochs "
                      f"(best epoch {self.best_epoch})", flush=True)
            stop = True
        return stop


def _cosine_schedule(lr0, epochs):
    """f(epoch, lr) -> the learning rate for the epoch after ``epoch``: a half cosine from
    ``lr0`` down to 0 over ``epochs()`` epochs (SGDR without restarts, per epoch).  The
    total is read at every call, and ``train()`` re-applies it when it starts, so raising
    ``trainer.epochs`` and training again continues along the longer schedule."""
    def schedule(epoch, lr):
        total = epochs()
        return lr0 * 0.5 * (1.0 + math.cos(math.pi * min(epoch, total) / total))
    schedule.from_completed_epochs = True
    return schedule


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _fmt(key, value):
    if isinstance(value, float):
        return f"{key}={value:.4f}" if key != "lr" else f"{key}={value:.3g}"
    return f"{key}={value}"
