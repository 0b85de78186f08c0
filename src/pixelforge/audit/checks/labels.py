"""Label errors by confident learning: out-of-fold predicted probabilities from k-fold cross-validation
of a quick model (a small MLP on gradient-histogram + coarse thumbnail features), then cleanlab lists the likely mislabelled
images with a suggested label and estimates the label-error rate, set against the 4% bar."""

from __future__ import annotations

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.features import model_features
from pixelforge.audit.findings import Finding

ERROR_RATE_BAR = 0.04  # the material's bar: more than ~4% wrong labels hurts noticeably
WEAK_MODEL = 0.85  # below this out-of-fold accuracy the estimate mixes label errors with model errors


def _train_mlp(x, y, k, seed, epochs, hidden=256):
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(hidden, k)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    batch = 128 if len(x) < 20_000 else 256
    steps = max(1, epochs * ((len(x) + batch - 1) // batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    # balanced class weights: a rare class is learnt instead of being flagged wholesale as mislabelled
    counts = torch.bincount(yt, minlength=k).float().clamp(min=1)
    weight = (counts.sum() / (k * counts)).clamp(max=10.0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), batch):
            idx = order[s : s + batch]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def out_of_fold_probs(ctx: AuditContext, x: np.ndarray, y: np.ndarray, k: int, folds: int) -> np.ndarray:
    import torch
    from sklearn.model_selection import StratifiedKFold

    # small models run faster on one thread (2 threads spin and stall on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if len(x) < 20_000 else max(1, min(2, threads)))
    probs = np.zeros((len(x), k), np.float32)
    # about 150,000 training examples seen per fold: many epochs on small data, few on large
    epochs = int(np.clip(150_000 / max(1, len(x) * (folds - 1) / folds), 5, 60))
    epochs = ctx.option("label_epochs", epochs)
    task = ctx.task(f"label model ({folds}-fold)", folds)
    for f, (train, val) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=ctx.seed).split(x, y)):
        mean, std = x[train].mean(0), x[train].std(0) + 1e-6
        model = _train_mlp((x[train] - mean) / std, y[train], k, ctx.seed + f, epochs)
        with torch.no_grad():
            logits = model(torch.from_numpy((x[val] - mean) / std))
            probs[val] = torch.softmax(logits, 1).numpy()
        ctx.advance(task)
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
