"""Dataset size and class balance: enough images per class, more than one class, no tiny classes."""

from __future__ import annotations

from pixelforge.audit.context import AuditContext
from pixelforge.audit.findings import Finding

MIN_PER_CLASS = 1_000
OPEN_WORLD_NAMES = ("other", "others", "none", "unknown", "background", "negative", "misc", "nothing", "rest")


def check_size(ctx: AuditContext) -> list[Finding]:
    counts = ctx.manifest.class_counts()
    present = {c: n for c, n in counts.items() if n > 0}
    out: list[Finding] = []
    if len(present) < 2:
        out.append(Finding(
            "size", "single_class", "error", "Only one class",
            f"the dataset has {len(present)} class(es) with images: {sorted(present)}",
            "A classifier needs at least two classes; add the images of the other classes.",
            classes=sorted(present), values={"classes": len(present)},
        ))
    small = {c: n for c, n in counts.items() if n < ctx.option("min_per_class", MIN_PER_CLASS)}
    if small:
        out.append(Finding(
            "size", "small_classes", "warning", f"{len(small)} class(es) under {MIN_PER_CLASS:,} images",
            ", ".join(f"{c}: {n:,}" for c, n in sorted(small.items(), key=lambda kv: kv[1])),
            "Collect more images (about 1,000 per class is a good start) or use transfer learning and augmentation.",
            classes=sorted(small), values={"counts": small, "minimum": MIN_PER_CLASS},
        ))
    if len(present) >= 2 and not any(c.lower() in OPEN_WORLD_NAMES for c in counts):
        out.append(Finding(
            "size", "no_none_class", "info", "No 'none of these' class",
            f"none of the {len(counts)} classes looks like a catch-all (e.g. {', '.join(OPEN_WORLD_NAMES[:4])})",
            "If the model will meet images of none of these classes, add an 'other' class with such images.",
        ))
    return out


DRIFT_POINTS = 0.05  # a class whose share of the images differs by 5 points between train and test


def _rare(counts: dict[str, int]) -> dict[str, int]:
    """Classes under 20% of the mean class size or 10% of the largest (the material's two rules)."""
    if len(counts) < 2:
        return {}
    mean = sum(counts.values()) / len(counts)
    largest = max(counts.values())
    return {c: n for c, n in counts.items() if n < 0.2 * mean or n < 0.1 * largest}


def check_imbalance(ctx: AuditContext) -> list[Finding]:
    """Balance is judged on what the model learns from: the training split (every image when the
    source has no split); every split's counts are reported, and a class share that drifts between
    train and test is a finding of its own."""
    by_split = ctx.manifest.counts_by_split()
    if len(ctx.manifest.classes) < 2:
        return []
    basis = "train" if "train" in by_split else ("all" if "all" in by_split else next(iter(by_split)))
    counts = by_split[basis]
    mean = sum(counts.values()) / len(counts)
    largest = max(counts.values())
    rare = _rare(counts)
    out: list[Finding] = []
    where = "the training split" if basis == "train" else ("the dataset" if basis == "all" else f"the {basis} split")
    if rare:
        detail = ", ".join(
            f"{c}: {n:,} ({n / mean:.0%} of the mean, {n / largest:.0%} of the largest)" for c, n in rare.items()
        )
        others = {s: {c: by_split[s][c] for c in rare} for s in by_split if s != basis}
        if others:
            detail += "; elsewhere: " + "; ".join(
                f"{s} " + ", ".join(f"{c} {n:,}" for c, n in row.items()) for s, row in others.items())
        out.append(Finding(
            "imbalance", "minority_classes", "warning", f"{len(rare)} class(es) far smaller than the others in {where}",
            detail,
            "Collect more images of these classes, oversample them (`pixelforge augment --balance`), or weight the "
            "loss (class_weight).",
            classes=sorted(rare),
            values={"split": basis, "counts": counts, "mean": round(mean, 1), "largest": largest,
                    "counts_by_split": by_split},
        ))
    out += _drift(by_split)
    return out


def _drift(by_split: dict[str, dict[str, int]]) -> list[Finding]:
    """Class shares that differ between the training and the test (or validation) split."""
    if "train" not in by_split:
        return []
    held = next((s for s in ("test", "validation") if s in by_split), None)
    if held is None:
        return []
    train, other = by_split["train"], by_split[held]
    n_train, n_other = sum(train.values()), sum(other.values())
    if not n_train or not n_other:
        return []
    shares = {c: (train[c] / n_train, other[c] / n_other) for c in train}
    drifted = {c: v for c, v in shares.items() if abs(v[0] - v[1]) >= DRIFT_POINTS}
    if not drifted:
        return []
    return [Finding(
        "imbalance", "split_drift", "warning",
        f"{len(drifted)} class(es) with a different share in train and {held}",
        ", ".join(f"{c}: {a:.1%} of train vs {b:.1%} of {held}" for c, (a, b) in drifted.items()),
        f"Scores on {held} weigh classes differently from training; re-split stratified (pixelforge keeps class "
        "shares when it splits) or report per-class metrics.",
        classes=sorted(drifted),
        values={"train_share": {c: round(a, 4) for c, (a, _) in shares.items()},
                f"{held}_share": {c: round(b, 4) for c, (_, b) in shares.items()}, "threshold": DRIFT_POINTS},
    )]
