"""Label errors by confident learning: out-of-fold predicted probabilities from k-fold cross-validation
of a quick model (the zoo's dnn on gradient-histogram + coarse thumbnail features, trained by the
Trainer), then cleanlab lists the likely mislabelled images with a suggested label and estimates the
label-error rate, set against the 4% bar."""

from __future__ import annotations

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.features import model_features
from pixelforge.audit.findings import Finding

ERROR_RATE_BAR = 0.04  # the material's bar: more than ~4% wrong labels hurts noticeably
WEAK_MODEL = 0.85  # below this out-of-fold accuracy the estimate mixes label errors with model errors


def fold_trainer(seed: int, threads: int):
    """The quick label model: the zoo's dnn (one hidden layer of 256, dropout 0.2) on the feature
    vectors, each feature standardized on the fold's training part, AdamW with a one-cycle schedule."""
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.train.trainer import Trainer

    # features enter as (N, D, 1, 1) "images": standardize="pixel" is one mean/std per feature
    spec = Preprocess(normalize="none", standardize="pixel", epsilon=1e-6)
    return Trainer("dnn", spec, model_params={"nodes": [256], "dropout": 0.2}, optimizer="adamw", lr=2e-3,
                   weight_decay=1e-3, schedule="onecycle", seed=seed, verbose=False, threads=threads,
                   adaptive_threads=False)


def out_of_fold_probs(ctx: AuditContext, x: np.ndarray, y: np.ndarray, k: int, folds: int) -> np.ndarray:
    """Out-of-fold class probabilities of the quick label model, trained by the Trainer on each fold."""
    import torch

    from pixelforge.data.split import StratifiedKFold

    # small models run faster on one thread (2 threads spin and stall on a busy machine)
    threads = torch.get_num_threads()
    fold_threads = 1 if len(x) < 20_000 else max(1, min(2, threads))
    features = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), x.shape[1], 1, 1)
    probs = np.zeros((len(x), k), np.float32)
    # about 150,000 training examples seen per fold: many epochs on small data, few on large
    epochs = int(np.clip(150_000 / max(1, len(x) * (folds - 1) / folds), 5, 60))
    epochs = ctx.option("label_epochs", epochs)
    batch = 128 if len(x) < 20_000 else 256
    task = ctx.task(f"label model ({folds}-fold)", folds)
    try:
        for f, (train, val) in enumerate(StratifiedKFold(folds, seed=ctx.seed).split_indices(y)):
            trainer = fold_trainer(ctx.seed + f, fold_threads)
            # balanced class weights: a rare class is learnt instead of being flagged wholesale as mislabelled
            counts = np.bincount(y[train], minlength=k).astype(np.float64)
            weights = np.minimum(counts.sum() / (k * np.maximum(counts, 1)), 10.0)
            trainer.fit((features[train], y[train]), epochs=epochs, batch_size=batch,
                        class_weight=dict(enumerate(weights)))
            probs[val] = trainer.predict(features[val])
            ctx.advance(task)
    finally:
        torch.set_num_threads(threads)
    return probs


def check_labels(ctx: AuditContext) -> list[Finding]:
    from cleanlab.count import estimate_joint
    from cleanlab.filter import find_label_issues

    rows = np.flatnonzero(ctx.scan.ok)
    present, y = np.unique(ctx.labels[rows], return_inverse=True)
    counts = np.bincount(y)
    folds = int(min(5, counts.min())) if len(counts) else 0
    if len(present) < 2 or folds < 2:
        return [Finding("labels", "not_checked", "info", "Label errors not checked",
                        "needs at least two classes with two or more images each",
                        "Add images so every class has a few.")]
    x = model_features(ctx.scan.thumbs[rows])
    probs = out_of_fold_probs(ctx, x, y.astype(np.int64), len(present), folds)
    accuracy = float((probs.argmax(1) == y).mean())
    issues = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
    joint = estimate_joint(y, probs)
    rate = float(1 - np.trace(joint))
    names = [ctx.classes[c] for c in present]
    ctx.extras["labels"] = {"oof_accuracy": accuracy, "estimated_error_rate": rate, "issues": len(issues),
                            "folds": folds}
    caveat = ""
    if accuracy < WEAK_MODEL:
        caveat = ("; the quick model is weak on this data, so part of the estimate is its own mistakes "
                  "(an upper bound: cross-validate a stronger model, e.g. `pixelforge cv`, for a tighter one)")
    out = [Finding(
        "labels", "error_rate", "warning" if rate > ERROR_RATE_BAR else "info",
        f"Estimated label-error rate {rate:.1%} ({'above' if rate > ERROR_RATE_BAR else 'within'} the 4% bar)",
        f"confident learning on out-of-fold probabilities of a quick model ({folds}-fold, out-of-fold accuracy "
        f"{accuracy:.1%}); {len(issues):,} image(s) flagged{caveat}",
        "Review the flagged images and fix their labels; above ~4% wrong labels noticeably hurt accuracy."
        if rate > ERROR_RATE_BAR else "Label quality looks acceptable; still review the flagged images.",
        values={"estimated_error_rate": round(rate, 5), "flagged": len(issues), "oof_accuracy": round(accuracy, 4),
                "upper_bound": accuracy < WEAK_MODEL,
                "folds": folds, "bar": ERROR_RATE_BAR},
    )]
    if len(issues):
        flagged = rows[issues]
        suggested = probs[issues].argmax(1)
        out.append(Finding(
            "labels", "likely_mislabelled", "warning", f"{len(issues):,} likely mislabelled image(s)",
            "ranked by the model's confidence in the given label (lowest first)",
            "Check each image and relabel it (the suggested label is the model's best guess) or remove it.",
            images=flagged.tolist(),
            notes={int(r): f"{ctx.classes[ctx.labels[r]]} → {names[s]} ({probs[i, s]:.0%})"
                   for r, i, s in zip(flagged, issues, suggested, strict=True)},
            values={"suggested": {ctx.manifest.describe(int(r)): names[s] for r, s in zip(flagged, suggested, strict=True)}},
        ))
    return out
