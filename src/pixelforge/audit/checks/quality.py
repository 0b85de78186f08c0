"""Image quality measured on the image itself, then compared with its class and the dataset.

- dark: the image's own 99th-percentile gray level is low (its brightest parts are dim) and far below
  its class's (so a naturally dark class is not flagged, a darkened image in any class is);
- bright: its 5th percentile is high (even its darkest parts are washed out) and far above its class's;
- blurry: the no-reference blur effect (Crete et al.) far above the dataset's — it measures how little a
  re-blur changes the image's own edges, so it does not depend on content or contrast;
- low information: near-blank images — few gray levels in use (entropy) and far below class and dataset.

"Far" is a robust z-score (median/MAD) beyond 3.5. Every finding states what was measured and the cut.
"""

from __future__ import annotations

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.findings import Finding
from pixelforge.audit.robust import Z_OUTLIER, robust_z

DARK_LEVEL = 56  # 22% of 255: an image whose brightest 1% of pixels stay below this is dark to the eye
BRIGHT_MARGIN = 56  # ... and one whose darkest 5% are within this of white is washed out
LOW_ENTROPY = 2.4  # bits of 8: only a few gray levels in use
MIN_CLASS = 20  # classes smaller than this are compared with the whole dataset instead
HALF = 0.5  # ... and a dark image keeps at most half of its class's typical brightest level


def by_class(stat, values: np.ndarray, ok: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image, ``stat(values, mask)`` taken over the images of its class (over the dataset for
    classes under MIN_CLASS images); ``stat`` returns one value or one per image."""
    out = np.broadcast_to(stat(values, ok), values.shape).astype(np.float64)
    for k in np.unique(labels[ok]):
        members = ok & (labels == k)
        if members.sum() >= MIN_CLASS:
            mine = labels == k
            out[mine] = np.broadcast_to(stat(values, members), values.shape)[mine]
    return out


def class_median(values: np.ndarray, ok: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image, the median of ``values`` over its class."""
    return by_class(lambda v, mask: np.median(v[mask]), values, ok, labels)


def class_robust_z(values: np.ndarray, ok: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Robust z-score of each image against the images of its own class."""
    return by_class(robust_z, values, ok, labels)


def _finding(code, title, rows, order_by, message, recommendation, values, notes) -> Finding:
    order = rows[np.argsort(order_by[rows], kind="stable")]
    return Finding("quality", code, "warning", f"{len(rows):,} {title}", message, recommendation,
                   images=order.tolist(), values=values, notes={int(i): notes(int(i)) for i in order})


def check_quality(ctx: AuditContext) -> list[Finding]:
    s = ctx.scan
    ok = s.ok.copy()
    if ok.sum() < 5:
        return []
    z_limit = ctx.option("quality_z", Z_OUTLIER)
    labels = ctx.labels
    out: list[Finding] = []

    p99, p5 = s.gray_p99, s.gray_p5
    # far below its class, and at most half its class's typical level (a dim image among dim ones is not dark)
    z_dark = class_robust_z(np.log1p(p99), ok, labels)
    dark = ok & (p99 < DARK_LEVEL) & (z_dark < -z_limit) & (p99 <= HALF * class_median(p99, ok, labels))
    if dark.any():
        out.append(_finding(
            "dark", "too dark image(s)", np.flatnonzero(dark), p99,
            f"the brightest 1% of their pixels stay below gray level {DARK_LEVEL} (99th percentile; the dataset's "
            f"median is {np.median(p99[ok]):.0f}) and far below their class (robust z < -{z_limit:g})",
            "Check the exposure; remove them, or keep them if dark scenes will occur in use (then add more).",
            {"measure": "99th-percentile gray level", "cut": DARK_LEVEL, "class_z": -z_limit},
            lambda i: f"99th percentile {p99[i]:.0f} (class z {z_dark[i]:+.1f})"))
    headroom = 255.0 - p5
    z_bright = class_robust_z(np.log1p(headroom), ok, labels)
    bright = ok & ~dark & (headroom < BRIGHT_MARGIN) & (z_bright < -z_limit) & (
        headroom <= HALF * class_median(headroom, ok, labels))
    if bright.any():
        out.append(_finding(
            "bright", "too bright image(s)", np.flatnonzero(bright), headroom,
            f"even their darkest 5% of pixels are within {BRIGHT_MARGIN} gray levels of white (5th percentile) and "
            f"far brighter than their class (robust z < -{z_limit:g})",
            "Check for over-exposure or washed-out frames; remove or re-shoot them.",
            {"measure": "5th-percentile gray level", "cut": 255 - BRIGHT_MARGIN, "class_z": -z_limit},
            lambda i: f"5th percentile {p5[i]:.0f} (class z {z_bright[i]:+.1f})"))
    blur = np.clip(s.blur, 1e-4, 1 - 1e-4)
    z_blur = robust_z(np.log(blur / (1 - blur)), ok)
    blurry = ok & (z_blur > z_limit) & ~dark
    if blurry.any():
        out.append(_finding(
            "blurry", "blurry image(s)", np.flatnonzero(blurry), -z_blur,
            f"blur effect (how little their edges change when blurred again, 0 sharp .. 1 flat) far above the "
            f"dataset's median of {np.median(s.blur[ok]):.2f} (robust z of its logit > {z_limit:g})",
            "Remove out-of-focus or motion-blurred images, or keep a few if blur will occur in use.",
            {"measure": "blur effect (Crete et al. 2007)", "median": round(float(np.median(s.blur[ok])), 3),
             "z": z_limit},
            lambda i: f"blur {s.blur[i]:.2f} (z {z_blur[i]:+.1f})"))
    z_ent_class = class_robust_z(s.entropy, ok, labels)
    z_ent = robust_z(s.entropy, ok)
    low = ok & ~dark & ~bright & (s.entropy < LOW_ENTROPY) & (z_ent < -z_limit) & (z_ent_class < -z_limit)
    if low.any():
        out.append(_finding(
            "low_information", "near-blank image(s)", np.flatnonzero(low), s.entropy,
            f"gray-level entropy under {LOW_ENTROPY} bits (of 8) and far below their class and the dataset "
            f"(median {np.median(s.entropy[ok]):.1f} bits; robust z < -{z_limit:g})",
            "Look at them; blank or near-uniform images teach the model nothing.",
            {"measure": "gray-level entropy (bits)", "cut": LOW_ENTROPY, "z": -z_limit},
            lambda i: f"entropy {s.entropy[i]:.2f} bits"))
    return out
