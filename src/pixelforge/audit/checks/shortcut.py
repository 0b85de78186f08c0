"""Background shortcut (the wolf-on-snow problem): can a model name the class from the background alone?

The border ring is split into background (pixels matching its dominant colour) and object (pixels of
an object that reaches the edge, e.g. trousers in Fashion-MNIST). A small logistic regression on the
background pixels' colour and texture only is cross-validated; accuracy far above chance means the
background predicts the label — a class shot on its own background — while objects that merely reach
the edge are not reported. Per-class border uniformity too."""

from __future__ import annotations

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.features import background_features, border_features
from pixelforge.audit.findings import Finding

NARROW = 1 / 3
MAX_ROWS = 20_000  # a seeded sample is plenty to tell whether borders predict labels


def _cv_border_model(ctx: AuditContext, feats: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = np.bincount(labels).min() if len(labels) else 0
    folds = int(min(5, smallest))
    if folds < 2:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=1.0))
    cv = StratifiedKFold(folds, shuffle=True, random_state=ctx.seed)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small problem: one thread beats two contending ones
        return cross_val_predict(model, feats, labels, cv=cv)


def check_shortcut(ctx: AuditContext) -> list[Finding]:
    scan = ctx.scan
    rows = np.flatnonzero(scan.ok)
    out: list[Finding] = []
    present = np.unique(ctx.labels[rows])
    if len(present) < 2 or len(rows) < 10:
        return out
    _, colour, std = border_features(scan.thumbs[rows])
    feats = background_features(scan.thumbs[rows])
    if len(rows) > ctx.option("shortcut_max_rows", MAX_ROWS):
        pick = np.sort(np.random.default_rng(ctx.seed).choice(len(rows), MAX_ROWS, replace=False))
    else:
        pick = np.arange(len(rows))
    task = ctx.task("background-only model (5-fold)", 1)
    remap = {c: k for k, c in enumerate(present)}
    y = np.array([remap[c] for c in ctx.labels[rows[pick]]])
    # drop classes too small to cross-validate
    counts = np.bincount(y)
    keep = counts[y] >= 2
    pred = _cv_border_model(ctx, feats[pick][keep], y[keep])
    ctx.advance(task)
    if pred is not None:
        from sklearn.metrics import precision_recall_fscore_support

        yk = y[keep]
        kept = np.unique(yk)
        chance = 1.0 / len(kept)
        precisions, recalls, _, _ = precision_recall_fscore_support(yk, pred, labels=kept, zero_division=0)
        recall = {ctx.classes[present[c]]: float(r) for c, r in zip(kept, recalls, strict=True)}
        precision = {ctx.classes[present[c]]: float(p) for c, p in zip(kept, precisions, strict=True)}
        balanced = float(np.mean(list(recall.values())))
        strong = sorted(c for c in recall if recall[c] >= chance + 0.6 * (1 - chance) and precision[c] >= 0.8)
        ctx.extras["shortcut"] = {"balanced_accuracy": balanced, "chance": chance, "recall": recall}
        if strong or balanced >= chance + 0.4 * (1 - chance):
            out.append(Finding(
                "shortcut", "border_predicts_label", "warning",
                "The background alone predicts the label",
                f"a model that sees only background pixels of the border (colour and texture; object pixels "
                f"reaching the edge left out; {len(yk):,} images, cross-validated) reaches {balanced:.0%} "
                f"balanced accuracy against {chance:.0%} chance"
                + (f"; classes recognised from the border: {', '.join(strong)}" if strong else ""),
                "Vary the backgrounds within each class (or composite objects onto shared backgrounds) so the model "
                "must look at the object, not where it was photographed.",
                classes=strong, values={"balanced_accuracy": round(balanced, 4), "chance": round(chance, 4),
                                         "recall_per_class": {c: round(v, 4) for c, v in recall.items()}},
                images=[int(r) for r in rows[np.flatnonzero(np.isin(ctx.labels[rows],
                                              [ctx.classes.index(c) for c in strong]))][:24]],
            ))
    out += _uniform_borders(ctx, rows, colour, std)
    return out


def _uniform_borders(ctx, rows, colour, std) -> list[Finding]:
    per_class_std, per_class_spread = {}, {}
    for k, name in enumerate(ctx.classes):
        members = ctx.labels[rows] == k
        if members.sum() >= 4:
            per_class_std[name] = float(np.median(std[members]))
            per_class_spread[name] = float(colour[members].std(0).mean())
    if len(per_class_std) < 2:
        return []
    med_std = float(np.median(list(per_class_std.values())))
    med_spread = float(np.median(list(per_class_spread.values())))
    uniform = sorted(
        c for c in per_class_std
        if (med_std > 0 and per_class_std[c] < NARROW * med_std)
        or (med_spread > 0 and per_class_spread[c] < NARROW * med_spread)
    )
    ctx.extras["border_uniformity"] = {"texture": per_class_std, "colour_spread": per_class_spread}
    if not uniform:
        return []
    rows_u = [int(r) for r in rows[np.isin(ctx.labels[rows], [ctx.classes.index(c) for c in uniform])]][:24]
    return [Finding(
        "shortcut", "uniform_border", "warning", f"{len(uniform)} class(es) with a background unlike the others",
        "; ".join(f"{c}: border texture {per_class_std[c]:.1f} (median {med_std:.1f}), colour spread "
                  f"{per_class_spread[c]:.1f} (median {med_spread:.1f})" for c in uniform),
        "Photograph these classes on the same variety of backgrounds as the others.",
        classes=uniform, images=rows_u,
        values={"border_texture": per_class_std, "border_colour_spread": per_class_spread},
    )]
