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
   colour) their hues agree. Each image's best pairs also get a finer search (zooms of 3-10% and
   half-pixel offsets: crops resized back), and pairs already close a second look with one image of
   the pair blurred (copies shrunk and enlarged back have lost their fine detail; blurring both images
   would make look-alikes match as well).
"""

from __future__ import annotations

import cv2
import numpy as np

EMBED_SIDE = 16
NEIGHBOURS = 8  # candidates kept per image (per view and orientation) ...
LARGE, NEIGHBOURS_LARGE = 20_000, 5  # ... and beyond this many images (verification time grows with them)
MIN_COSINE = 0.80  # below this two embeddings are not worth verifying
NCC_FLOOR = 0.95  # verification: a near duplicate correlates at least this well ...
STANDS_OUT = 0.35  # ... and its residual (1 - correlation) is at most this share of the residual of the
# best other neighbour of either image: in a crowd of look-alikes (plain trousers in Fashion-MNIST) a
# close match is ordinary, a copy stands out from the crowd
EXACT = 0.998  # neighbours this close are copies themselves, not the crowd (groups of three and more)
MIRROR_AT_LEAST = 0.99  # a mirror copy is otherwise the same image; a mirrored look-alike is not a copy
ZOOMS = (1 / 1.08, 1.08)  # zooms of the first image of a pair (crops of ~5-10%) ...
ZOOM_FROM = 0.85  # ... when the plain match correlates this well but not yet well enough
HUE_DIFF = 0.06  # chromaticity difference (r, g, b shares) of two images above which colours differ
OBJECT_HUE_DIFF = 0.08  # ... and of their objects' colours
LOW_PASS = 0.8  # blur (thumbnail pixels) of the second look at a pair: one image of it blurred ...
LOW_PASS_FLOOR = 0.97  # ... where a near duplicate must correlate at least this well ...
LOW_PASS_FROM, LOW_PASS_TOP = 0.75, 6  # ... looked at for each image's best pairs that correlate this well
REFINE_ZOOMS = (1 / 1.1, 1 / 1.065, 1 / 1.03, 1.0, 1.03, 1.065, 1.1)  # finer zooms (crops) ...
REFINE_TOP, REFINE_FROM = 2, 0.8  # ... for each image's best pairs that correlate at least this well,
REFINED_FLOOR = 0.99  # ... counted where they find a match at least this close


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
    """(P, 3) rows (i, j, mirrored), i < j: j is among i's ``k`` nearest embeddings with cosine at least
    ``min_cosine``, as it is (mirrored 0) or mirrored (1); a pair found both ways appears twice."""
    import torch

    if len(rows) < 2:
        return np.zeros((0, 3), np.int64)
    k = min(k if len(rows) <= LARGE else min(k, NEIGHBOURS_LARGE), len(rows) - 1)
    found = []
    # centred views undo shifts of objects on a plain background; the plain view keeps what centring
    # disturbs (an object cut by the frame moves its centre less than the shift)
    for g in (centred(gray[rows]), gray[rows]):
        e, e_flip = (torch.from_numpy(v) for v in _project(embed(g), embed(g[:, :, ::-1].copy()), dims, seed))
        for start in range(0, len(rows), block):
            q = e[start : start + block]
            idx = torch.arange(start, start + len(q))
            for other in (e, e_flip):
                sims = q @ other.T  # torch: its matrix product and top-k use every core
                sims[torch.arange(len(q)), idx] = -1.0  # not yourself (a symmetric image matches its own mirror)
                best, top = torch.topk(sims, k, dim=1)
                a, b = torch.nonzero(best >= min_cosine, as_tuple=True)
                mirrored = torch.full((len(a),), int(other is e_flip))
                found.append(torch.stack([idx[a], top[a, b], mirrored], 1).numpy())
    found = np.concatenate(found) if found else np.zeros((0, 3), np.int64)
    found[:, :2] = np.sort(found[:, :2], 1)
    found = np.unique(found[found[:, 0] != found[:, 1]], axis=0)
    found[:, :2] = rows[found[:, :2]]
    return found


def feature_pairs(features: np.ndarray, rows: np.ndarray, k: int = NEIGHBOURS, min_cosine: float = 0.9,
                  block: int = 512) -> np.ndarray:
    """Candidates from any embedding (e.g. a backbone's features): (P, 3) rows (i, j, 0), i < j, j among
    i's ``k`` nearest by cosine with at least ``min_cosine``. Verified like the others."""
    import torch

    if len(rows) < 2:
        return np.zeros((0, 3), np.int64)
    k = min(k, len(rows) - 1)
    e = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(features, np.float32)), dim=1)
    found = []
    for start in range(0, len(rows), block):
        q = e[start : start + block]
        idx = torch.arange(start, start + len(q))
        sims = q @ e.T
        sims[torch.arange(len(q)), idx] = -1.0
        best, top = torch.topk(sims, k, dim=1)
        a, b = torch.nonzero(best >= min_cosine, as_tuple=True)
        found.append(torch.stack([idx[a], top[a, b], torch.zeros(len(a), dtype=torch.long)], 1).numpy())
    found = np.concatenate(found)
    found[:, :2] = np.sort(found[:, :2], 1)
    found = np.unique(found[found[:, 0] != found[:, 1]], axis=0)
    found[:, :2] = rows[found[:, :2]]
    return found


def _zoomed(images: np.ndarray, scale: float) -> np.ndarray:
    """Each image enlarged by ``scale`` about its centre, cut back to its size (one warp per image)."""
    return images if scale == 1.0 else _warped(images, scale, 0.0, 0.0)


def _window_energy(images: np.ndarray, m: int) -> np.ndarray:
    """Sum of squares of every m x m window of each image: (R, t - m + 1, t - m + 1)."""
    sq = np.pad(images.astype(np.float64) ** 2, ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)
    return sq[:, m:, m:] - sq[:, :-m, m:] - sq[:, m:, :-m] + sq[:, :-m, :-m]


def _templates(images: np.ndarray, scale: float, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Conjugate spectra of the zoomed images' centre crops (zero-padded to full size) and their energies."""
    t = images.shape[1]
    m = t - 2 * shift
    crop = _zoomed(images, scale)[:, shift : t - shift, shift : t - shift]
    padded = np.zeros((len(images), t, t), np.float32)
    padded[:, :m, :m] = crop
    return np.conj(np.fft.rfft2(padded)), (crop.astype(np.float64) ** 2).sum((1, 2))


def _correlate(spec_t, energy_t, views, searched: np.ndarray, mirrored: np.ndarray, shift: int) -> np.ndarray:
    """Best normalized correlation of each template with its searched image, plain or mirrored view
    (``views[v]`` = spectra, window energies and each searched image's position in them)."""
    out = np.empty(len(searched))
    side = spec_t.shape[1]  # spectra are (side, side // 2 + 1)
    for view in (0, 1):
        sel = mirrored == bool(view)
        if sel.any():
            spec_i, energy_i, index = views[view]
            where = index[searched[sel]]
            corr = np.fft.irfft2(spec_t[sel] * spec_i[where], s=(side, side))[:, : 2 * shift + 1, : 2 * shift + 1]
            norm = np.sqrt(energy_t[sel][:, None, None] * energy_i[where]) + 1e-6
            out[sel] = (corr / norm).reshape(sel.sum(), -1).max(1)
    return out


def best_correlations(images: np.ndarray, pairs: np.ndarray, mirrored: np.ndarray, shift: int,
                      floor: float = NCC_FLOOR, searched_images: np.ndarray | None = None,
                      chunk: int = 8192) -> np.ndarray:
    """For each pair (i, j) of zero-mean gray ``images``: the best normalized cross-correlation of i
    with j (mirrored where ``mirrored``) over shifts up to ``shift`` pixels, and — for pairs already
    close (ZOOM_FROM) — of i zoomed in or out by ZOOMS (crops). Correlations at every shift come from
    one FFT product per pair and view, in batches of ``chunk`` pairs (bounded memory); spectra are
    computed once per chunk for the templates (first images) and searched images (second images)."""
    m = images.shape[1] - 2 * shift
    searched_images = images if searched_images is None else searched_images
    scores = np.full(len(pairs), -1.0)
    for start in range(0, len(pairs), chunk):
        part, flip = pairs[start : start + chunk], mirrored[start : start + chunk].astype(bool)
        firsts, first_of = np.unique(part[:, 0], return_inverse=True)
        seconds, second_of = np.unique(part[:, 1], return_inverse=True)
        views = []
        for view in (False, True):  # the searched images as they are and mirrored, where a pair needs it
            need = np.zeros(len(seconds), bool)
            need[second_of[flip == view]] = True
            searched = searched_images[seconds[need]]
            searched = searched[:, :, ::-1] if view else searched
            index = np.cumsum(need) - 1
            views.append((np.fft.rfft2(searched), _window_energy(searched, m), index))
        spec, energy = _templates(images[firsts], 1.0, shift)
        best = _correlate(spec[first_of], energy[first_of], views, second_of, flip, shift)
        close = np.flatnonzero((best >= ZOOM_FROM) & (best < floor))
        if len(close):
            zoom_rows, zoom_of = np.unique(first_of[close], return_inverse=True)
            for scale in ZOOMS:  # a crop is a zoom: tried where the plain match is already close
                spec_z, energy_z = _templates(images[firsts[zoom_rows]], scale, shift)
                zoomed = _correlate(spec_z[zoom_of], energy_z[zoom_of], views, second_of[close], flip[close], shift)
                best[close] = np.maximum(best[close], zoomed)
        scores[start : start + len(part)] = best
    return scores


def best_per_pair(candidates: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pairs, scores, mirrored): each pair once, sorted, with its better orientation's score."""
    order = np.lexsort((-scores, candidates[:, 1], candidates[:, 0]))  # best first within each pair
    candidates, scores = candidates[order], scores[order]
    first = np.ones(len(candidates), bool)
    first[1:] = np.any(candidates[1:, :2] != candidates[:-1, :2], axis=1)
    return candidates[first, :2], scores[first], candidates[first, 2].astype(bool)


def stands_out_mask(pairs: np.ndarray, scores: np.ndarray, flips: np.ndarray, floor: float,
                    stands_out: float) -> np.ndarray:
    """Pairs that correlate at least ``floor`` and stand out from both images' other look-alikes
    (mirror copies must be otherwise identical)."""
    keep = (scores >= floor) & ((1 - scores) <= stands_out * (1 - crowd_scores(pairs, scores)))
    return keep & (~flips | (scores >= MIRROR_AT_LEAST))


def top_ranked(pairs: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the pairs that are among the ``k`` best-scoring pairs of either of their images."""
    ends = np.concatenate([pairs[:, 0], pairs[:, 1]])
    pair_of = np.tile(np.arange(len(pairs)), 2)
    order = np.lexsort((-np.concatenate([scores, scores]), ends))
    ends, pair_of = ends[order], pair_of[order]
    starts = np.r_[0, np.flatnonzero(ends[1:] != ends[:-1]) + 1]
    rank = np.arange(len(ends)) - np.repeat(starts, np.diff(np.r_[starts, len(ends)]))
    return np.unique(pair_of[rank < k])


def _warped(images: np.ndarray, scale: float, dx: float, dy: float) -> np.ndarray:
    """Each image zoomed by ``scale`` about its centre and moved by (dx, dy) pixels (sub-pixel)."""
    t = images.shape[1]
    c = (t - 1) / 2
    m = np.float32([[scale, 0, c - scale * c + dx], [0, scale, c - scale * c + dy]])
    return np.stack([cv2.warpAffine(g, m, (t, t), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for g in images])


def refined_correlations(images: np.ndarray, pairs: np.ndarray, mirrored: np.ndarray, shift: int) -> np.ndarray:
    """Best correlation of each pair over a finer grid: REFINE_ZOOMS x half-pixel offsets of the first
    image, every whole-pixel shift up to ``shift`` (a crop of 5-10% resized back is a zoom of 5-11% plus
    a shift that is rarely a whole pixel; at 28-32 px half a pixel off costs more than a look-alike)."""
    t = images.shape[1]
    m = t - 2 * shift
    searched = images[pairs[:, 1]]
    searched = np.where(mirrored[:, None, None], searched[:, :, ::-1], searched)
    spec, energy = np.fft.rfft2(searched), _window_energy(searched, m)
    first = images[pairs[:, 0]]
    best = np.full(len(pairs), -1.0)
    for scale in REFINE_ZOOMS:
        for dx, dy in ((0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5)):
            crop = _warped(first, scale, dx, dy)[:, shift : t - shift, shift : t - shift]
            padded = np.zeros((len(first), t, t), np.float32)
            padded[:, :m, :m] = crop
            corr = np.fft.irfft2(np.conj(np.fft.rfft2(padded)) * spec, s=(t, t))[:, : 2 * shift + 1, : 2 * shift + 1]
            norm = np.sqrt((crop.astype(np.float64) ** 2).sum((1, 2))[:, None, None] * energy) + 1e-6
            best = np.maximum(best, (corr / norm).reshape(len(first), -1).max(1))
    return best


def _scored(images: np.ndarray, candidates: np.ndarray, shift: int, floor: float,
            searched_images: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pairs, scores, mirrored) of the candidates; pairs close to ``floor`` and among each image's
    REFINE_TOP best get the finer zoom and offset search (a copy and the best look-alikes alike, so
    standing out stays a fair comparison)."""
    scores = best_correlations(images, candidates[:, :2], candidates[:, 2], shift, floor, searched_images)
    pairs, scores, flips = best_per_pair(candidates, scores)
    rows = top_ranked(pairs, scores, REFINE_TOP)
    rows = rows[(scores[rows] >= REFINE_FROM) & (scores[rows] < MIRROR_AT_LEAST)]
    if len(rows) and searched_images is None:
        for start in range(0, len(rows), 8192):  # bounded memory
            part = rows[start : start + 8192]
            refined = refined_correlations(images, pairs[part], flips[part], shift)
            # a finer search flatters look-alikes too: it counts only where it finds a near-exact match
            scores[part] = np.where(refined >= REFINED_FLOOR, np.maximum(scores[part], refined), scores[part])
    return pairs, scores, flips


def low_pass(gray: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(g, (0, 0), sigma) for g in gray]) if len(gray) else gray


def verify(thumbs: np.ndarray, gray: np.ndarray, candidates: np.ndarray, floor: float = NCC_FLOOR,
           stands_out: float = STANDS_OUT) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pairs, kept mask, best correlation, mirrored) for ``candidates`` (i, j, mirrored) rows; a pair
    proposed both as it is and mirrored keeps its better match."""
    t = gray.shape[1]
    shift = max(2, round(t / 10))
    # zero-mean gray: a brighter or more contrasted copy still correlates perfectly (colour is checked below)
    images = gray - gray.mean((1, 2), keepdims=True)
    pairs, scores, flips = _scored(images, candidates, shift, floor)
    keep = stands_out_mask(pairs, scores, flips, floor, stands_out)
    if LOW_PASS and len(candidates):
        # a copy shrunk and enlarged back (or upscaled from a crop) lost its fine detail: blur only the
        # sharper image of the pair to match (blurring both would make every look-alike match too)
        # (only each image's few best pairs, already close; the others keep their plain score, a fair
        # stand-in for the crowd, and verification time stays a small multiple of the plain pass)
        n = int(candidates[:, :2].max()) + 1
        keys = pairs[:, 0] * n + pairs[:, 1]
        wanted = np.zeros(len(pairs), bool)
        wanted[top_ranked(pairs, scores, LOW_PASS_TOP)] = True
        wanted &= scores >= LOW_PASS_FROM
        close = candidates[wanted[np.searchsorted(keys, candidates[:, 0] * n + candidates[:, 1])]]
        soft_scores, soft_flips = scores.copy(), flips.copy()
        if len(close):
            soft = low_pass(images, LOW_PASS)
            soft_pairs, blurred_first, first_flips = _scored(soft, close, shift, LOW_PASS_FLOOR, images)
            _, blurred_second, second_flips = _scored(images, close, shift, LOW_PASS_FLOOR, soft)
            at = np.searchsorted(keys, soft_pairs[:, 0] * n + soft_pairs[:, 1])
            soft_scores[at] = np.maximum(np.maximum(blurred_first, blurred_second), scores[at])
            soft_flips[at] = np.where(blurred_second > blurred_first, second_flips, first_flips)
        soft_keep = stands_out_mask(pairs, soft_scores, soft_flips, LOW_PASS_FLOOR, stands_out)
        use = soft_keep & ~keep
        keep |= soft_keep
        scores, flips = np.where(use, soft_scores, scores), np.where(use, soft_flips, flips)
    if len(pairs):  # brightness and contrast within what a re-exposure changes (about ±20%)
        mean, std = gray.mean((1, 2)), gray.std((1, 2)) + 2.0
        a, b = pairs[:, 0], pairs[:, 1]
        keep &= np.abs(mean[a] - mean[b]) <= 0.2 * np.maximum(mean[a], mean[b]) + 8.0
        keep &= np.abs(np.log(std[a] / std[b])) <= np.log(1.3)
    if thumbs.shape[-1] == 3 and len(pairs):
        means = thumbs.reshape(len(thumbs), -1, 3)[pairs.ravel()].mean(1).reshape(len(pairs), 2, 3) + 1.0
        chroma = means / means.sum(-1, keepdims=True)
        keep &= np.abs(chroma[:, 0] - chroma[:, 1]).max(-1) <= HUE_DIFF
        # the object's own hue too (the background dominates the means): a re-exposure keeps it,
        # a red and an orange ball of one shape differ
        objects = object_colours(thumbs[pairs.ravel()]).reshape(len(pairs), 2, 3) + 1.0
        hue = objects / objects.sum(-1, keepdims=True)
        keep &= np.abs(hue[:, 0] - hue[:, 1]).max(-1) <= OBJECT_HUE_DIFF
    return pairs, keep, scores, flips


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
    """Per pair (a, b): how well the more crowded-looking side's best *other* neighbour matches — the
    smaller of a's best score without b and b's best score without a (copies above EXACT left out;
    ``sparse`` when an image has no other candidate). Vectorized: each image's two best scores."""
    n = int(pairs.max()) + 1 if len(pairs) else 0
    ends = np.concatenate([pairs[:, 0], pairs[:, 1]])
    partner = np.concatenate([pairs[:, 1], pairs[:, 0]])
    value = np.concatenate([scores, scores])
    value = np.where(value < EXACT, value, -np.inf)
    order = np.lexsort((-value, ends))  # per image, best first
    ends, partner, value = ends[order], partner[order], value[order]
    first = np.ones(len(ends), bool)
    first[1:] = ends[1:] != ends[:-1]
    best_val, best_to = np.full(n, -np.inf), np.full(n, -1)
    second_val = np.full(n, -np.inf)
    best_val[ends[first]], best_to[ends[first]] = value[first], partner[first]
    second = np.zeros(len(ends), bool)
    second[1:] = first[:-1] & ~first[1:]
    second_val[ends[second]] = value[second]

    def other(i, j):
        v = np.where(best_to[i] == j, second_val[i], best_val[i])
        return np.where(np.isfinite(v), v, sparse)

    return np.minimum(other(pairs[:, 0], pairs[:, 1]), other(pairs[:, 1], pairs[:, 0]))
