"""Duplicates: exact (same content hash), near (survive shifts, brightness, JPEG, resizing, small crops
and flips; see ``audit.near``), and duplicates that cross splits (train/test leakage, an error); with a
group column (e.g. the sender of each photo), groups that cross splits are the same kind of leakage."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from pixelforge.audit.context import AuditContext
from pixelforge.audit.findings import Finding
from pixelforge.audit.near import (
    LOW_PASS_FLOOR,
    NCC_FLOOR,
    NEIGHBOURS,
    candidate_pairs,
    feature_pairs,
    gray_thumbs,
    verify,
)


def connected_groups(pairs) -> list[list[int]]:
    """Groups of rows joined by the (a, b) pairs (union-find), each sorted, ordered by first row."""
    parent: dict[int, int] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in np.asarray(pairs, np.int64).reshape(-1, 2).tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups = defaultdict(list)
    for x in parent:
        groups[find(x)].append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def group_leakage(ctx: AuditContext) -> list[Finding]:
    """Groups of the group column with images in more than one split: the test then holds the same
    people or objects the model was trained on, and its score says little about new ones."""
    if ctx.groups is None:
        return []
    splits_of = defaultdict(set)
    rows_of = defaultdict(list)
    for i in np.flatnonzero(ctx.splits != ""):
        splits_of[ctx.groups[i]].add(ctx.splits[i])
        rows_of[ctx.groups[i]].append(int(i))
    spanning = [rows_of[g] for g in rows_of if len(splits_of[g]) > 1]
    if not spanning:
        return []
    column, names = ctx.group_column, ctx.manifest.metadata[ctx.group_column]
    rows = sorted(i for group in spanning for i in group)
    examples = {}
    for group in spanning[:5]:
        per_split = Counter(str(ctx.splits[i]) for i in group)
        examples[names[group[0]]] = {s: per_split[s] for s in ctx.manifest.split_names if per_split[s]}
    shown = "; ".join(f"{name}: " + ", ".join(f"{n} in {s}" for s, n in counts.items())
                      for name, counts in examples.items())
    return [Finding(
        "duplicates", "group_leakage", "error",
        f"{len(spanning)} {column} group(s) span splits (train/test leakage)",
        f"{len(rows)} images of {len(spanning)} {column!r} group(s) are in more than one split, e.g. {shown}",
        f"Keep each {column} in one split: re-split group-aware (--group-column {column}, or "
        f"group_column={column!r} in the Python API), so the test measures new {column}s.",
        images=rows, groups=spanning, notes={i: f"{column} {names[i]}, {ctx.splits[i]}" for i in rows},
        values={"group_column": column, "groups": len(spanning), "images": len(rows), "examples": examples},
    )]


def check_duplicates(ctx: AuditContext) -> list[Finding]:
    scan, splits = ctx.scan, ctx.splits
    ok = np.flatnonzero(scan.ok)
    out: list[Finding] = group_leakage(ctx)
    by_hash = defaultdict(list)
    for i in ok:
        by_hash[scan.content[i]].append(int(i))
    exact_groups = [g for g in by_hash.values() if len(g) > 1]
    exact_pairs = [(g[0], j) for g in exact_groups for j in g[1:]]

    task = ctx.task("near duplicates", 2)
    gray = gray_thumbs(scan.thumbs)
    candidates = candidate_pairs(gray, ok, k=ctx.option("near_neighbours", NEIGHBOURS), seed=ctx.seed)
    features = ctx.backbone_features()
    if features is not None:  # photos: a backbone's neighbours find copies the thumbnails' embeddings miss
        extra = feature_pairs(features[ok], ok, k=ctx.option("near_neighbours", NEIGHBOURS))
        candidates = np.unique(np.concatenate([candidates, extra]), axis=0)
    if len(candidates):  # byte-identical pairs are exact duplicates, reported on their own
        same = np.array([scan.content[a] == scan.content[b] for a, b in candidates[:, :2].tolist()], bool)
        candidates = candidates[~same]
    ctx.advance(task)
    pairs, keep, scores, flips = verify(scan.thumbs, gray, candidates, ctx.option("near_correlation", NCC_FLOOR))
    near, near_score, near_flip = pairs[keep], scores[keep], flips[keep]
    ctx.extras["near_duplicates"] = {"candidates": int(len(pairs)), "confirmed": int(keep.sum())}
    ctx.advance(task)

    if exact_groups:
        rows = sorted({i for g in exact_groups for i in g})
        out.append(Finding(
            "duplicates", "exact", "warning",
            f"{len(exact_groups)} group(s) of identical images ({len(rows)} images)",
            f"{len(rows) - len(exact_groups)} image(s) are byte-for-byte copies of another",
            "Keep one image of each group; copies over-weight those images and inflate test scores.",
            images=rows, groups=exact_groups,
        ))
    if len(near):
        groups = connected_groups(near)
        rows = sorted({int(i) for g in groups for i in g})
        mirrored = {int(i) for pair in near[near_flip] for i in pair}
        out.append(Finding(
            "duplicates", "near", "warning",
            f"{len(groups)} group(s) of near-duplicate images ({len(rows)} images)",
            f"candidates from nearest neighbours of content-centred and plain embeddings"
            f"{' and of the backbone features' if features is not None else ''}, confirmed by a normalized cross-correlation over small shifts, zooms and a mirror "
            f"image of at least {NCC_FLOOR:g} ({LOW_PASS_FLOOR:g} with one image blurred, for copies that lost "
            f"their detail) that stands out from each image's other look-alikes (median "
            f"{np.median(near_score):.3f}); {len(mirrored)} image(s) are mirror copies",
            "Keep one image of each group unless the differences matter (e.g. deliberate variants).",
            images=rows, groups=groups,
            notes={i: "mirror image of another" for i in sorted(mirrored)},
            values={"pairs": int(len(near)), "floor": NCC_FLOOR, "mirrored_images": len(mirrored)},
        ))
    all_pairs = np.concatenate([np.asarray(exact_pairs, np.int64).reshape(-1, 2), near])
    if len(all_pairs):
        cross = all_pairs[
            (splits[all_pairs[:, 0]] != splits[all_pairs[:, 1]])
            & (splits[all_pairs[:, 0]] != "") & (splits[all_pairs[:, 1]] != "")
        ]
        if len(cross):
            groups = connected_groups(cross)
            rows = sorted({int(i) for g in groups for i in g})
            out.append(Finding(
                "duplicates", "cross_split", "error",
                f"{len(groups)} duplicate group(s) span splits (train/test leakage)",
                f"{len(rows)} images appear (exactly or nearly) in more than one split",
                "Remove the copies from the test/validation split; leaked images make scores look better than they are.",
                images=rows, groups=groups, notes={i: str(splits[i]) for i in rows},
            ))
    label_of = ctx.labels
    conflicts = [g for g in exact_groups if len({int(label_of[i]) for i in g}) > 1]
    if conflicts:
        rows = sorted({i for g in conflicts for i in g})
        out.append(Finding(
            "duplicates", "conflicting_labels", "error",
            f"{len(conflicts)} identical image group(s) with different labels",
            "the same image carries two or more labels",
            "Decide on the right label for each group and keep one copy.",
            images=rows, groups=conflicts, notes={i: ctx.classes[label_of[i]] for i in rows},
        ))
    return out
