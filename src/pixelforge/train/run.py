"""A training run as the ``train`` command does it: pick the splits, train with the standard callbacks
into a run folder, keep the best model, score it on the test split, write metrics.json."""

from __future__ import annotations

from pathlib import Path

from pixelforge.data.manifest import Manifest
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.split import train_validation_test
from pixelforge.errors import PixelforgeError
from pixelforge.train.files import write_json


def standard_callbacks(run_dir, monitor: str, early_stopping: int | None, progress: bool, console=None) -> list:
    from pixelforge.train.callbacks import (
        CSVLogger,
        EarlyStopping,
        ModelCheckpoint,
        ProgressBar,
        ResumeCheckpoint,
        TrainingMonitor,
    )

    run_dir = Path(run_dir)
    callbacks = [
        ModelCheckpoint(run_dir, monitor=monitor),
        ResumeCheckpoint(run_dir),
        CSVLogger(run_dir / "log.csv"),
        TrainingMonitor(run_dir),
    ]
    if early_stopping is not None:
        callbacks.append(EarlyStopping(monitor=monitor, patience=early_stopping))
    if progress:
        callbacks.append(ProgressBar(console))
    return callbacks


def train_run(manifest: Manifest, run_dir, *, model: str, preprocess: Preprocess, epochs: int = 10,
              batch_size: int = 32, monitor: str = "val_loss", early_stopping: int | None = None,
              resume: bool = False, progress: bool = True, console=None, group_column: str | None = None,
              **trainer_options) -> dict:
    """Train into ``run_dir`` and return the summary (also written to ``run_dir/metrics.json``).
    ``group_column``: a metadata column whose groups the validation hold-out keeps on one side.
    Under torchrun every rank calls this; the ranks other than 0 return None."""
    from pixelforge.train.saved import load_model
    from pixelforge.train.trainer import Trainer

    run_dir = Path(run_dir)
    seed = trainer_options.get("seed", 0)
    train, validation, test, how = train_validation_test(manifest, seed, group_column=group_column)
    if resume:
        _check_resumable(run_dir, model, trainer_options.get("pretrained"))
    elif (run_dir / "checkpoint" / "last.json").exists():
        raise PixelforgeError(f"{run_dir} already holds a run; add --resume to continue it, or choose another --out")
    trainer = Trainer(model, preprocess, console=console, **trainer_options)
    trainer.log(f"training {model} on {len(train):,} images, validating on {len(validation):,} ({how})")
    callbacks = standard_callbacks(run_dir, monitor, early_stopping, progress, console)
    history = trainer.fit(train, validation=validation, epochs=epochs, batch_size=batch_size,
                          callbacks=callbacks, resume_from=run_dir if resume else None)
    if not trainer.ranks.chief:
        return None  # data-parallel: rank 0 alone scores the model and writes the run folder
    best = load_model(run_dir)  # the checkpoint-best model is the run's model
    trainer.network.load_state_dict(best.network.state_dict())
    metrics = {k: v[-1] for k, v in history.history.items()}
    metrics.update(best.config.get("metrics", {}))
    if test is not None:
        scores = trainer.evaluate(test)
        metrics.update(test_loss=scores["loss"], test_accuracy=scores["accuracy"], test_images=len(test))
    trainer.save(run_dir, metrics=metrics)
    summary = {"run": str(run_dir), "model": model, "splits": how, "train_images": len(train),
               "validation_images": len(validation), "epochs_run": len(history.epoch), "metrics": metrics,
               # what was read (label options and curation applied), so a run says what it learned from
               "data": {"images": len(manifest), "class_counts": manifest.class_counts(), "notes": list(manifest.notes)},
               "files": {name: str(run_dir / name) for name in
                         ("model.json", "model.safetensors", "metrics.json", "history.json", "curves.png", "log.csv")}}
    write_json(run_dir / "metrics.json", summary)
    return summary


def _check_resumable(run_dir: Path, model: str, pretrained: str | None = None) -> None:
    from pixelforge.train.checkpoint import load_training_state

    _, meta = load_training_state(run_dir)
    run = meta.get("run") or {}
    saved = run.get("model")
    if saved and saved != model:
        raise PixelforgeError(f"{run_dir} was trained with --model {saved}; resume it with the same model, not {model}")
    # the transfer settings shape the optimizer (a parameter group per layer group) and the preprocessing
    started_from = (run.get("transfer") or {}).get("pretrained")
    if "transfer" in run and started_from != pretrained:
        said = f"--pretrained {started_from}" if started_from else "no --pretrained"
        raise PixelforgeError(f"{run_dir} was started with {said}; resume it with the same options as it started")


def lr_find_run(manifest: Manifest, run_dir, *, model: str, preprocess: Preprocess, batch_size: int = 32,
                group_column: str | None = None, **trainer_options) -> dict:
    """The LR range test on the training split; writes ``run_dir/lr_find.png`` and ``lr_find.json``."""
    from pixelforge.train.lr_find import lr_find
    from pixelforge.train.trainer import Trainer

    run_dir = Path(run_dir)
    train, _, _, _ = train_validation_test(manifest, trainer_options.get("seed", 0), group_column=group_column)
    trainer = Trainer(model, preprocess, **trainer_options)
    result = lr_find(trainer, train, batch_size=batch_size, plot=run_dir / "lr_find.png")
    result["plot"] = str(run_dir / "lr_find.png")
    write_json(run_dir / "lr_find.json", result)
    return result
