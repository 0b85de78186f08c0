"""Features computed from the scan's thumbnails, in vectorized chunks: border ring, object colour and
position (relative to the border), and HOG-like gradient histograms for the quick label model."""

from __future__ import annotations

import warnings

import cv2
import numpy as np

HUE_NAMES = ("red", "yellow", "green", "cyan", "blue", "magenta")
CHUNK = 8192  # thumbnails per vectorized step: keeps float copies to a few tens of MB


def chunked(func, thumbs: np.ndarray, *others: np.ndarray, chunk: int = CHUNK):
    """Apply ``func`` to slices of ``thumbs`` (and aligned arrays), concatenating the outputs, so
    float32 copies of 70,000 thumbnails never exist at once."""
    parts = [func(thumbs[s : s + chunk], *(o[s : s + chunk] for o in others)) for s in range(0, len(thumbs), chunk)]
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(first)))
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    return np.concatenate(parts)


def ring_mask(t: int) -> np.ndarray:
    width = max(2, t // 8)
    mask = np.zeros((t, t), bool)
    mask[:width], mask[-width:], mask[:, :width], mask[:, -width:] = True, True, True, True
    return mask


def _border_features(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features for a border-only model, mean border colour (N, C), border std (N,)).

    The features are the thumbnail with its centre blanked, pooled to 8x8 cells, ring cells only.
    """
    n, t, _, c = thumbs.shape
    ring = ring_mask(t)
    x = thumbs.astype(np.float32)
    colour = x[:, ring].mean(1)
    std = x[:, ring].std(1).mean(-1)
    cells = 8
    pooled = x.reshape(n, cells, t // cells, cells, t // cells, c).mean((2, 4)) if t % cells == 0 else np.stack(
        [cv2.resize(img, (cells, cells), interpolation=cv2.INTER_AREA).reshape(cells, cells, c) for img in x]
    )
    cell_ring = ring_mask(cells)
    feats = np.concatenate([pooled[:, cell_ring].reshape(n, -1), std[:, None]], 1)
    return feats, colour, std


def _background_features(thumbs: np.ndarray) -> np.ndarray:
    """What the background looks like, with the object taken out: per image, the border ring's pixels
    that match its dominant colour (within a tolerance from their own spread) are background; pixels
    of an object reaching the edge are left out. Features are robust statistics of those background
    pixels only — median colour overall and per side, and their texture — so the object's silhouette
    (how much of it touches the border) does not leak in."""
    n, t, _, c = thumbs.shape
    width = max(2, t // 8)
    x = thumbs.astype(np.float32)
    sides = [x[:, :width].reshape(n, -1, c), x[:, -width:].reshape(n, -1, c),
             x[:, :, :width].reshape(n, -1, c), x[:, :, -width:].reshape(n, -1, c)]
    ring = np.concatenate(sides, 1)  # (N, P, C)
    dominant = np.median(ring, 1)  # (N, C)
    dist = np.abs(ring - dominant[:, None]).max(-1)  # (N, P)
    spread = np.median(dist, 1, keepdims=True)
    background = dist <= np.maximum(12.0, 3.0 * spread)
    masked = np.where(background[..., None], ring, np.nan)
    feats = [np.nanmedian(masked, 1)]  # (N, C)
    offset = 0
    for side in sides:
        part = masked[:, offset : offset + side.shape[1]]
        offset += side.shape[1]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a side with no background pixel: NaN, filled below
            med = np.nanmedian(part, 1)
        feats.append(np.where(np.isnan(med), feats[0], med))
    deviation = np.abs(masked - feats[0][:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        feats.append(np.nanmedian(deviation, 1))  # texture: typical deviation from the dominant colour
    return np.nan_to_num(np.concatenate(feats, 1)).astype(np.float32)


def _object_stats(thumbs: np.ndarray, border_colour: np.ndarray) -> dict[str, np.ndarray]:
    """Where the object is (centroid, size) and its colour: pixels weighted by their distance from the
    image's border colour, a rough foreground map that needs no model."""
    n, t, _, c = thumbs.shape
    x = thumbs.astype(np.float32)
    dist = np.sqrt(((x - border_colour[:, None, None, :]) ** 2).sum(-1))  # (N, t, t)
    w = np.maximum(dist - dist.mean((1, 2), keepdims=True) * 0.5, 0)
    total = w.sum((1, 2)) + 1e-6
    yy, xx = np.mgrid[0:t, 0:t].astype(np.float32) / (t - 1)
    cx = (w * xx).sum((1, 2)) / total
    cy = (w * yy).sum((1, 2)) / total
    r2 = (w * ((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2)).sum((1, 2)) / total
    strong = dist >= 0.6 * dist.max((1, 2), keepdims=True)
    colour = (x * strong[..., None]).sum((1, 2)) / np.maximum(strong.sum((1, 2)), 1)[:, None]
    return {"cx": cx, "cy": cy, "size": np.sqrt(r2), "colour": colour}


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """Coarse colour variant per RGB row: black/gray/white for unsaturated colours, else one of 6 hues."""
    arr = np.clip(rgb, 0, 255).astype(np.uint8).reshape(-1, 1, 3)
    hsv = cv2.cvtColor(arr, cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(np.float32)
    h, s, v = hsv[:, 0] * 360 / 256, hsv[:, 1] / 255, hsv[:, 2] / 255
    names = np.empty(len(rgb), dtype=object)
    hue_bin = (((h + 30) % 360) // 60).astype(int)
    for k, name in enumerate(HUE_NAMES):
        names[hue_bin == k] = name
    neutral = (s < 0.25) | (v < 0.2)
    names[neutral & (v < 0.2)] = "black"
    names[neutral & (v >= 0.2) & (v < 0.75)] = "gray"
    names[neutral & (v >= 0.75)] = "white"
    return names


def hog_features(thumbs: np.ndarray, cells: int = 4, bins: int = 9, chunk: int = 4096) -> np.ndarray:
    """Histograms of unsigned gradient orientation per cell (cells x cells grid), L2-normalized per
    image: polarity- and colour-free shape features, cheap enough for 70,000 thumbnails."""
    n, t = thumbs.shape[:2]
    out = np.empty((n, cells * cells * bins), np.float32)
    step = t // cells
    for s in range(0, n, chunk):
        g = thumbs[s : s + chunk].astype(np.float32)  # (m, t, t, C)
        gx = np.zeros_like(g)
        gy = np.zeros_like(g)
        gx[:, :, 1:-1] = g[:, :, 2:] - g[:, :, :-2]
        gy[:, 1:-1, :] = g[:, 2:, :] - g[:, :-2, :]
        # per pixel, the gradient of the channel where it is strongest (an edge between two colours
        # of equal brightness still counts, as in Dalal and Triggs' HOG)
        mag_c = gx**2 + gy**2
        best = mag_c.argmax(-1)[..., None]
        gx = np.take_along_axis(gx, best, -1)[..., 0]
        gy = np.take_along_axis(gy, best, -1)[..., 0]
        mag = np.sqrt(np.take_along_axis(mag_c, best, -1)[..., 0])
        ang = (np.arctan2(gy, gx) % np.pi) / np.pi * bins
        b = np.minimum(ang.astype(int), bins - 1)
        m = len(g)
        size = cells * cells * bins
        cy = np.minimum(np.arange(t) // step, cells - 1)
        cell_index = cy[:, None] * cells + cy[None, :]  # (t, t)
        flat_index = (cell_index[None] * bins + b).reshape(m, -1) + (np.arange(m) * size)[:, None]
        hist = np.bincount(flat_index.ravel(), weights=mag.ravel(), minlength=m * size)
        hist = hist.reshape(m, size).astype(np.float32)
        hist /= np.linalg.norm(hist, axis=1, keepdims=True) + 1e-6
        out[s : s + m] = hist
    return out


def _model_features(thumbs: np.ndarray) -> np.ndarray:
    """Inputs of the quick label model: gradient-orientation histograms on a 4x4 and a 2x2 grid
    (shape, free of colour and polarity) plus an 8x8 gray image (coarse layout and intensity)."""
    n, t = thumbs.shape[:2]
    x = thumbs.astype(np.float32) / 255
    gray = x.mean(-1) if x.shape[-1] == 3 else x[..., 0]
    g8 = gray.reshape(n, 8, t // 8, 8, t // 8).mean((2, 4)).reshape(n, -1) if t % 8 == 0 else np.stack(
        [cv2.resize(g, (8, 8), interpolation=cv2.INTER_AREA).ravel() for g in gray])
    hog = [hog_features(thumbs, cells=4, bins=12), hog_features(thumbs, cells=2, bins=12)]
    return np.concatenate([*hog, g8], 1).astype(np.float32)


def background_features(thumbs: np.ndarray) -> np.ndarray:
    return chunked(_background_features, thumbs)


def border_features(thumbs: np.ndarray):
    return chunked(_border_features, thumbs)


def object_stats(thumbs: np.ndarray, border_colour: np.ndarray) -> dict[str, np.ndarray]:
    return chunked(_object_stats, thumbs, border_colour)


def model_features(thumbs: np.ndarray) -> np.ndarray:
    return chunked(_model_features, thumbs)
