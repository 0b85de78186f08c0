"""Splits: the hold-out size rule, stratified and seeded, and stratified k-fold.

Size rule (from the data-curation material): under 1,000 images hold out 20%, under 10,000 hold out
10%, otherwise 5%. A source that is already split keeps its split.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pixelforge.data.manifest import Manifest


def holdout_fraction(n_images: int) -> float:
    if n_images < 1_000:
        return 0.20
    if n_images < 10_000:
        return 0.10
    return 0.05


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout): each class contributes ``round(fraction * size)`` images, at least
    one when it has two or more, so every class is seen on both sides."""
    if not 0 < fraction < 1:
        raise ValueError(f"hold-out fraction must be between 0 and 1, got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        k = int(round(fraction * len(members)))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        held.append(members[:k])
    holdout = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[holdout] = False
    return np.flatnonzero(mask), holdout


def train_test_split(
    manifest: Manifest, test_size: float | None = None, seed: int = 0, holdout_name: str = "test"
) -> tuple[Manifest, Manifest]:
    """(train, held-out) Manifests. A pre-split source keeps its split: train is "train", the held-out
    part is ``holdout_name`` (falling back to "validation"/"test"). Otherwise a stratified seeded split
    with the size rule's fraction unless ``test_size`` is given."""
    if manifest.is_split and "train" in manifest.split_names:
        names = [holdout_name, "validation", "test"]
        other = next((n for n in names if n in manifest.split_names), None)
        if other is not None:
            return manifest.split("train"), manifest.split(other)
        manifest = manifest.split("train")
    fraction = holdout_fraction(len(manifest)) if test_size is None else test_size
    train_idx, test_idx = stratified_holdout(np.asarray(manifest.labels), fraction, seed)
    return manifest.subset(train_idx), manifest.subset(test_idx)


def assign_splits(manifest: Manifest, seed: int = 0, test_size: float | None = None) -> Manifest:
    """A copy whose rows carry a "train"/"test" split (kept as is when the source was split)."""
    if manifest.is_split:
        return manifest
    fraction = holdout_fraction(len(manifest)) if test_size is None else test_size
    _, test_idx = stratified_holdout(np.asarray(manifest.labels), fraction, seed)
    splits = np.array(["train"] * len(manifest), dtype=object)
    splits[test_idx] = "test"
    return manifest.with_splits(list(splits))


class StratifiedKFold:
    """Stratified k-fold over a Manifest, shuffled with a seed, yielding (train, validation) pairs."""

    def __init__(self, n_splits: int = 5, shuffle: bool = True, seed: int = 0):
        if n_splits < 2:
            raise ValueError(f"n_splits must be at least 2, got {n_splits}")
        self.n_splits, self.shuffle, self.seed = n_splits, shuffle, seed

    def fold_indices(self, labels) -> list[np.ndarray]:
        """Validation indices per fold: each class dealt round-robin across folds."""
        labels = np.asarray(labels)
        rng = np.random.default_rng(self.seed)
        folds: list[list[int]] = [[] for _ in range(self.n_splits)]
        offset = 0
        for cls in np.unique(labels):
            members = np.flatnonzero(labels == cls)
            if self.shuffle:
                rng.shuffle(members)
            for j, i in enumerate(members):
                folds[(j + offset) % self.n_splits].append(int(i))
            offset += len(members)  # keeps fold sizes balanced across classes
        return [np.sort(np.asarray(f, dtype=np.int64)) for f in folds]

    def split_indices(self, labels) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(labels)
        for val in self.fold_indices(labels):
            mask = np.ones(n, dtype=bool)
            mask[val] = False
            yield np.flatnonzero(mask), val

    def split(self, manifest: Manifest) -> Iterator[tuple[Manifest, Manifest]]:
        for train_idx, val_idx in self.split_indices(manifest.labels):
            yield manifest.subset(train_idx), manifest.subset(val_idx)
