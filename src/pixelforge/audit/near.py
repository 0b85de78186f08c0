"""Near-duplicate search that survives small edits: shifts, brightness/contrast, JPEG, resizing,
small crops and horizontal flips.

Two stages, so that a million images are never compared all against all:

1. **Candidates** — each gray thumbnail is centred on its content (mass away from the border colour,
   which undoes shifts of objects on a plain background), blurred, shrunk to 16x16, made zero-mean and
   unit-length (brightness and contrast drop out) and projected on its principal components. Every
   image's nearest neighbours by cosine, also against the mirrored embeddings (flips), are the
   candidates: blocks of one matrix product, memory bounded by the block size.
2. **Verification** — a candidate pair counts when the best normalized cross-correlation of the two
   thumbnails over small shifts, a few scales and a flip is high and *stands out*: the pair matches far
   better than either image matches its best other neighbour (look-alikes are common in some datasets,
   copies are not); their brightness and contrast differ by no more than a re-exposure does, and (for
   colour) their hues agree.
"""

from __future__ import annotations

import cv2
import numpy as np

EMBED_SIDE = 16
NEIGHBOURS = 6  # candidates kept per image (per orientation)
MIN_COSINE = 0.80  # below this two embeddings are not worth verifying
NCC_FLOOR = 0.95  # verification: a near duplicate correlates at least this well ...
STANDS_OUT = 0.35  # ... and its residual (1 - correlation) is at most this share of the residual of the
# best other neighbour of either image: in a crowd of look-alikes (plain trousers in Fashion-MNIST) a
# close match is ordinary, a copy stands out from the crowd
EXACT = 0.998  # neighbours this close are copies themselves, not the crowd (groups of three and more)
MIRROR_AT_LEAST = 0.99  # a mirror copy is otherwise the same image; a mirrored look-alike is not a copy
SCALES = (1.0, 1.06, 1.12)  # zooms tried on the first image of a pair (crops up to ~10%)
HUE_DIFF = 0.06  # chromaticity difference (r, g, b shares) above which colours differ


def gray_thumbs(thumbs: np.ndarray) -> np.ndarray:
    if thumbs.shape[-1] == 1:
        return thumbs[..., 0].astype(np.float32)
    return (thumbs.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))


def centred(gray: np.ndarray) -> np.ndarray:
    """Each image shifted (sub-pixel) so the centre of its content is the image centre."""
    n, t = gray.shape[:2]
    ring = np.concatenate([gray[:, 0], gray[:, -1], gray[:, :, 0], gray[:, :, -1]], 1)
    weight = np.abs(gray - np.median(ring, 1)[:, None, None])
    total = weight.sum((1, 2)) + 1e-6
    axis = np.arange(t, dtype=np.float32)
    cy = (weight.sum(2) * axis).sum(1) / total
    cx = (weight.sum(1) * axis).sum(1) / total
    out = np.empty_like(gray)
    centre = (t - 1) / 2
    for i in range(n):
        m = np.float32([[1, 0, centre - cx[i]], [0, 1, centre - cy[i]]])
        out[i] = cv2.warpAffine(gray[i], m, (t, t), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def embed(gray: np.ndarray) -> np.ndarray:
    """(N, 256) zero-mean unit vectors of the blurred 16x16 images."""
    t = gray.shape[1]
    sigma = max(0.8, t / 24)
    out = np.empty((len(gray), EMBED_SIDE * EMBED_SIDE), np.float32)
    for i, g in enumerate(gray):
        small = cv2.resize(cv2.GaussianBlur(g, (0, 0), sigma), (EMBED_SIDE, EMBED_SIDE), interpolation=cv2.INTER_AREA)
        out[i] = small.ravel()
    out -= out.mean(1, keepdims=True)
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-3
    return out


def _project(e: np.ndarray, e_flip: np.ndarray, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Both embeddings on the top principal components (fitted on a sample), re-normalized."""
    rng = np.random.default_rng(seed)
    sample = e[rng.choice(len(e), min(len(e), 5000), replace=False)]
    _, _, vt = np.linalg.svd(sample - sample.mean(0), full_matrices=False)
    basis = vt[: min(dims, vt.shape[0])].T.astype(np.float32)
    out = []
    for x in (e, e_flip):
        p = x @ basis
        p /= np.linalg.norm(p, axis=1, keepdims=True) + 1e-6
        out.append(p)
    return out[0], out[1]


def candidate_pairs(gray: np.ndarray, rows: np.ndarray, k: int = NEIGHBOURS, min_cosine: float = MIN_COSINE,
                    dims: int = 64, block: int = 512, seed: int = 0) -> np.ndarray:
    """(P, 2) row pairs (i < j) whose embeddings are among each other's ``k`` nearest (either
    orientation) with cosine at least ``min_cosine``."""
    if len(rows) < 2:
        return np.zeros((0, 2), np.int64)
    g = centred(gray[rows])
    e = embed(g)
    e_flip = embed(g[:, :, ::-1].copy())
    e, e_flip = _project(e, e_flip, dims, seed)
    k = min(k, len(rows) - 1)
    found = []
    for start in range(0, len(rows), block):
        q = e[start : start + block]
        for other in (e, e_flip):
            sims = q @ other.T
            idx = np.arange(start, start + len(q))
            sims[np.arange(len(q)), idx] = -1.0  # not yourself (a symmetric image matches its own mirror)
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            best = np.take_along_axis(sims, top, 1)
            a, b = np.nonzero(best >= min_cosine)
            found.append(np.stack([idx[a], top[a, b]], 1))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    pairs = np.sort(pairs, 1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    return rows[pairs]


def _zoomed(g: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return g
    t = g.shape[0]
    big = cv2.resize(g, (round(t * scale), round(t * scale)), interpolation=cv2.INTER_LINEAR)
    off = (big.shape[0] - t) // 2
    return big[off : off + t, off : off + t]


def best_correlation(a: np.ndarray, b: np.ndarray, shift: int) -> tuple[float, bool]:
    """Best normalized cross-correlation of zero-mean images ``a`` and ``b`` (gray or colour) over shifts up to ``shift``
    pixels, zooms of ``a`` by SCALES (either way) and a horizontal flip of ``b``; (score, flipped)."""
    t = a.shape[0]
    best, flipped = -1.0, False
    for scale in SCALES:
        for first, second in ((a, b), (b, a)) if scale != 1.0 else ((a, b),):
            template = _zoomed(first, scale)[shift : t - shift, shift : t - shift]
            if float(np.abs(template).max()) < 1e-3:
                continue
            for flip in (False, True):
                image = second[:, ::-1] if flip else second
                score = float(cv2.matchTemplate(np.ascontiguousarray(image), template, cv2.TM_CCORR_NORMED).max())
                if score > best:
                    best, flipped = score, flip
    return best, flipped


def verify(thumbs: np.ndarray, gray: np.ndarray, pairs: np.ndarray, floor: float = NCC_FLOOR,
           stands_out: float = STANDS_OUT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept mask, best correlation, flipped) for candidate ``pairs`` of rows."""
    t = gray.shape[1]
    shift = max(2, round(t / 10))
    # colour images are compared in colour, less one mean over all channels: a brighter or more
    # contrasted copy still correlates perfectly, a red and a blue circle of one shape do not
    images = thumbs.astype(np.float32) if thumbs.shape[-1] == 3 else gray.copy()
    images -= images.mean(axis=tuple(range(1, images.ndim)), keepdims=True)
    scores, flips = np.zeros(len(pairs)), np.zeros(len(pairs), bool)
    for p, (i, j) in enumerate(pairs.tolist()):
        scores[p], flips[p] = best_correlation(images[i], images[j], shift)
    keep = (scores >= floor) & ((1 - scores) <= stands_out * (1 - crowd_scores(pairs, scores)))
    keep &= ~flips | (scores >= MIRROR_AT_LEAST)
    if len(pairs):  # brightness and contrast within what a re-exposure changes (about ±20%)
        mean, std = gray.mean((1, 2)), gray.std((1, 2)) + 2.0
        a, b = pairs[:, 0], pairs[:, 1]
        keep &= np.abs(mean[a] - mean[b]) <= 0.2 * np.maximum(mean[a], mean[b]) + 8.0
        keep &= np.abs(np.log(std[a] / std[b])) <= np.log(1.3)
    if thumbs.shape[-1] == 3 and len(pairs):
        means = thumbs.reshape(len(thumbs), -1, 3)[pairs.ravel()].mean(1).reshape(len(pairs), 2, 3) + 1.0
        chroma = means / means.sum(-1, keepdims=True)
        keep &= np.abs(chroma[:, 0] - chroma[:, 1]).max(-1) <= HUE_DIFF
        # the object's own colour too (the background dominates the means): a re-exposure moves it
        # by a fifth at most, a dark-red and a red ball differ more
        objects = object_colours(thumbs[pairs.ravel()]).reshape(len(pairs), 2, 3)
        a, b = objects[:, 0], objects[:, 1]
        keep &= (np.abs(a - b) <= 0.2 * np.maximum(a, b) + 12.0).all(-1)
    return keep, scores, flips


def object_colours(thumbs: np.ndarray) -> np.ndarray:
    """Mean colour (N, 3) of each image's most object-like pixels: the quarter farthest from the
    colour of its border ring."""
    n, t = thumbs.shape[:2]
    x = thumbs.astype(np.float32).reshape(n, t * t, 3)
    ring = np.concatenate([thumbs[:, 0], thumbs[:, -1], thumbs[:, :, 0], thumbs[:, :, -1]], 1).astype(np.float32)
    dist = np.abs(x - np.median(ring, 1)[:, None]).max(-1)
    far = dist >= np.quantile(dist, 0.75, axis=1, keepdims=True)
    return (x * far[..., None]).sum(1) / np.maximum(far.sum(1), 1)[:, None]


def crowd_scores(pairs: np.ndarray, scores: np.ndarray, sparse: float = 0.9) -> np.ndarray:
    """Per pair (a, b): how well the closer-crowded of a and b matches its best *other* neighbour
    (copies above EXACT left out; ``sparse`` when an image has no other candidate)."""
    best: dict[int, list[tuple[float, int]]] = {}
    for (a, b), s in zip(pairs.tolist(), scores.tolist(), strict=True):
        if s < EXACT:
            best.setdefault(a, []).append((s, b))
            best.setdefault(b, []).append((s, a))
    for key in best:
        best[key] = sorted(best[key], reverse=True)[:2]

    def other(i: int, j: int) -> float:
        for s, k in best.get(i, []):
            if k != j:
                return s
        return sparse

    return np.array([min(other(a, b), other(b, a)) for a, b in pairs.tolist()], np.float64)
