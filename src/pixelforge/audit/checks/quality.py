"""Image quality against the dataset's own distribution: dark, bright, low contrast or information,
blurry. Every threshold is a robust z-score (median/MAD) of the dataset, not a fixed level."""

from __future__ import annotations

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.findings import Finding
from pixelforge.audit.robust import Z_OUTLIER, robust_z


def _finding(code, title, rows, values, scores, message, recommendation) -> Finding:
    order = rows[np.argsort(scores[rows])] if code != "bright" else rows[np.argsort(-scores[rows])]
    return Finding(
        "quality", code, "warning", f"{len(rows)} {title}", message, recommendation,
        images=order.tolist(),
        values={"threshold_z": Z_OUTLIER, "median": round(float(np.median(values)), 3)},
        notes={int(i): f"{values[i]:.1f} (z {scores[i]:+.1f})" for i in order},
    )


def check_quality(ctx: AuditContext) -> list[Finding]:
    s = ctx.scan
    ok = s.ok.copy()
    if ok.sum() < 5:
        return []
    z_limit = ctx.option("quality_z", Z_OUTLIER)
    out: list[Finding] = []
    zb = robust_z(s.brightness, ok)
    dark = ok & (zb < -z_limit)
    bright = ok & (zb > z_limit)
    if dark.any():
        out.append(_finding("dark", "too dark image(s)", np.flatnonzero(dark), s.brightness, zb,
                            f"mean gray level far below the dataset's median of {np.median(s.brightness[ok]):.0f}",
                            "Check exposure; remove them, or keep them if dark scenes will occur in use (then add more)."))
    if bright.any():
        out.append(_finding("bright", "too bright image(s)", np.flatnonzero(bright), s.brightness, zb,
                            f"mean gray level far above the dataset's median of {np.median(s.brightness[ok]):.0f}",
                            "Check for over-exposure or blank frames; remove or re-shoot them."))
    normal = ok & ~dark & ~bright
    # contrast relative to brightness, so a dark image is not also "low contrast"
    rel_contrast = s.contrast / (s.brightness + 10.0)
    zc, ze = robust_z(rel_contrast, normal), robust_z(s.entropy, normal)
    low = normal & ((zc < -z_limit) | (ze < -z_limit))
    if low.any():
        score = np.minimum(zc, ze)
        out.append(_finding("low_information", "low-contrast or low-information image(s)", np.flatnonzero(low),
                            s.entropy, score,
                            "contrast or gray-level entropy far below the dataset's (blank, washed-out or flat images)",
                            "Look at them; blank or near-uniform images teach the model nothing."))
    zs = robust_z(s.sharpness, ok)
    blurry = ok & (zs < -z_limit)
    if blurry.any():
        out.append(_finding("blurry", "blurry image(s)", np.flatnonzero(blurry), s.sharpness, zs,
                            "variance of the Laplacian (relative to the image's contrast) far below the dataset's",
                            "Remove out-of-focus or motion-blurred images, or keep a few if blur will occur in use."))
    return out
