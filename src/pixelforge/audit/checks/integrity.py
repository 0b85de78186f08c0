"""File integrity: unreadable and empty files, extensions that lie, mixed modes, odd sizes, tiny images."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.findings import Finding
from pixelforge.audit.robust import robust_z
from pixelforge.audit.scan import EXTENSION_FORMATS

TINY_FRACTION = 0.25  # a side under a quarter of the dataset's median side is "tiny"
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def check_integrity(ctx: AuditContext) -> list[Finding]:
    scan = ctx.scan
    out: list[Finding] = []
    zero = [i for i in scan.errors if scan.nbytes[i] == 0]
    broken = [i for i in scan.errors if scan.nbytes[i] != 0]
    if zero:
        out.append(Finding(
            "integrity", "zero_byte", "error", f"{len(zero)} empty (zero-byte) file(s)",
            "these files contain no data", "Delete them or copy them again from the source.",
            images=zero, notes={i: "0 bytes" for i in zero},
        ))
    if broken:
        out.append(Finding(
            "integrity", "unreadable", "error", f"{len(broken)} corrupt or unreadable file(s)",
            "; ".join(scan.errors[i].rsplit(": ", 1)[-1] for i in broken[:3]) + (" …" if len(broken) > 3 else ""),
            "Re-download or re-export these files, or remove them; training would skip or crash on them.",
            images=broken, notes={i: scan.errors[i].rsplit(": ", 1)[-1][:80] for i in broken},
        ))
    wrong = [
        i for i in range(scan.n)
        if scan.fmt[i] not in ("", "array") and scan.ext[i] in EXTENSION_FORMATS
        and EXTENSION_FORMATS[scan.ext[i]] != scan.fmt[i]
    ]
    if wrong:
        out.append(Finding(
            "integrity", "wrong_extension", "warning", f"{len(wrong)} file(s) whose extension does not match the content",
            "e.g. " + ", ".join(f".{scan.ext[i]} holding {scan.fmt[i].upper()}" for i in wrong[:3]),
            "Rename the files to their real format; some tools trust the extension.",
            images=wrong, notes={i: f".{scan.ext[i]} is {scan.fmt[i]}" for i in wrong},
        ))
    out += _modes(ctx)
    out += _sizes(ctx)
    return out


def _modes(ctx: AuditContext) -> list[Finding]:
    scan = ctx.scan
    ok = np.flatnonzero(scan.ok)
    out: list[Finding] = []
    if not len(ok):
        return out
    modes = Counter(scan.mode[i] for i in ok)
    gray = [i for i in ok if scan.mode[i] in GRAY_MODES]
    colour = [i for i in ok if scan.mode[i] not in GRAY_MODES]
    if gray and colour:
        minority = gray if len(gray) <= len(colour) else colour
        kind = "grayscale" if minority is gray else "colour"
        out.append(Finding(
            "integrity", "mixed_modes", "warning", f"{len(minority)} {kind} image(s) among the others",
            "modes: " + ", ".join(f"{m}: {n:,}" for m, n in modes.most_common()),
            "Pick one channel count for training (e.g. --channels 3) so every image is converted the same way.",
            images=minority, values={"modes": dict(modes)}, notes={i: scan.mode[i] for i in minority},
        ))
    alpha = [int(i) for i in ok if scan.alpha[i]]
    if alpha:
        out.append(Finding(
            "integrity", "alpha", "info", f"{len(alpha)} image(s) with transparency",
            "an alpha channel is dropped (or composited on a background) when decoding",
            "Choose the background colour transparent pixels get (Preprocess background=...).",
            images=alpha,
        ))
    deep = [int(i) for i in ok if scan.bits[i] == 16]
    if deep:
        out.append(Finding(
            "integrity", "sixteen_bit", "info", f"{len(deep)} 16-bit image(s)",
            "16-bit images are normalized by 65535, 8-bit ones by 255",
            "Check that 16-bit and 8-bit images carry the same brightness range after normalization.",
            images=deep,
        ))
    return out


def _size_notes(rows, w, h) -> dict[int, str]:
    """"WIDTHxHEIGHT" per flagged image, shown beside its thumbnail."""
    return {int(i): f"{int(w[i])}x{int(h[i])}" for i in rows}


def _sizes(ctx: AuditContext) -> list[Finding]:
    scan = ctx.scan
    ok = scan.ok & (scan.width > 0) & (scan.height > 0)
    out: list[Finding] = []
    if ok.sum() < 3:
        return out
    w, h = scan.width.astype(float), scan.height.astype(float)
    area = np.log(np.maximum(w * h, 1))
    aspect = np.log(np.maximum(w, 1) / np.maximum(h, 1))
    med_area, med_aspect = np.median(area[ok]), np.median(aspect[ok])
    # an outlier against the dataset (robust z) that is also far off in absolute terms: 4x the area
    # or twice as elongated — portrait and landscape photos mixed are common and reported as info
    # elongation ignores orientation: a 16:9 landscape among 3:4 portraits is a turned camera, not odd
    elongation = np.abs(aspect)
    med_elongation = np.median(elongation[ok])
    odd = ok & (
        ((np.abs(robust_z(area, ok)) > 3.5) & (np.abs(area - med_area) > np.log(4)))
        | ((np.abs(robust_z(elongation, ok)) > 3.5) & (np.abs(elongation - med_elongation) > np.log(2)))
    )
    median_side = float(np.median(np.minimum(w, h)[ok]))
    tiny = ok & (np.minimum(w, h) < TINY_FRACTION * median_side)
    odd &= ~tiny
    if odd.any():
        rows = np.flatnonzero(odd)
        out.append(Finding(
            "integrity", "odd_sizes", "warning", f"{len(rows)} image(s) with an unusual size or aspect ratio",
            f"median size {int(np.median(w[ok]))}x{int(np.median(h[ok]))}; outliers by robust z-score of area or aspect",
            "Look at them: crops, panoramas or scans often need their own resize (crop or pad instead of squash).",
            images=rows, notes=_size_notes(rows, w, h),
        ))
    off = ok & ~odd & ~tiny & (np.abs(aspect - med_aspect) > np.log(1.15))
    if off.sum() > 0.05 * ok.sum():
        shape = np.where(aspect > np.log(1.1), "landscape", np.where(aspect < -np.log(1.1), "portrait", "square"))
        mix = {k: int(v) for k, v in zip(*np.unique(shape[ok], return_counts=True), strict=True)}
        out.append(Finding(
            "integrity", "mixed_aspect", "info", f"{int(off.sum())} image(s) with another aspect ratio than most",
            "orientations: " + ", ".join(f"{k}: {v:,}" for k, v in mix.items())
            + f"; median aspect (w/h) {np.exp(med_aspect):.2f}",
            "Resize with crop or pad (not squash) so objects keep their proportions across orientations.",
            images=np.flatnonzero(off), values={"orientations": mix},
            notes=_size_notes(np.flatnonzero(off), w, h),
        ))
    if tiny.any():
        rows = np.flatnonzero(tiny)
        out.append(Finding(
            "integrity", "tiny", "warning", f"{len(rows)} tiny image(s)",
            f"shorter side under {TINY_FRACTION:.0%} of the dataset's median ({median_side:.0f} px)",
            "Upscaled tiny images carry little information; remove them or collect larger ones.",
            images=rows, notes=_size_notes(rows, w, h),
        ))
    return out
