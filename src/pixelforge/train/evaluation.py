"""Evaluate a saved model on a labelled source: accuracy, per-class precision/recall/F1, the confusion
matrix (PNG + text), and a montage of the most confidently wrong images; everything also as JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pixelforge.data.manifest import Manifest, Skip
from pixelforge.errors import PixelforgeError
from pixelforge.train.data import class_indices
from pixelforge.train.files import write_json, write_text


def classification_metrics(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, log loss, per-class precision/recall/F1/support, macro averages, confusion matrix.

    Every class of ``classes`` keeps its row and column, also when absent from the data (0 support,
    metrics 0); the macro averages are over the classes present in ``labels``."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    k = len(classes)
    predicted = probs.argmax(1)
    if len(labels):
        every = np.arange(k)
        matrix = confusion_matrix(labels, predicted, labels=every)
        precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=every,
                                                                         zero_division=0)
    else:
        matrix, support = np.zeros((k, k), np.int64), np.zeros(k, np.int64)
        precision = recall = f1 = np.zeros(k)
    present = support > 0
    loss = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)).mean()) if len(labels) else 0.0
    return {
        "images": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)) if len(labels) else 0.0,
        "loss": loss,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "classes": list(classes),
        "confusion_matrix": matrix.tolist(),
    }


def confusion_text(matrix, classes: list[str]) -> str:
    matrix = np.asarray(matrix)
    width = max(6, *(len(c) for c in classes), len(str(matrix.max())) + 1)
    head = "true \\ predicted".ljust(width) + " " + " ".join(c[:width].rjust(width) for c in classes)
    rows = [c[:width].ljust(width) + " " + " ".join(str(v).rjust(width) for v in row) for c, row in zip(classes, matrix, strict=True)]
    return "\n".join([head, *rows]) + "\n"


def predict_manifest(model, manifest: Manifest, batch_size: int = 512, skipped: list | None = None):
    """(probabilities, true class indices in the model's order, manifest rows) for a whole Manifest."""
    from pixelforge.data.loader import iterate_decoded
    from pixelforge.train.normalize import to_tensor

    truth = class_indices(manifest, model.classes)
    probs, rows = [], []
    model.network.eval()
    with torch.inference_mode():
        for images, _labels, kept in iterate_decoded(manifest, model.preprocess, batch_size, skipped=skipped):
            logits = model.network(model.transform(to_tensor(images)))
            probs.append(torch.softmax(logits.float(), 1).numpy())
            rows.append(kept)
    if not probs:
        raise PixelforgeError(f"{manifest.source or 'data'}: no image could be decoded")
    rows = np.concatenate(rows)
    return np.concatenate(probs), truth[rows], rows


def confidently_wrong(probs: np.ndarray, labels: np.ndarray, limit: int) -> np.ndarray:
    """Positions of misclassified images, most confident mistake first."""
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probs[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]


def evaluate_model(model, manifest: Manifest, out_dir, montage: int = 24) -> dict:
    """Evaluate ``model`` (a SavedModel) on ``manifest`` and write the report files into ``out_dir``."""
    from pixelforge.train.plots import plot_confusion, plot_montage

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped: list[Skip] = []
    probs, labels, rows = predict_manifest(model, manifest, skipped=skipped)
    report = classification_metrics(labels, probs, model.classes)
    report["source"] = manifest.source
    report["notes"] = channel_notes(model, manifest)
    report["skipped"] = [{"item": s.item, "reason": s.reason} for s in skipped]
    wrong = confidently_wrong(probs, labels, montage)
    predicted = probs.argmax(1)
    report["most_confident_mistakes"] = [
        {"image": manifest.describe(int(rows[i])), "true": model.classes[labels[i]],
         "predicted": model.classes[predicted[i]], "probability": float(probs[i, predicted[i]])}
        for i in wrong
    ]
    files = {
        "metrics": out_dir / "metrics.json",
        "confusion_png": out_dir / "confusion.png",
        "confusion_txt": out_dir / "confusion.txt",
        "mistakes_png": out_dir / "mistakes.png",
    }
    report["files"] = {k: str(v) for k, v in files.items()}
    matrix = np.asarray(report["confusion_matrix"])
    write_text(files["confusion_txt"], confusion_text(matrix, model.classes))
    plot_confusion(matrix, model.classes, files["confusion_png"])
    images = [model.preprocess.load(manifest, int(rows[i])) for i in wrong]
    captions = [f"true {m['true']}\npred {m['predicted']} {m['probability']:.0%}" for m in report["most_confident_mistakes"]]
    plot_montage(images, captions, files["mistakes_png"], title="most confidently wrong")
    write_json(files["metrics"], report)
    return report


def report_dir(run) -> Path:
    """The default evaluation folder of a run (``RUN/evaluation``), also when given its model.json."""
    run = Path(run)
    return (run if run.is_dir() else run.parent) / "evaluation"


def channel_notes(model, manifest: Manifest) -> list[str]:
    """Say when the data's images are converted to the model's channel count (first image checked)."""
    try:
        first = manifest.load(0)
    except PixelforgeError:
        return []
    have = 1 if first.ndim == 2 else first.shape[2]
    want = model.preprocess.channels
    if have >= 3 and want == 1:
        return [f"colour images converted to grayscale for this 1-channel model (e.g. {manifest.describe(0)})"]
    if have == 1 and want == 3:
        return [f"grayscale images repeated to 3 channels for this colour model (e.g. {manifest.describe(0)})"]
    return []
