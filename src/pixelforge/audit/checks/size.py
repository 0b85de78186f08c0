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


def check_imbalance(ctx: AuditContext) -> list[Finding]:
    counts = ctx.manifest.class_counts()
    if len(counts) < 2:
        return []
    mean = sum(counts.values()) / len(counts)
    largest = max(counts.values())
    rare = {c: n for c, n in counts.items() if n < 0.2 * mean or n < 0.1 * largest}
    if not rare:
        return []
    detail = ", ".join(
        f"{c}: {n:,} ({n / mean:.0%} of the mean, {n / largest:.0%} of the largest)" for c, n in rare.items()
    )
    return [Finding(
        "imbalance", "minority_classes", "warning", f"{len(rare)} class(es) far smaller than the others",
        detail,
        "Collect more images of these classes, oversample them (`pixelforge augment --balance`), or weight the loss.",
        classes=sorted(rare),
        values={"counts": counts, "mean": round(mean, 1), "largest": largest},
    )]
