"""Keras-style callbacks: checkpoint-best, resumable last checkpoint, early stopping, CSV log, a
training monitor (curves PNG + JSON each epoch) and a live progress bar.

A callback sees the trainer (``self.trainer``) and the epoch's logs (``loss``, ``accuracy``,
``val_loss``, ``val_accuracy``, ``lr``). Callbacks that carry state across epochs implement
``state_dict``/``load_state_dict`` so that a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.train.files import write_json, write_text


class Callback:
    trainer = None
    # in data-parallel training, only rank 0 runs callbacks that write the run folder or print
    rank_zero_only = False

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...

    def close(self) -> None:
        """Called after training however it ended (finished, stopped, interrupted, failed)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise PixelforgeError(f"mode must be auto, min or max, got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class _Monitored(Callback):
    """Shared by checkpoint-best and early stopping: track the best value of one logged metric."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self.best: float | None = None
        self.best_epoch: int | None = None

    def _value(self, logs: dict) -> float:
        if self.monitor not in logs:
            available = ", ".join(k for k in logs if k != "lr")
            raise PixelforgeError(
                f"cannot monitor {self.monitor!r}: the epoch logs have {available} "
                "(val_* needs validation data)"
            )
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")


class ModelCheckpoint(_Monitored):
    """Save the model (``model.safetensors`` + ``model.json``) to ``run_dir`` whenever ``monitor``
    improves (or every epoch with ``save_best_only=False``); each write is atomic."""

    rank_zero_only = True

    def __init__(self, run_dir, monitor: str = "val_loss", mode: str = "auto", save_best_only: bool = True):
        super().__init__(monitor, mode)
        self.run_dir = Path(run_dir)
        self.save_best_only = save_best_only

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = self._value(logs)
        if self.improved(value) or not self.save_best_only:
            if self.improved(value):
                self.best, self.best_epoch = value, epoch
            metrics = {k: v for k, v in logs.items() if k != "lr"}
            self.trainer.save(self.run_dir, metrics={**metrics, "epoch": epoch + 1, "monitor": self.monitor})


class EarlyStopping(_Monitored):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally put back the best weights."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "auto",
                 min_delta: float = 0.0, restore_best_weights: bool = True):
        super().__init__(monitor, mode, min_delta)
        if patience < 0:
            raise PixelforgeError(f"patience must be >= 0, got {patience}")
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_weights = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = self._value(logs)
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_weights = {k: v.detach().clone() for k, v in self.trainer.network.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            self.trainer.log(
                f"early stopping: {self.monitor} has not improved for {self.wait} epochs "
                f"(best {self.best:.4f} at epoch {self.best_epoch + 1})"
            )

    def on_train_end(self, logs=None) -> None:
        if self.stopped_epoch is None or not self.restore_best_weights:
            return
        if self._best_weights is not None:
            self.trainer.network.load_state_dict(self._best_weights)
            self.trainer.log(f"restored the weights of epoch {self.best_epoch + 1}")
        else:
            self.trainer.log(f"[yellow]the weights of the best epoch ({self.best_epoch + 1}) were lost with the "
                             "resumed run and no checkpoint-best model holds them; keeping the last epoch's[/]")

    def state_dict(self) -> dict:
        return {**super().state_dict(), "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.wait = int(state.get("wait", 0))
        self._best_weights = None  # gone with the killed process; see recover_best_weights

    def recover_best_weights(self, run_dir) -> bool:
        """After a resume, take the best epoch's weights from the run folder's checkpoint-best model
        (``model.json`` + ``model.safetensors``) when it holds that epoch by the same monitor.

        Returns whether they were recovered; if not, the end-of-training restore is skipped (and says so).
        """
        if not self.restore_best_weights or self.best_epoch is None:
            return False
        from pixelforge.train.saved import load_model

        try:
            saved = load_model(run_dir)
        except PixelforgeError:
            return False
        metrics = saved.config.get("metrics") or {}
        if metrics.get("epoch") != self.best_epoch + 1 or metrics.get("monitor") != self.monitor:
            return False
        self._best_weights = {k: v.detach().clone() for k, v in saved.network.state_dict().items()}
        return True


class CSVLogger(Callback):
    """One row per epoch (epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds); rewritten whole
    each epoch so the file is always complete, and continued after a resume."""

    rank_zero_only = True

    def __init__(self, path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None) -> None:
        if self.trainer is not None and self.trainer.initial_epoch == 0:
            self.rows = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.rows.append({"epoch": epoch + 1, **logs})
        keys = list(dict.fromkeys(k for row in self.rows for k in row))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, out.getvalue())

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state.get("rows", []))


class TrainingMonitor(Callback):
    """Redraw ``curves.png`` and write ``history.json`` at the end of every epoch."""

    rank_zero_only = True

    def __init__(self, run_dir, title: str = "learning curves"):
        self.run_dir = Path(run_dir)
        self.title = title

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        from pixelforge.train.plots import plot_curves

        history = self.trainer.history.history
        write_json(self.run_dir / "history.json", history)
        plot_curves([history], self.run_dir / "curves.png", self.title)


class ResumeCheckpoint(Callback):
    """Write the full training state (weights, optimizer, epoch, history, callbacks) after every
    epoch to ``run_dir/checkpoint/``, so ``fit(..., resume=True)`` continues after a kill."""

    rank_zero_only = True

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        from pixelforge.train.checkpoint import save_training_state

        save_training_state(self.run_dir, self.trainer, epoch + 1)


class ProgressBar(Callback):
    """A rich progress bar per epoch with live loss and accuracy, refreshed a few times a second."""

    rank_zero_only = True

    def __init__(self, console=None, refresh: float = 0.25):
        self.console = console
        self.refresh = refresh
        self._progress = None

    def on_train_begin(self, logs=None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(),
            console=self.console or Console(stderr=True), transient=False,
        )
        self._progress.start()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        t = self.trainer
        self._task = self._progress.add_task(
            f"epoch {epoch + 1}/{t.epochs}", total=t.steps_per_epoch, metrics=""
        )
        self._last = 0.0

    def on_train_batch_end(self, batch: int, logs) -> None:
        now = time.perf_counter()
        if now - self._last >= self.refresh or batch + 1 == self.trainer.steps_per_epoch:
            self._last = now
            self._progress.update(
                self._task, completed=batch + 1, metrics=f"loss {logs.loss:.4f} acc {logs.accuracy:.4f}"
            )

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        text = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k not in ("lr", "seconds"))
        self._progress.update(self._task, completed=self.trainer.steps_per_epoch, metrics=text)

    def on_train_end(self, logs=None) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
