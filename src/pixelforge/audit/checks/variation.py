"""Variation within each class — lighting (brightness spread), colour variants, object position and
scale — compared across classes, so a class photographed under one light or in one colour stands out."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.features import border_features, colour_names, object_stats
from pixelforge.audit.findings import Finding

NARROW = 1 / 3  # a class spread under a third of the median class spread is "narrow"
VARIANT_SHARE = 0.10  # the rule of thumb: each colour variant should be at least 10% of its class


def _iqr(values: np.ndarray) -> float:
    if len(values) < 4:
        return float("nan")
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def _narrow(ctx, per_class: dict[str, float], code: str, what: str, recommendation: str) -> list[Finding]:
    valid = {c: v for c, v in per_class.items() if np.isfinite(v)}
    if len(valid) < 3:
        return []
    median = float(np.median(list(valid.values())))
    narrow = sorted(c for c, v in valid.items() if median > 0 and v < NARROW * median)
    if not narrow:
        return []
    rows = [int(i) for i in np.flatnonzero(np.isin(ctx.labels, [ctx.classes.index(c) for c in narrow]))][:48]
    return [Finding(
        "variation", code, "warning", f"{len(narrow)} class(es) with little variation in {what}",
        ", ".join(f"{c}: {valid[c]:.3g}" for c in narrow) + f" (median over classes {median:.3g})",
        recommendation, images=rows, classes=narrow,
        values={"spread_per_class": {c: round(v, 4) for c, v in valid.items()}},
    )]


def check_variation(ctx: AuditContext) -> list[Finding]:
    scan = ctx.scan
    ok = scan.ok
    _, border_colour, _ = border_features(scan.thumbs)
    obj = object_stats(scan.thumbs, border_colour)
    out: list[Finding] = []
    by_class = {c: np.flatnonzero(ok & (ctx.labels == k)) for k, c in enumerate(ctx.classes)}
    out += _narrow(ctx, {c: _iqr(scan.brightness[r]) for c, r in by_class.items()}, "lighting", "lighting",
                   "Collect images of these classes under more lighting conditions (or augment brightness).")
    pos = {c: float(np.hypot(obj["cx"][r].std(), obj["cy"][r].std())) if len(r) > 3 else float("nan")
           for c, r in by_class.items()}
    out += _narrow(ctx, pos, "position", "object position",
                   "Add images with the object elsewhere in the frame (or augment with shifts).")
    scale = {c: float(obj["size"][r].std()) if len(r) > 3 else float("nan") for c, r in by_class.items()}
    out += _narrow(ctx, scale, "scale", "object scale",
                   "Add images taken closer and farther away (or augment with zoom).")
    ctx.extras["variation"] = {"position_spread": pos, "scale_spread": scale}
    if scan.channels == 3:
        out += _colour_variants(ctx, by_class, colour_names(obj["colour"]))
    return out


def _colour_variants(ctx, by_class, names) -> list[Finding]:
    table = {c: Counter(names[r]) for c, r in by_class.items() if len(r)}
    ctx.extras["colour_variants"] = {c: dict(t.most_common()) for c, t in table.items()}
    out: list[Finding] = []
    rare = {}
    for c, counts in table.items():
        total = sum(counts.values())
        for name, n in counts.items():
            if n / total < VARIANT_SHARE:
                rare.setdefault(c, []).append(f"{name} {n / total:.0%}")
    if rare:
        out.append(Finding(
            "variation", "rare_colour_variants", "info",
            f"colour variants under {VARIANT_SHARE:.0%} of their class in {len(rare)} class(es)",
            "; ".join(f"{c}: {', '.join(v)}" for c, v in sorted(rare.items())),
            "Each colour variant the model must recognise should be at least ~10% of its class; collect more of the rare ones.",
            classes=sorted(rare), values={"variants": ctx.extras["colour_variants"]},
        ))
    diverse = [len(t) for t in table.values()]
    one = sorted(c for c, t in table.items() if t and t.most_common(1)[0][1] / sum(t.values()) >= 0.9)
    if one and len(one) < len(table) and np.median(diverse) >= 3:
        out.append(Finding(
            "variation", "single_colour", "warning", f"{len(one)} class(es) come in essentially one colour",
            ", ".join(f"{c}: {table[c].most_common(1)[0][0]}" for c in one),
            "Other classes vary in colour; add other colours of these classes or the model may learn colour instead of shape.",
            classes=one,
        ))
    return out
