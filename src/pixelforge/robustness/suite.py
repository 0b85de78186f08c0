"""The wild-test suite: a model's accuracy on its clean test data and on derived (corrupted) test sets.

The test images are decoded at the model's own input size and channels, then each corruption is applied
at each severity, batch by batch (memory holds one batch and the predicted labels only). Every random
choice comes from ``np.random.default_rng([seed, crc32(name), severity, batch])``, so a seed repeats the
whole suite exactly, whatever subset of corruptions is asked for.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence

import numpy as np

from pixelforge.data.manifest import Manifest
from pixelforge.data.split import held_out_part, stratified_holdout
from pixelforge.errors import PixelforgeError
from pixelforge.robustness.corruptions import CORRUPTIONS, corrupt, get_corruption

DEFAULT_LIMIT = 2000
DEFAULT_BATCH = 256


# ---- metrics ----------------------------------------------------------------------------------
def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions (NaN for no images)."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan")


def macro_precision(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes seen in either array of TP / predicted (0 for a class never predicted):
    scikit-learn's ``precision_score(average="macro", zero_division=0)`` (NaN for no images)."""
    from sklearn.metrics import precision_score

    if not len(y_true):
        return float("nan")
    return float(precision_score(y_true, y_pred, average="macro", zero_division=0))


def _scores(y_true, y_pred) -> dict:
    return {"accuracy": accuracy(y_true, y_pred), "macro_precision": macro_precision(y_true, y_pred)}


# ---- reading test data at the model's input -----------------------------------------------------
def input_spec(saved_model):
    """A Preprocess that decodes to the model's input size and channels, as uint8 (no normalization).

    Canonical steps run here, on the full-resolution image (``predict_arrays`` runs them again on
    the model-size image: they are close to idempotent, and corruptions meet them as wild images do)."""
    from pixelforge.data.preprocess import Preprocess

    spec = saved_model.preprocess
    return Preprocess(size=spec.size, resize=spec.resize, interpolation=spec.interpolation,
                      channels=spec.channels, background=spec.background, canonical=spec.canonical,
                      polarity=spec.polarity)


def _class_map(data_classes: Sequence[str], model_classes: Sequence[str], where: str) -> np.ndarray:
    unknown = [c for c in data_classes if c not in model_classes]
    if unknown:
        raise PixelforgeError(
            f"{where}: classes {unknown} are not among the model's classes {list(model_classes)}"
        )
    return np.array([list(model_classes).index(c) for c in data_classes], dtype=np.int64)


def _sample(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Row indices: all, or a seeded stratified sample of ``limit`` rows (kept in order)."""
    n = len(labels)
    if not limit or limit >= n:
        return np.arange(n)
    _, picked = stratified_holdout(labels, limit / n, seed)
    return np.sort(np.asarray(picked, dtype=np.int64))


def iterate_test_batches(saved_model, data, labels=None, *, limit=DEFAULT_LIMIT, seed=0,
                         batch_size=DEFAULT_BATCH, skipped=None, info=None):
    """Yield ``(uint8 NHWC batch, model class indices)`` from a Manifest or from arrays."""
    info = {} if info is None else info
    if isinstance(data, Manifest):
        part, split = held_out_part(data)
        mapping = _class_map(part.classes, saved_model.classes, data.source or "test data")
        rows = _sample(part.label_indices(), limit, seed)
        info.update(split=split, available=len(part), used=len(rows))
        from pixelforge.data.loader import iterate_decoded

        for x, y, _ in iterate_decoded(part, input_spec(saved_model), batch_size, indices=rows,
                                       skipped=skipped):
            yield _as_uint8(x), mapping[y.astype(np.int64)]
        return
    x = _as_uint8(np.asarray(data))
    if labels is None:
        raise PixelforgeError("run_wild_suite: give labels with an image array")
    y = np.asarray(labels)
    if y.dtype.kind == "O":
        y = np.array(y.tolist())  # numpy settles on ints or strings
    if y.dtype.kind in "US":  # class names → the model's class indices
        names = sorted(set(y.tolist()))
        y = _class_map(names, saved_model.classes, "labels")[np.searchsorted(names, y)]
    y = y.astype(np.int64)
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) != len(y):
        raise PixelforgeError(
            f"run_wild_suite: expected uint8 N x H x W (x C) images and N labels, got {x.dtype} {x.shape} "
            f"and {len(y)} labels"
        )
    if x.ndim == 3:
        x = x[..., None]
    rows = _sample(y, limit, seed)
    info.update(split="arrays", available=len(x), used=len(rows))
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        yield x[chunk], y[chunk]


def _as_uint8(x: np.ndarray) -> np.ndarray:
    """16-bit images → 8-bit (the corruptions work on 0-255; models normalize either to [0, 1])."""
    return (x // 257).astype(np.uint8) if x.dtype == np.uint16 else x


def _predict(saved_model, batch: np.ndarray, batch_size: int) -> np.ndarray:
    return np.asarray(saved_model.predict_arrays(batch, batch_size=batch_size)).argmax(axis=1)


# ---- the suite --------------------------------------------------------------------------------
def run_wild_suite(
    saved_model,
    data,
    labels=None,
    *,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    seed: int = 0,
    limit: int | None = DEFAULT_LIMIT,
    batch_size: int = DEFAULT_BATCH,
    wild_dir=None,
    threshold: float = 0.05,
    progress=None,
) -> dict:
    """Evaluate ``saved_model`` on clean and corrupted test data; returns a JSON-able report.

    saved_model: has ``classes``, ``preprocess`` and ``predict_arrays(uint8 NHWC) -> probs``
        (``pixelforge.train.load_model`` returns one).
    data: a Manifest (its test split when it has one) or a uint8 NHWC/NHW array with ``labels``
        (class indices of the model, or class names).
    corruptions: names from the registry (default: all that apply to the data).
    severities: which severities to run (default: every level of each corruption); those above a
        corruption's last level are left out for it.
    limit: evaluate a seeded stratified sample of this many test images (None or 0 = all).
    wild_dir: a folder of the user's own images (class sub-folders) evaluated alongside.
    threshold: accuracy drop that earns a recommendation (see ``recommend``).
    progress: optional callable(done, total) for a progress bar.
    """
    names = list(corruptions) if corruptions else list(CORRUPTIONS)
    chosen = [get_corruption(n) for n in names]
    started = time.perf_counter()
    skipped, info = [], {}
    truth, clean_pred = [], []
    preds: dict[tuple[str, int], list[np.ndarray]] = {}
    not_applicable: dict[str, str] = {}
    plan: list[tuple] | None = None
    batches = iterate_test_batches(saved_model, data, labels, limit=limit, seed=seed,
                                   batch_size=batch_size, skipped=skipped, info=info)
    for b, (x, y) in enumerate(batches):
        if plan is None:  # decide once, on the first batch, which corruptions make sense
            plan = []
            for c in chosen:
                reason = c.applies_to(x)
                if reason:
                    not_applicable[c.name] = reason
                    continue
                for s in severities or c.severities:
                    if 1 <= s <= len(c.levels):
                        plan.append((c, int(s)))
        truth.append(y)
        clean_pred.append(_predict(saved_model, x, batch_size))
        for c, s in plan:
            rng = np.random.default_rng([seed, zlib.crc32(c.name.encode()), s, b])
            preds.setdefault((c.name, s), []).append(_predict(saved_model, corrupt(c.name, x, s, rng), batch_size))
        if progress is not None:
            progress(sum(len(t) for t in truth), info.get("used", 0))
    if not truth:
        raise PixelforgeError("no test images could be read" + (f": {skipped[0].reason}" if skipped else ""))
    y_true = np.concatenate(truth)
    clean = _scores(y_true, np.concatenate(clean_pred))
    results: dict[str, dict] = {}
    for c, s in plan:
        entry = results.setdefault(c.name, {
            "family": c.family, "unit": c.unit, "description": c.description, "severities": {},
        })
        scores = _scores(y_true, np.concatenate(preds[(c.name, s)]))
        scores["level"] = c.levels[s - 1]
        scores["drop"] = clean["accuracy"] - scores["accuracy"]
        entry["severities"][str(s)] = scores
    for entry in results.values():
        accs = [v["accuracy"] for v in entry["severities"].values()]
        entry["mean_accuracy"] = float(np.mean(accs))
        entry["worst_accuracy"] = float(np.min(accs))
        entry["max_drop"] = clean["accuracy"] - entry["worst_accuracy"]
    report = {
        "images": int(len(y_true)),
        "images_available": info.get("available"),
        "split": info.get("split"),
        "seed": seed,
        "classes": list(saved_model.classes),
        "clean": clean,
        "corruptions": results,
        "mean_corrupted_accuracy": float(np.mean([e["mean_accuracy"] for e in results.values()]))
        if results else None,
        "not_applicable": not_applicable,
        "skipped": [{"item": s.item, "reason": s.reason} for s in skipped],
        "threshold": threshold,
    }
    if wild_dir is not None:
        report["wild"] = evaluate_wild_dir(saved_model, wild_dir, batch_size=batch_size)
    from pixelforge.robustness.recommend import recommend

    report["recommendations"] = recommend(report, threshold=threshold)
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


# ---- the user's own "in the wild" images --------------------------------------------------------
def evaluate_wild_dir(saved_model, wild_dir, batch_size: int = DEFAULT_BATCH) -> dict:
    """Accuracy on a folder of the user's own images (one sub-folder per class), with each
    misclassified image listed (path, true class, predicted class, confidence)."""
    from pixelforge.data.loader import iterate_decoded
    from pixelforge.data.read import read_dataset

    manifest = read_dataset(str(wild_dir))
    if len(manifest) == 0:
        raise PixelforgeError(f"{wild_dir}: no images found (expected one sub-folder per class)")
    mapping = _class_map(manifest.classes, saved_model.classes, str(wild_dir))
    skipped, truth, predicted, confidence, rows = [], [], [], [], []
    for x, y, idx in iterate_decoded(manifest, input_spec(saved_model), batch_size, skipped=skipped):
        probs = np.asarray(saved_model.predict_arrays(x, batch_size=batch_size))
        truth.append(mapping[y.astype(np.int64)])
        predicted.append(probs.argmax(axis=1))
        confidence.append(probs.max(axis=1))
        rows.append(idx)
    if not truth:
        raise PixelforgeError(f"{wild_dir}: none of the images could be read ({skipped[0].reason})")
    y_true, y_pred = np.concatenate(truth), np.concatenate(predicted)
    conf, rows = np.concatenate(confidence), np.concatenate(rows)
    classes = list(saved_model.classes)
    wrong = [
        {"item": manifest.describe(int(r)), "row": int(r), "true": classes[t], "predicted": classes[p],
         "confidence": float(c)}
        for r, t, p, c in zip(rows, y_true, y_pred, conf, strict=True) if t != p
    ]
    return {
        "source": str(wild_dir),
        "images": int(len(y_true)),
        **_scores(y_true, y_pred),
        "misclassified": wrong,
        "skipped": [{"item": s.item, "reason": s.reason} for s in skipped + list(manifest.skipped)],
    }
