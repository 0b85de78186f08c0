"""Splits: the size rule, stratified and seeded hold-outs, pre-split sources, stratified k-fold."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pixelforge.data.locations import ArrayStorage
from pixelforge.data.manifest import Manifest
from pixelforge.data.split import (
    StratifiedKFold,
    assign_splits,
    holdout_fraction,
    stratified_holdout,
    train_test_split,
)


def _manifest(counts: dict[str, int], splits=None) -> Manifest:
    labels = [name for name, n in counts.items() for _ in range(n)]
    return Manifest([str(i) for i in range(len(labels))], labels, ArrayStorage(np.zeros((len(labels), 1, 1))),
                    splits=splits)


@pytest.mark.parametrize(("n", "fraction"), [(10, 0.2), (999, 0.2), (1_000, 0.1), (9_999, 0.1),
                                             (10_000, 0.05), (70_000, 0.05)])
def test_size_rule(n, fraction):
    assert holdout_fraction(n) == fraction


@pytest.mark.parametrize(("n", "held"), [(500, 100), (5_000, 500), (20_000, 1_000)])
def test_default_split_follows_the_size_rule(n, held):
    m = _manifest({"a": n // 2, "b": n - n // 2})
    train, test = train_test_split(m, seed=0)
    assert len(test) == held and len(train) == n - held


def test_split_is_stratified():
    m = _manifest({"a": 600, "b": 300, "c": 100})
    train, test = train_test_split(m, test_size=0.2, seed=4)
    assert test.class_counts() == {"a": 120, "b": 60, "c": 20}
    assert train.class_counts() == {"a": 480, "b": 240, "c": 80}
    assert train.classes == test.classes == m.classes


def test_every_class_with_two_images_appears_on_both_sides():
    train_idx, hold_idx = stratified_holdout(np.array(["a"] * 50 + ["rare"] * 2), 0.05, seed=0)
    labels = np.array(["a"] * 50 + ["rare"] * 2)
    assert "rare" in set(labels[hold_idx]) and "rare" in set(labels[train_idx])


def test_split_is_seeded():
    m = _manifest({"a": 100, "b": 100})
    first = train_test_split(m, seed=7)[1].locations
    assert train_test_split(m, seed=7)[1].locations == first
    assert train_test_split(m, seed=8)[1].locations != first


def test_train_and_test_are_disjoint_and_cover_everything():
    m = _manifest({"a": 37, "b": 21})
    train, test = train_test_split(m, seed=1)
    assert not set(train.locations) & set(test.locations)
    assert sorted(train.locations + test.locations, key=int) == m.locations


def test_pre_split_source_keeps_its_split():
    splits = ["train"] * 8 + ["test"] * 2 + ["train"] * 8 + ["test"] * 2
    m = _manifest({"a": 10, "b": 10}, splits=splits)
    train, test = train_test_split(m, seed=123)
    assert test.locations == ["8", "9", "18", "19"]
    assert assign_splits(m, seed=5).splits == m.splits


def test_pre_split_validation_folder_is_the_holdout():
    m = _manifest({"a": 4}, splits=["train", "train", "validation", "validation"])
    train, held = train_test_split(m)
    assert held.split_names == ["validation"] and len(train) == 2


def test_train_only_source_is_split_inside_train():
    m = _manifest({"a": 10, "b": 10}, splits=["train"] * 20)
    train, test = train_test_split(m, seed=0)
    assert len(test) == 4 and len(train) == 16  # 20% of 20


def test_assign_splits_marks_rows():
    m = _manifest({"a": 50, "b": 50})
    out = assign_splits(m, seed=0)
    assert Counter(out.splits) == {"train": 80, "test": 20}
    assert out.counts_by_split()["test"] == {"a": 10, "b": 10}


def test_bad_fraction():
    with pytest.raises(ValueError, match="between 0 and 1"):
        stratified_holdout(np.array(["a", "b"]), 1.5)


def test_kfold_folds_are_disjoint_cover_everything_and_are_stratified():
    m = _manifest({"a": 50, "b": 30, "c": 20})
    folds = list(StratifiedKFold(5, seed=0).split(m))
    assert len(folds) == 5
    vals = [set(val.locations) for _, val in folds]
    assert set().union(*vals) == set(m.locations) and sum(len(v) for v in vals) == len(m)
    for train, val in folds:
        assert not set(train.locations) & set(val.locations)
        assert len(train) + len(val) == len(m)
        assert val.class_counts() == {"a": 10, "b": 6, "c": 4}


def test_kfold_fold_sizes_stay_balanced_with_small_classes():
    labels = np.array(["a"] * 7 + ["b"] * 7 + ["c"] * 7)
    sizes = [len(v) for v in StratifiedKFold(5, seed=0).fold_indices(labels)]
    assert max(sizes) - min(sizes) <= 1


def test_kfold_is_seeded_and_shuffled():
    labels = np.array(["a"] * 20 + ["b"] * 20)
    first = [v.tolist() for _, v in StratifiedKFold(4, seed=1).split_indices(labels)]
    assert [v.tolist() for _, v in StratifiedKFold(4, seed=1).split_indices(labels)] == first
    assert [v.tolist() for _, v in StratifiedKFold(4, seed=2).split_indices(labels)] != first
    unshuffled = [v.tolist() for _, v in StratifiedKFold(4, shuffle=False).split_indices(labels)]
    assert unshuffled[0] == [0, 1, 2, 3, 4, 20, 21, 22, 23, 24]  # scikit-learn's unshuffled order


def test_kfold_is_scikit_learns_stratified_kfold():
    from sklearn.model_selection import StratifiedKFold as SklearnKFold

    labels = np.array(["a"] * 13 + ["b"] * 9 + ["c"] * 5)
    ours = [v.tolist() for _, v in StratifiedKFold(3, seed=4).split_indices(labels)]
    theirs = [sorted(v.tolist()) for _, v in SklearnKFold(3, shuffle=True, random_state=4).split(labels, labels)]
    assert ours == theirs


def test_group_kfold_never_puts_one_group_in_two_folds():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 5)  # 40 senders, 5 photos each
    labels = np.where(rng.random(40) < 0.5, "a", "b")[groups]
    folds = list(StratifiedKFold(4, seed=1).split_indices(labels, groups))
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(200))
    for train, val in folds:
        assert not set(groups[train]) & set(groups[val])


def test_group_holdout_keeps_groups_whole_and_follows_the_size_rule():
    groups = np.repeat(np.arange(100), 5)
    m = _manifest({"a": 250, "b": 250})
    train, test = train_test_split(m, seed=3, groups=groups)
    held = {int(loc) for loc in test.locations}
    assert not set(groups[sorted(held)]) & set(groups[[int(loc) for loc in train.locations]])
    assert 0.1 <= len(test) / len(m) <= 0.3  # about the size rule's 20% (whole groups of 5)


def test_kfold_needs_two_folds():
    with pytest.raises(ValueError, match="at least 2"):
        StratifiedKFold(1)
