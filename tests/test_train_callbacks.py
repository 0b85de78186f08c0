"""Callbacks: checkpoint-best, resume after a kill or Ctrl-C, early stopping, CSV log, monitor, lr_find."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from pixelforge.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ResumeCheckpoint,
    Trainer,
    TrainingInterrupted,
    TrainingMonitor,
    load_model,
)
from pixelforge.train.lr_find import lr_find
from tests.train_helpers import one_thread, toy_images, toy_names  # noqa: F401 (autouse fixture)


@pytest.fixture
def toy():
    x, y = toy_images()
    return (x, toy_names(y)), (x[:30], toy_names(y[:30]))


def params(network):
    return torch.cat([p.detach().flatten() for p in network.parameters()])


def test_checkpoint_best_keeps_the_epoch_with_the_best_monitored_value(tmp_path, toy):
    train, val = toy
    trainer = Trainer(seed=0, verbose=False, lr=0.05)
    history = trainer.fit(train, validation=val, epochs=4, batch_size=16,
                          callbacks=[ModelCheckpoint(tmp_path, monitor="val_loss")])
    losses = history.history["val_loss"]
    best = min(range(4), key=losses.__getitem__)
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved["metrics"]["epoch"] == best + 1
    assert saved["metrics"]["val_loss"] == pytest.approx(losses[best])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_monitoring_a_metric_that_is_not_logged_is_a_clear_error(tmp_path, toy):
    train, _ = toy
    with pytest.raises(Exception, match="cannot monitor 'val_accuracy'.*needs validation data"):
        Trainer(verbose=False).fit(train, epochs=1, callbacks=[ModelCheckpoint(tmp_path, monitor="val_accuracy")])


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, toy):
    train, val = toy
    straight = Trainer(seed=3, verbose=False)
    straight.fit(train, validation=val, epochs=3, batch_size=16)

    first = Trainer(seed=3, verbose=False)
    first.fit(train, validation=val, epochs=2, batch_size=16, callbacks=[ResumeCheckpoint(tmp_path)])
    resumed = Trainer(seed=3, verbose=False)
    history = resumed.fit(train, validation=val, epochs=3, batch_size=16, callbacks=[ResumeCheckpoint(tmp_path)],
                          resume_from=tmp_path)
    assert len(history.epoch) == 3
    assert torch.equal(params(straight.network), params(resumed.network))
    assert history.history["val_loss"] == straight.history.history["val_loss"]


def test_ctrl_c_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path, toy):
    class CtrlC(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    train, val = toy
    trainer = Trainer(seed=0, verbose=False)
    with pytest.raises(TrainingInterrupted, match="epoch 2.*checkpoint of epoch 1 is kept"):
        trainer.fit(train, validation=val, epochs=3, batch_size=16,
                    callbacks=[ResumeCheckpoint(tmp_path), CtrlC()])
    state = json.loads((tmp_path / "checkpoint" / "last.json").read_text())
    assert state["epochs_done"] == 1
    again = Trainer(seed=0, verbose=False)
    history = again.fit(train, validation=val, epochs=3, batch_size=16, callbacks=[ResumeCheckpoint(tmp_path)],
                        resume_from=tmp_path)
    assert len(history.epoch) == 3


def test_a_tampered_checkpoint_is_refused(tmp_path, toy):
    train, _ = toy
    Trainer(verbose=False).fit(train, epochs=1, callbacks=[ResumeCheckpoint(tmp_path)])
    weights = tmp_path / "checkpoint" / "last.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(Exception, match="SHA-256"):
        Trainer(verbose=False).fit(train, epochs=2, resume_from=tmp_path)


def test_early_stopping_stops_and_restores_the_best_weights(toy):
    train, val = toy
    seen = []

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(params(self.trainer.network).clone())

    # min_delta so large that nothing after the first epoch counts as an improvement
    stopper = EarlyStopping(monitor="val_loss", patience=1, min_delta=100.0)
    trainer = Trainer(seed=0, verbose=False)
    history = trainer.fit(train, validation=val, epochs=10, batch_size=16, callbacks=[Snapshot(), stopper])
    assert len(history.epoch) == 3  # best at epoch 1, then patience 1 → stop after epoch 3
    assert stopper.best_epoch == 0
    assert torch.equal(params(trainer.network), seen[0])


def test_csv_log_and_training_monitor_write_every_epoch(tmp_path, toy):
    train, val = toy
    Trainer(verbose=False).fit(train, validation=val, epochs=2, batch_size=16,
                               callbacks=[CSVLogger(tmp_path / "log.csv"), TrainingMonitor(tmp_path)])
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["val_accuracy"]) == 2
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_lr_find_plots_and_suggests_without_changing_the_model(tmp_path, toy):
    train, _ = toy
    trainer = Trainer(seed=0, verbose=False)
    trainer.fit(train, epochs=1, batch_size=16)
    before = params(trainer.network).clone()
    result = lr_find(trainer, train, steps=40, batch_size=16, plot=tmp_path / "lr.png")
    assert torch.equal(before, params(trainer.network))
    assert 1e-7 <= result["suggested_lr"] <= 10
    assert result["lrs"] == sorted(result["lrs"])
    assert (tmp_path / "lr.png").exists()


def test_checkpoint_models_load_for_prediction(tmp_path, toy):
    train, val = toy
    Trainer(verbose=False).fit(train, validation=val, epochs=1, callbacks=[ModelCheckpoint(tmp_path)])
    model = load_model(tmp_path)
    assert model.classes == ["alpha", "beta", "gamma"]


def test_resumed_early_stopping_restores_the_best_weights_from_the_checkpoint_best_model(tmp_path, toy):
    """A constant monitor (the learning rate) makes epoch 1 the best for both callbacks, whatever training does."""
    train, val = toy

    def callbacks(run_dir):
        return [ModelCheckpoint(run_dir, monitor="lr", mode="min"),
                EarlyStopping(monitor="lr", mode="min", patience=1), ResumeCheckpoint(run_dir)]

    straight = Trainer(seed=5, verbose=False)
    straight.fit(train, validation=val, epochs=6, batch_size=16, callbacks=callbacks(tmp_path / "a"))
    assert len(straight.history.epoch) == 3  # stopped, then put back epoch 1's weights

    Trainer(seed=5, verbose=False).fit(train, validation=val, epochs=2, batch_size=16, callbacks=callbacks(tmp_path / "b"))
    resumed = Trainer(seed=5, verbose=False)
    resumed.fit(train, validation=val, epochs=6, batch_size=16, callbacks=callbacks(tmp_path / "b"),
                resume_from=tmp_path / "b")
    assert len(resumed.history.epoch) == 3
    assert torch.equal(params(resumed.network), params(straight.network))

    stopper = EarlyStopping(monitor="lr", mode="min")
    stopper.load_state_dict({"best": 0.01, "best_epoch": 1, "wait": 0})  # not the epoch the folder holds
    assert not stopper.recover_best_weights(tmp_path / "b")
    assert not EarlyStopping().recover_best_weights(tmp_path / "missing")
