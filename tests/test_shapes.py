"""The synthetic shapes generator: seeded, parameterised, and honest about what it injected."""

from __future__ import annotations

import numpy as np
import pytest

from pixelforge.datasets import make_shapes
from pixelforge.datasets.shapes import DEFECTS
from pixelforge.errors import PixelforgeError


def test_same_seed_gives_the_same_images_and_labels():
    a, b = make_shapes(20, seed=3, **DEFECTS), make_shapes(20, seed=3, **DEFECTS)
    assert np.array_equal(a.manifest.storage.images, b.manifest.storage.images)
    assert a.manifest.labels == b.manifest.labels and a.truth == b.truth
    c = make_shapes(20, seed=4)
    assert not np.array_equal(a.manifest.storage.images[:10], c.manifest.storage.images[:10])


def test_clean_shapes_are_balanced_split_rgb_images():
    manifest, truth = make_shapes(30, classes=("circle", "star"), size=48, seed=0)
    assert manifest.class_counts() == {"circle": 30, "star": 30}
    assert manifest.counts_by_split()["test"] == {"circle": 6, "star": 6}
    assert manifest.load(0).shape == (48, 48, 3)
    assert all(not v for v in truth.values())


def test_injected_defects_are_recorded_and_disjoint():
    data = make_shapes(60, seed=1, **DEFECTS)
    m, truth = data.manifest, data.truth
    images = m.storage.images
    assert len(truth["label_errors"]) == round(0.05 * (60 * 3 + 5))
    for loc in truth["label_errors"]:  # flipped labels differ from the true class
        assert m.labels[int(loc)] != data.true_labels[loc]
    exact = [int(i) for i in truth["exact_duplicates"]]
    digests = {images[i].tobytes() for i in exact}
    assert len(digests) == len(exact) // 2  # every exact copy has exactly one original
    cross = [int(i) for i in truth["cross_split_duplicates"]]
    assert {m.splits[i] for i in cross} == {"train", "test"}
    dark = [int(i) for i in truth["dark"]]
    assert images[dark].mean() < 0.35 * images.mean()
    assert truth["imbalance"] == ["cross"] and 5 <= m.class_counts()["cross"] <= 8  # 8% (+ copies)
    assert truth["background_shortcut"] == ["triangle"]
    kinds = ["label_errors", "dark", "blurry", "near_duplicates"]
    seen = [set(truth[k]) for k in kinds]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1 :])


def test_write_to_makes_a_train_test_tree_with_broken_files(tmp_path):
    data = make_shapes(10, seed=0, corrupt=3, wrong_extension=2, write_to=tmp_path / "shapes")
    m = data.manifest
    assert m.layout == "directory" and set(m.split_names) == {"train", "test"}
    assert len(m) == 40 + 3
    assert (tmp_path / "shapes" / data.truth["corrupt"][0]).stat().st_size == 0
    assert all(loc.endswith(".jpg") for loc in data.truth["wrong_extension"])
    assert (tmp_path / "shapes" / data.truth["wrong_extension"][0]).read_bytes()[:4] == b"\x89PNG"


def test_bad_parameters_are_refused():
    with pytest.raises(PixelforgeError, match="unknown shape"):
        make_shapes(10, classes=("circle", "blob"))
    with pytest.raises(PixelforgeError, match="write_to"):
        make_shapes(10, corrupt=2)
