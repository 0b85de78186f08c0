"""Near-duplicate diagnostics on the audit harness's data, without the full audit: for each edit, the
share of injected pairs that reach verification as candidates (candidate recall), the share confirmed
(recall), precision over every image flagged, and the correlations of the missed pairs.

    python -m bench.audit_near_diag fashion,cifar10,clothing5 rescale,crop,clean 0,1

Edits are those of bench.audit_inject.NEAR_EDITS, ``leak_jpeg`` / ``leak_shift`` (a test image copied
into train), or ``clean`` (nothing injected: every flagged image counts as false). Same subsets (3,000
train + 600 test images; all of clothing5) and injection seeds as ``python -m bench.audit --images 3000``;
thumbnails are made with one INTER_AREA resize instead of the audit's scan (32 px for clothing5)."""

from __future__ import annotations

import sys
import time

import cv2
import numpy as np

from bench.audit import DATASETS, load_dataset
from bench.audit_inject import KINDS, inject
from pixelforge.audit import near
from pixelforge.audit.checks.duplicates import connected_groups


def thumbs_of(images, side: int) -> np.ndarray:
    return np.stack([cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA).reshape(side, side, -1)
                     for im in images])


def run(name: str, base, edit: str, seed: int, side: int) -> str:
    if edit == "clean":
        data, truth = base, {"pairs": []}
    else:
        kind = "leak" if edit.startswith("leak_") else "near_duplicate"
        rng = np.random.default_rng([seed, KINDS.index(kind), DATASETS.index(name)])
        data, truth = inject(base, kind, edit.removeprefix("leak_"), rng)
    thumbs = thumbs_of(data.images, side)
    gray = near.gray_thumbs(thumbs)
    start = time.perf_counter()
    candidates = near.candidate_pairs(gray, np.arange(len(thumbs)), seed=seed)
    middle = time.perf_counter()
    pairs, keep, scores, _ = near.verify(thumbs, gray, candidates)
    end = time.perf_counter()
    truth_pairs = {tuple(sorted(p)) for p in truth["pairs"]}
    proposed = {tuple(p) for p in candidates[:, :2].tolist()}
    component = {r: k for k, g in enumerate(connected_groups(pairs[keep])) for r in g}
    found = [a in component and b in component and component[a] == component[b] for a, b in truth_pairs]
    members = {r for p in truth_pairs for r in p}
    flagged = set(component)
    score_of = dict(zip(map(tuple, pairs.tolist()), scores, strict=True))
    missed = sorted(round(float(score_of.get(p, -9)), 3) for p, ok in zip(truth_pairs, found, strict=True) if not ok)
    n = max(1, len(truth_pairs))
    return (f"{name:9s} {edit:16s} s{seed} candidates {sum(p in proposed for p in truth_pairs) / n:.2f} "
            f"recall {sum(found) / n:.2f} precision {len(members & flagged) / max(1, len(flagged)):.2f} "
            f"flagged {len(flagged)} false {len(flagged - members)} ({middle - start:.1f}+{end - middle:.1f} s) "
            f"missed (best correlation, -9 = never a candidate) {missed[:10]}")


def main(argv: list[str]) -> None:
    names, edits = argv[0].split(","), argv[1].split(",")
    seeds = [int(s) for s in (argv[2] if len(argv) > 2 else "0").split(",")]
    for name in names:
        base = load_dataset(name, 3000, 600, 0)
        side = 32 if name == "clothing5" else base.images[0].shape[0]
        for edit in edits:
            for seed in seeds:
                print(run(name, base, edit, seed, side), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
