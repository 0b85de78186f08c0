"""Stratified k-fold cross-validation: decode once, train one model per fold, report mean ± std.

Each fold's model starts from the same seed; feature-wise statistics (``--standardize``) are fitted on
that fold's training part only. Writes per-fold learning curves, all folds' curves in one figure,
a box plot of the fold accuracies, and ``cv.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.data.manifest import Manifest
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.split import StratifiedKFold, group_ids
from pixelforge.errors import ParameterError
from pixelforge.train.data import prepare
from pixelforge.train.files import write_json


def cross_validate(data, preprocess: Preprocess | None = None, *, folds: int = 5, seed: int = 1,
                   epochs: int = 10, batch_size: int = 32, out_dir=None, callbacks_for=None, groups=None,
                   group_column: str | None = None, **trainer_options) -> dict:
    """Run the folds; ``callbacks_for(fold)`` may give per-fold callbacks (e.g. a progress bar).
    ``groups`` (one id per image of ``data``), or ``group_column`` (a metadata column of a Manifest
    ``data``), keeps every group inside one fold."""
    from pixelforge.train.plots import plot_box, plot_curves
    from pixelforge.train.trainer import Trainer

    if group_column is not None:
        if groups is not None or not isinstance(data, Manifest):
            raise ParameterError("group_column needs a Manifest as data, and no groups= besides")
        groups = group_ids(data, group_column)
    arrays, spec = prepare(data, preprocess or Preprocess())
    out = Path(out_dir) if out_dir is not None else None
    results, histories = [], []
    splitter = StratifiedKFold(folds, shuffle=True, seed=seed)
    if groups is not None and arrays.rows is not None:  # rows that decoded, in the data's order
        groups = np.asarray(groups)[arrays.rows]
    for fold, (train_idx, val_idx) in enumerate(splitter.split_indices(arrays.y, groups)):
        fold_spec = Preprocess.from_dict({**spec.to_dict(), "mean": None, "std": None})
        trainer = Trainer(preprocess=fold_spec, seed=seed, **trainer_options)
        callbacks = list(callbacks_for(fold) if callbacks_for else [])
        history = trainer.fit(arrays.subset(train_idx), validation=arrays.subset(val_idx), epochs=epochs,
                              batch_size=batch_size, callbacks=callbacks)
        scores = trainer.evaluate(arrays.subset(val_idx))
        results.append({"fold": fold + 1, "train_images": len(train_idx), "validation_images": len(val_idx),
                        "accuracy": scores["accuracy"], "loss": scores["loss"],
                        "seconds": float(sum(history.history.get("seconds", [])))})
        histories.append(history.history)
        trainer.log(f"fold {fold + 1}/{folds}: accuracy {scores['accuracy']:.2%}")
        if out is not None:
            plot_curves([history.history], out / f"fold{fold + 1}" / "curves.png", f"fold {fold + 1} learning curves")
            write_json(out / f"fold{fold + 1}" / "history.json", history.history)
    accuracies = np.array([r["accuracy"] for r in results])
    report = {
        "folds": folds, "seed": seed, "epochs": epochs, "batch_size": batch_size,
        "images": len(arrays), "classes": arrays.classes,
        "model": trainer.model_name, "optimizer": trainer.resolved_optimizer,
        "preprocess": spec.to_dict(), "augment": trainer.augment_dict(),
        "accuracy_mean": float(accuracies.mean()), "accuracy_std": float(accuracies.std()),
        "summary": f"accuracy: {accuracies.mean():.2%} ± {accuracies.std():.2%} ({folds} folds)",
        "per_fold": results, "histories": histories,
    }
    if out is not None:
        files = {"curves": out / "curves.png", "boxplot": out / "boxplot.png", "report": out / "cv.json"}
        plot_curves(histories, files["curves"], f"{folds}-fold learning curves",
                    labels=[f"fold {i + 1}" for i in range(folds)])
        plot_box(list(accuracies), files["boxplot"], report["summary"])
        report["files"] = {k: str(v) for k, v in files.items()}
        write_json(files["report"], report)
    return report
