"""Label errors from out-of-fold predictions of a model that fits the data, trained by the Trainer:

- small images (up to 32 px, their own pixels in the scan): the zoo's fmnist_baseline CNN, k-fold, a few
  epochs (few on purpose: a model trained long memorizes the wrong labels it should contradict);
- larger images: the zoo's dnn on gradient-histogram and layout features of the thumbnails (weak on
  photos; a pre-trained backbone's features are the way to judge photos);
- with the audit option ``backbone`` (``-o backbone=RUN`` or ``-o backbone=resnet50 -o
  backbone_weights=SRC``): a logistic regression on that backbone's features, k-fold.

An image is flagged when the model, never trained on it, gives its label at most 4% and names another
class at 50% or more. When the model is too weak to tell wrong labels from its own mistakes (out-of-fold
accuracy under 80%), the finding says "inconclusive", with the command that would settle it, and lists
only images it contradicts overwhelmingly. cleanlab's confident joint is reported as an upper bound.
"""

from __future__ import annotations

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.features import model_features
from pixelforge.audit.findings import Finding

ERROR_RATE_BAR = 0.04  # the material's bar: more than ~4% wrong labels hurts noticeably
# The label check judges only with a model that fits the data: below this out-of-fold accuracy (or 60%
# of the way from the majority class to perfect) its confident mistakes outnumber wrong labels.
STRONG_MODEL = 0.80
GIVEN_AT_MOST, SUGGESTED_AT_LEAST = 0.04, 0.5  # a flag: the model gives the label <= 4%, another class >= 50%
OVERWHELMING_GIVEN, OVERWHELMING_SUGGESTED = 0.002, 0.98  # what a weak model may still list
MAX_LISTED = 5_000


CNN_MAX_SIDE = 32  # images this small are learnt from their own pixels by a zoo CNN
SMALL_DATASET = 20_000  # up to this many images both label models are tried and the better one kept


def _feature_trainer(seed: int, threads: int, batch: int):
    """For photos: the zoo's dnn (one hidden layer of 256, dropout 0.2) on gradient-histogram and coarse
    layout features, each standardized on the fold's training part, AdamW with a one-cycle schedule."""
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.train.trainer import Trainer

    # features enter as (N, D, 1, 1) "images": standardize="pixel" is one mean/std per feature
    spec = Preprocess(normalize="none", standardize="pixel", epsilon=1e-6)
    return Trainer("dnn", spec, model_params={"nodes": [256], "dropout": 0.2}, optimizer="adamw", lr=2e-3,
                   weight_decay=1e-3, schedule="onecycle", seed=seed, verbose=False, threads=threads,
                   adaptive_threads=False)


def _cnn_trainer(seed: int, threads: int, batch: int):
    """For small images (MNIST, Fashion-MNIST, CIFAR sizes): the zoo's fmnist_baseline CNN on the
    pixels themselves (its one-call C training step makes k-fold affordable), per-channel standardized."""
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.train.trainer import Trainer

    lr = 0.02 * batch / 128  # the learning rate that trained well at batch 128, scaled linearly
    return Trainer("fmnist_baseline", Preprocess(standardize="channel"), optimizer="sgd", lr=lr, momentum=0.9,
                   schedule="cosine", seed=seed, verbose=False, threads=threads, adaptive_threads=False)


def label_model_inputs(ctx: AuditContext, rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The label models worth trying, with their inputs: ("cnn", the uint8 images) when the thumbnails
    are the images' own small pixels; ("features", (N, D, 1, 1) float32 features) for anything, tried
    too on datasets small enough (up to 20,000 images) that training both costs little; with the
    ``backbone`` option, ("backbone", its features) alone, for a logistic regression."""
    scan = ctx.scan
    choice = ctx.option("label_model", "auto")
    if ctx.option("backbone", None):
        return [("backbone", ctx.backbone_features()[rows])]
    native = (scan.width[rows] == scan.thumb) & (scan.height[rows] == scan.thumb)
    out = []
    if scan.thumb <= CNN_MAX_SIDE and native.all() and choice in ("auto", "cnn"):
        out.append(("cnn", scan.thumbs[rows]))
    if choice == "features" or not out or (choice == "auto" and len(rows) <= SMALL_DATASET):
        x = model_features(scan.thumbs[rows])
        out.append(("features", np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), x.shape[1], 1, 1)))
    return out


def out_of_fold_probs(ctx: AuditContext, kind: str, x: np.ndarray, y: np.ndarray, k: int, folds: int) -> np.ndarray:
    """Out-of-fold class probabilities of the label model, trained by the Trainer on each fold."""
    import torch

    from pixelforge.data.split import StratifiedKFold

    if kind == "backbone":
        return _logistic_out_of_fold(ctx, x, y, k, folds)
    threads = torch.get_num_threads()
    # small feature models run faster on one thread (2 threads spin and stall on a busy machine)
    fold_threads = threads if kind == "cnn" else (1 if len(x) < 20_000 else max(1, min(2, threads)))
    probs = np.zeros((len(x), k), np.float32)
    train_size = len(x) * (folds - 1) / folds
    if kind == "cnn":
        # few passes: a CNN trained long memorizes the wrong labels it should contradict; small sets
        # get more epochs and smaller batches so the model still takes enough steps
        epochs = int(np.clip(40_000 / max(1, train_size), 4, 15))
        batch, build = (32 if train_size < 5_000 else 128), _cnn_trainer
    else:  # about 150,000 examples seen per fold: many epochs on small data, few on large
        epochs, batch, build = int(np.clip(150_000 / max(1, train_size), 5, 30)), 128 if len(x) < 20_000 else 256, \
            _feature_trainer
    epochs = ctx.option("label_epochs", epochs)
    task = ctx.task(f"label model ({kind}, {folds}-fold)", folds)
    try:
        for f, (train, val) in enumerate(StratifiedKFold(folds, seed=ctx.seed).split_indices(y)):
            trainer = build(ctx.seed + f, fold_threads, batch)
            # balanced class weights: a rare class is learnt instead of being flagged wholesale as mislabelled
            counts = np.bincount(y[train], minlength=k).astype(np.float64)
            weights = np.minimum(counts.sum() / (k * np.maximum(counts, 1)), 10.0)
            balanced = weights.max() / weights.min() > 1.5
            trainer.fit((x[train], y[train]), epochs=epochs, batch_size=batch,
                        class_weight=dict(enumerate(weights)) if balanced or kind != "cnn" else None)
            probs[val] = trainer.predict(x[val])
            ctx.advance(task)
    finally:
        torch.set_num_threads(threads)
    return probs


def _logistic_out_of_fold(ctx: AuditContext, x: np.ndarray, y: np.ndarray, k: int, folds: int) -> np.ndarray:
    """Out-of-fold probabilities of a logistic regression on backbone features (seconds, no epochs)."""
    from pixelforge.data.split import StratifiedKFold
    from pixelforge.train.features import fit_linear_head

    probs = np.zeros((len(x), k), np.float32)
    task = ctx.task(f"label model (logistic regression on backbone features, {folds}-fold)", folds)
    for train, val in StratifiedKFold(folds, seed=ctx.seed).split_indices(y):
        head = fit_linear_head(x[train], y[train], [str(c) for c in range(k)], C=ctx.option("backbone_C", 0.5),
                               seed=ctx.seed)
        logits = head.logits(x[val]).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs[val] = e / e.sum(axis=1, keepdims=True)
        ctx.advance(task)
    return probs


def check_labels(ctx: AuditContext) -> list[Finding]:
    from cleanlab.count import estimate_joint

    rows = np.flatnonzero(ctx.scan.ok)
    present, y = np.unique(ctx.labels[rows], return_inverse=True)
    counts = np.bincount(y)
    if len(present) < 2 or counts.min() < 2:
        return [Finding("labels", "not_checked", "info", "Label errors not checked",
                        "needs at least two classes with two or more images each",
                        "Add images so every class has a few.")]
    folds = int(min(5 if len(rows) <= 100_000 else 3, counts.min()))
    y = y.astype(np.int64)
    tried = {}
    for kind, x in label_model_inputs(ctx, rows):
        probs = out_of_fold_probs(ctx, kind, x, y, len(present), folds)
        tried[kind] = (float((probs.argmax(1) == y).mean()), probs)
    if len(tried) == 2:  # two different models agree more often when the label, not the model, is wrong
        probs = (tried["cnn"][1] + tried["features"][1]) / 2
        kind = "cnn+features"
        tried[kind] = (float((probs.argmax(1) == y).mean()), probs)
    kind = max(tried, key=lambda name: tried[name][0])
    accuracy, probs = tried[kind]
    chance = float(counts.max() / counts.sum())
    needed = max(STRONG_MODEL, chance + 0.6 * (1 - chance))
    given = probs[np.arange(len(y)), y]
    suggested = probs.argmax(1)
    top = probs.max(1)
    joint_rate = float(1 - np.trace(estimate_joint(y, probs)))
    model = {"cnn": "a CNN (fmnist_baseline) on the pixels", "features": "a dense net on image features",
             "backbone": f"a logistic regression on {ctx.option('backbone', '')} features",
             "cnn+features": "a CNN on the pixels and a dense net on image features, averaged"}[kind]
    names = [ctx.classes[c] for c in present]
    conclusive = accuracy >= needed
    if conclusive:  # the model contradicts the label with confidence
        flagged = np.flatnonzero((given <= GIVEN_AT_MOST) & (top >= SUGGESTED_AT_LEAST) & (suggested != y))
    else:  # a weak model: only overwhelming evidence
        flagged = np.flatnonzero((given <= OVERWHELMING_GIVEN) & (top >= OVERWHELMING_SUGGESTED))
    flagged = flagged[np.argsort(given[flagged], kind="stable")][: ctx.option("label_max_listed", MAX_LISTED)]
    rate = len(flagged) / len(y) if conclusive else None
    ctx.extras["labels"] = {"tried": {name: round(v[0], 4) for name, v in tried.items()}, "oof_accuracy": accuracy, "estimated_error_rate": rate, "issues": len(flagged),
                            "folds": folds, "model": kind, "conclusive": conclusive, "joint_rate": joint_rate}
    evidence = f"{model}, {folds}-fold out-of-fold accuracy {accuracy:.1%}"
    if conclusive:
        above = rate > ERROR_RATE_BAR
        out = [Finding(
            "labels", "error_rate", "warning" if above else "info",
            f"Estimated label-error rate {rate:.1%} ({'above' if above else 'within'} the 4% bar)",
            f"{evidence}; {len(flagged):,} image(s) whose label the model gives at most {GIVEN_AT_MOST:.0%} while "
            f"it names another class at {SUGGESTED_AT_LEAST:.0%} or more (cleanlab's confident joint, which also "
            f"counts the model's own confusions, puts the rate at most at {joint_rate:.1%})",
            "Review the flagged images and fix their labels; above ~4% wrong labels noticeably hurt accuracy."
            if above else "Label quality looks acceptable; still review the flagged images.",
            values={"estimated_error_rate": round(rate, 5), "flagged": len(flagged), "oof_accuracy": round(accuracy, 4),
                    "joint_rate": round(joint_rate, 5), "folds": folds, "bar": ERROR_RATE_BAR, "model": kind},
        )]
    else:
        out = [Finding(
            "labels", "inconclusive", "info", "Label errors: inconclusive",
            f"{evidence}, under the {needed:.0%} needed to tell wrong labels from the model's own mistakes "
            f"(the most common class alone is {chance:.0%}); listing only images the model contradicts "
            f"overwhelmingly ({len(flagged):,})",
            "Settle it with a stronger model: audit again with a pre-trained backbone's features (`-o backbone=RUN`, "
            "or `-o backbone=resnet50 -o backbone_weights=SRC`), or cross-validate one (e.g. `pixelforge cv DATA "
            "--model resnet --epochs 20`) and check the images it gets confidently wrong (`pixelforge evaluate`).",
            values={"oof_accuracy": round(accuracy, 4), "needed": round(needed, 4), "flagged": len(flagged),
                    "folds": folds, "model": kind},
        )]
    if len(flagged):
        flagged_rows = rows[flagged]
        out.append(Finding(
            "labels", "likely_mislabelled", "warning" if conclusive else "info",
            f"{len(flagged):,} likely mislabelled image(s)" if conclusive
            else f"{len(flagged):,} image(s) the model contradicts overwhelmingly",
            "ranked by the model's confidence in the given label (lowest first)",
            "Check each image and relabel it (the suggested label is the model's best guess) or remove it.",
            images=flagged_rows.tolist(),
            notes={int(r): f"{ctx.classes[ctx.labels[r]]} → {names[suggested[i]]} ({top[i]:.0%})"
                   for r, i in zip(flagged_rows, flagged, strict=True)},
            values={"suggested": {ctx.manifest.describe(int(r)): names[suggested[i]]
                                  for r, i in zip(flagged_rows, flagged, strict=True)}},
        ))
    return out
