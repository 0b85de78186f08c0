"""The one split policy, used by train, cv, evaluate, the wild suite, convert and the experiments:

1. a source that is already split keeps its split;
2. otherwise a seeded, stratified hold-out by the size rule (from the data-curation material):
   under 1,000 images hold out 20%, under 10,000 hold out 10%, otherwise 5%;
3. k-fold cross-validation with scikit-learn's StratifiedKFold (StratifiedGroupKFold with ``groups``).

With ``groups`` (one id per image, e.g. the photographer), no group spans two parts; ``group_column``
names a metadata column of the Manifest to take them from (``group_ids``). The Keras drop-in
alone keeps Keras' own rule (the first ``validation_split`` of the files), for parity with Keras.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from pixelforge.data.manifest import Manifest
from pixelforge.errors import ParameterError, PixelforgeError


def holdout_fraction(n_images: int) -> float:
    if n_images < 1_000:
        return 0.20
    if n_images < 10_000:
        return 0.10
    return 0.05


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int = 0,
                       groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout): each class contributes ``round(fraction * size)`` images, at least
    one when it has two or more, so every class is seen on both sides. With ``groups``, whole groups
    are held out (one fold of a stratified group k-fold with about ``1 / fraction`` folds)."""
    if not 0 < fraction < 1:
        raise ParameterError(f"hold-out fraction must be between 0 and 1, got {fraction}")
    labels = np.asarray(labels)
    if groups is not None:
        return _group_holdout(labels, np.asarray(groups), fraction, seed)
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


def _group_holdout(labels, groups, fraction, seed) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedGroupKFold

    if len(groups) != len(labels):
        raise ParameterError(f"{len(groups)} group ids for {len(labels)} images")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ParameterError("a group-aware split needs at least two groups")
    folds = int(min(max(2, round(1 / fraction)), n_groups))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    train, held = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train), np.sort(held)


def group_ids(manifest: Manifest, group_column: str | None) -> np.ndarray | None:
    """One integer group id per row from the metadata column ``group_column`` (None gives None).

    Rows with an empty value each get a group of their own (they can go anywhere), noted on the manifest."""
    if group_column is None:
        return None
    if group_column not in manifest.metadata:
        columns = ", ".join(manifest.metadata) or "none (only tables such as CSV, JSON and DataFrames have them)"
        raise ParameterError(f"{manifest.source or 'data'}: no metadata column {group_column!r} to group by; "
                             f"the metadata columns are: {columns}")
    values = np.asarray(manifest.metadata[group_column], dtype=object)
    _, ids = np.unique(values, return_inverse=True)
    ids = ids.astype(np.int64).reshape(-1)
    empty = values == ""
    if empty.any():
        ids[empty] = ids.max() + 1 + np.arange(int(empty.sum()))
        note = f"{int(empty.sum()):,} image(s) have no {group_column!r} value; each is a group of its own"
        if note not in manifest.notes:
            manifest.notes.append(note)
    return ids


def _groups(manifest: Manifest, groups, group_column: str | None):
    if groups is not None and group_column is not None:
        raise ParameterError("give groups= or group_column=, not both")
    return group_ids(manifest, group_column) if group_column is not None else groups


def train_test_split(
    manifest: Manifest, test_size: float | None = None, seed: int = 0, holdout_name: str = "test", groups=None,
    group_column: str | None = None,
) -> tuple[Manifest, Manifest]:
    """(train, held-out) Manifests. A pre-split source keeps its split: train is "train", the held-out
    part is ``holdout_name`` (falling back to "validation"/"test"). Otherwise a stratified seeded split
    with the size rule's fraction unless ``test_size`` is given (group-aware with ``groups`` or
    ``group_column``)."""
    groups = _groups(manifest, groups, group_column)
    train_rows, held_rows, _ = train_test_rows(manifest, test_size, seed, holdout_name, groups)
    return manifest.subset(train_rows), manifest.subset(held_rows)


def train_test_rows(manifest: Manifest, test_size: float | None = None, seed: int = 0, holdout_name: str = "test",
                    groups=None) -> tuple[np.ndarray, np.ndarray, str]:
    """Row numbers of :func:`train_test_split`'s two parts, and the held-out part's name (a split's
    name, or "hold-out")."""
    pool = np.arange(len(manifest))
    if manifest.is_split and "train" in manifest.split_names:
        names = [holdout_name, "validation", "test"]
        other = next((n for n in names if n in manifest.split_names), None)
        if other is not None:
            return manifest_rows(manifest, "train"), manifest_rows(manifest, other), other
        pool = manifest_rows(manifest, "train")
    fraction = holdout_fraction(len(pool)) if test_size is None else test_size
    pool_groups = None if groups is None else np.asarray(groups)[pool]
    train_idx, test_idx = stratified_holdout(np.asarray(manifest.labels)[pool], fraction, seed, pool_groups)
    return pool[train_idx], pool[test_idx], "hold-out"


def assign_splits(manifest: Manifest, seed: int = 0, test_size: float | None = None, groups=None,
                  group_column: str | None = None) -> Manifest:
    """A copy whose rows carry a "train"/"test" split (kept as is when the source was split)."""
    groups = _groups(manifest, groups, group_column)  # an unknown column is an error even when unused
    if manifest.is_split:
        return manifest
    fraction = holdout_fraction(len(manifest)) if test_size is None else test_size
    _, test_idx = stratified_holdout(np.asarray(manifest.labels), fraction, seed, groups)
    splits = np.array(["train"] * len(manifest), dtype=object)
    splits[test_idx] = "test"
    return manifest.with_splits(list(splits))


def manifest_rows(manifest: Manifest, split: str) -> np.ndarray:
    """Row numbers of one split (for per-row arrays such as group ids)."""
    return np.flatnonzero([s == split for s in manifest.splits])


def train_validation_test(manifest: Manifest, seed: int = 0, groups=None,
                          group_column: str | None = None) -> tuple[Manifest, Manifest, Manifest | None, str]:
    """(train, validation, test or None, explanation) for training with model selection.

    A source's own train/validation/test splits are kept. Without a validation split, a seeded
    stratified hold-out of the training part (the size rule) becomes the validation set, so the test
    split stays untouched by model selection (checkpoint-best, early stopping) and its score honest.
    With ``groups`` / ``group_column`` that hold-out keeps every group on one side."""
    groups = _groups(manifest, groups, group_column)
    names = manifest.split_names
    test = manifest.split("test") if "test" in names else None
    if "train" in names and "validation" in names:
        return manifest.split("train"), manifest.split("validation"), test, "the source's train/validation splits"
    pool_rows = manifest_rows(manifest, "train") if "train" in names else manifest_rows(manifest, "")
    if len(pool_rows) == 0:
        raise PixelforgeError(f"{manifest.source or 'data'}: no training images (splits: {names or 'none'})")
    pool = manifest.subset(pool_rows)
    fraction = holdout_fraction(len(pool))
    pool_groups = None if groups is None else np.asarray(groups)[pool_rows]
    train, validation = train_test_split(pool.with_splits([""] * len(pool)), seed=seed, groups=pool_groups)
    how = f"a stratified {fraction:.0%} hold-out of the training images (seed {seed}) as validation"
    if groups is not None:
        how += f", {'by ' + repr(group_column) if group_column else 'by group'} (no group on both sides)"
    return train, validation, test, how


def held_out_part(manifest: Manifest) -> tuple[Manifest, str]:
    """The part held out to test on: the 'test' split, else 'validation', else the whole manifest."""
    for name in ("test", "validation"):
        if name in manifest.split_names:
            return manifest.split(name), name
    return manifest, "all"


class StratifiedKFold:
    """Stratified k-fold over a Manifest or labels, shuffled with a seed: scikit-learn's
    StratifiedKFold, or StratifiedGroupKFold when ``groups`` are given (no group in two folds)."""

    def __init__(self, n_splits: int = 5, shuffle: bool = True, seed: int = 0):
        if n_splits < 2:
            raise ParameterError(f"n_splits must be at least 2, got {n_splits}")
        self.n_splits, self.shuffle, self.seed = n_splits, shuffle, seed

    def split_indices(self, labels, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from sklearn import model_selection

        labels = np.asarray(labels)
        counts = np.unique(labels, return_counts=True)[1]
        if len(counts) and counts.max() < self.n_splits:
            raise ParameterError(f"{self.n_splits} folds need a class with at least {self.n_splits} images; "
                                 f"the largest has {counts.max()}")
        seed = self.seed if self.shuffle else None
        if groups is None:
            splitter = model_selection.StratifiedKFold(self.n_splits, shuffle=self.shuffle, random_state=seed)
            parts = splitter.split(np.zeros(len(labels)), labels)
        else:
            splitter = model_selection.StratifiedGroupKFold(self.n_splits, shuffle=self.shuffle, random_state=seed)
            parts = splitter.split(np.zeros(len(labels)), labels, np.asarray(groups))
        with warnings.catch_warnings():  # "the least populated class has only n members": folds still valid
            warnings.filterwarnings("ignore", message=".*least populated class.*", category=UserWarning)
            parts = list(parts)
        for train, val in parts:
            yield np.sort(train), np.sort(val)

    def fold_indices(self, labels, groups=None) -> list[np.ndarray]:
        """Validation indices per fold."""
        return [val for _, val in self.split_indices(labels, groups)]

    def split(self, manifest: Manifest, groups=None) -> Iterator[tuple[Manifest, Manifest]]:
        for train_idx, val_idx in self.split_indices(manifest.labels, groups):
            yield manifest.subset(train_idx), manifest.subset(val_idx)
