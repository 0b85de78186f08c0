"""Summary statistics: per-class and whole-dataset mean and std images, per-channel mean/std, sizes."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.findings import Finding


def _mean_std_image(thumbs: np.ndarray, rows: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    total = np.zeros(thumbs.shape[1:], np.float64)
    sq = np.zeros(thumbs.shape[1:], np.float64)
    for s in range(0, len(rows), chunk):
        x = thumbs[rows[s : s + chunk]].astype(np.float64)
        total += x.sum(0)
        sq += (x**2).sum(0)
    n = max(1, len(rows))
    mean = total / n
    return mean, np.sqrt(np.maximum(sq / n - mean**2, 0))


def check_stats(ctx: AuditContext) -> list[Finding]:
    scan = ctx.scan
    ok = np.flatnonzero(scan.ok)
    if not len(ok):
        return []
    weights = scan.pixels[ok].astype(np.float64)
    mean = (scan.chan_mean[ok] * weights[:, None]).sum(0) / weights.sum()
    sq = (scan.chan_sq[ok] * weights[:, None]).sum(0) / weights.sum()
    std = np.sqrt(np.maximum(sq - mean**2, 0))
    images = {"all": _mean_std_image(scan.thumbs, ok)}
    for k, name in enumerate(ctx.classes):
        rows = ok[ctx.labels[ok] == k]
        if len(rows):
            images[name] = _mean_std_image(scan.thumbs, rows)
    sizes = Counter(f"{w}x{h}" for w, h in zip(scan.width[ok].tolist(), scan.height[ok].tolist(), strict=True))
    sides = np.maximum(scan.width[ok], scan.height[ok])
    edges = [0, 32, 64, 128, 256, 512, 1024, 2048, 4096, np.inf]
    hist, _ = np.histogram(sides, bins=edges)
    ctx.extras["stats"] = {
        "channel_mean": [round(float(v), 3) for v in mean[: max(1, scan.channels)]],
        "channel_std": [round(float(v), 3) for v in std[: max(1, scan.channels)]],
        "sizes": dict(sizes.most_common(20)),
        "distinct_sizes": len(sizes),
        "longest_side_histogram": {
            f"{int(lo)}-{'' if np.isinf(hi) else int(hi) - 1}": int(c)
            for lo, hi, c in zip(edges[:-1], edges[1:], hist, strict=True) if c
        },
        "brightness": {"median": round(float(np.median(scan.brightness[ok])), 2),
                       "p5": round(float(np.percentile(scan.brightness[ok], 5)), 2),
                       "p95": round(float(np.percentile(scan.brightness[ok], 95)), 2)},
        "mean_std_images": images,  # arrays, for the HTML report only
    }
    return [Finding(
        "stats", "summary", "info", "Summary statistics",
        f"per-channel mean {', '.join(f'{v:.1f}' for v in ctx.extras['stats']['channel_mean'])}, "
        f"std {', '.join(f'{v:.1f}' for v in ctx.extras['stats']['channel_std'])} (0-255); "
        f"{len(sizes)} distinct size(s), most common {sizes.most_common(1)[0][0]}",
        "Standardize inputs with these statistics from the training split (Preprocess.fit).",
        values={k: v for k, v in ctx.extras["stats"].items() if k != "mean_std_images"},
    )]
