"""HDF5 files as a layout: class groups, nested groups, flat datasets, split groups, bad files."""

from __future__ import annotations

import io
import pickle

import h5py
import numpy as np
import pytest
from PIL import Image

from pixelforge import read_dataset
from pixelforge.data.layouts.hdf5 import HDF5Storage, read_hdf5_layout
from pixelforge.errors import LayoutError


def _png_bytes(arr: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_group_per_class_with_one_dataset_per_image(tmp_path, rng):
    path = tmp_path / "groups.h5"
    images = {}
    with h5py.File(path, "w") as f:
        for label, n in (("cat", 3), ("dog", 2)):
            for i in range(n):
                images[f"{label}/{i}"] = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
                f.create_dataset(f"{label}/img{i}", data=images[f"{label}/{i}"])
    m = read_dataset(path)
    assert m.layout == "hdf5" and m.classes == ["cat", "dog"]
    assert m.class_counts() == {"cat": 3, "dog": 2}
    assert np.array_equal(m.load(0), images["cat/0"])
    assert m.describe(0).endswith("groups.h5:cat/img0")


def test_group_label_attribute_overrides_the_group_name(tmp_path, rng):
    path = tmp_path / "attrs.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("g0")
        g.attrs["label"] = "shirt"
        g.create_dataset("stack", data=rng.integers(0, 256, (4, 6, 6), dtype=np.uint8))
        h = f.create_group("g1")
        h.create_dataset("one", data=rng.integers(0, 256, (6, 6), dtype=np.uint8)).attrs["label"] = "shoe"
    m = read_hdf5_layout(path)
    assert m.class_counts() == {"shirt": 4, "shoe": 1}
    assert m.locations[:4] == [f"g0/stack#{i}" for i in range(4)]
    assert m.load(2).shape == (6, 6, 1)


def test_nested_groups_label_is_the_leaf_group(tmp_path, rng):
    path = tmp_path / "nested.h5"
    with h5py.File(path, "w") as f:
        for leaf in ("clothes/dress", "clothes/skirt", "shoes/boot"):
            f.create_dataset(f"{leaf}/a", data=_png_bytes(rng.integers(0, 256, (7, 7), dtype=np.uint8)))
    m = read_dataset(path)
    assert m.classes == ["boot", "dress", "skirt"]
    assert m.load(0).shape == (7, 7, 1)  # encoded PNG bytes decode


def test_split_groups_hold_class_groups(tmp_path, rng):
    path = tmp_path / "split.h5"
    with h5py.File(path, "w") as f:
        for split, n in (("train", 3), ("test", 1)):
            for label in ("a", "b"):
                f.create_dataset(f"{split}/{label}/x", data=rng.integers(0, 256, (n, 5, 5), dtype=np.uint8))
    m = read_dataset(path)
    assert m.counts_by_split() == {"train": {"a": 3, "b": 3}, "test": {"a": 1, "b": 1}}


@pytest.mark.parametrize(("x_key", "y_key"), [("images", "labels"), ("x", "y"), ("X", "targets"), ("data", "y")])
def test_flat_datasets_keys_are_detected(tmp_path, rng, x_key, y_key):
    path = tmp_path / "flat.h5"
    x = rng.integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    with h5py.File(path, "w") as f:
        f.create_dataset(x_key, data=x)
        f.create_dataset(y_key, data=y)
    m = read_dataset(path)
    assert m.classes == ["0", "1", "2"] and len(m) == 6
    assert np.array_equal(m.load(4), x[4])


def test_flat_datasets_with_class_names_keep_the_files_index_order(tmp_path, rng):
    path = tmp_path / "named.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, (3, 4, 4), dtype=np.uint8))
        f.create_dataset("labels", data=np.array([0, 1, 1]))
        f.create_dataset("classes", data=np.array([b"zebra", b"ant"]))
    m = read_dataset(path)
    assert m.classes == ["zebra", "ant"] and m.labels == ["zebra", "ant", "ant"]
    assert list(m.label_indices()) == [0, 1, 1]


def test_flat_datasets_with_string_labels_and_split_groups(tmp_path, rng):
    path = tmp_path / "strsplit.h5"
    with h5py.File(path, "w") as f:
        for split, n in (("train", 4), ("val", 2)):
            f.create_dataset(f"{split}/images", data=rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8))
            f.create_dataset(f"{split}/labels", data=np.array([b"cat", b"dog"] * (n // 2)))
    m = read_dataset(path)
    assert m.split_names == ["train", "validation"]
    assert m.class_counts() == {"cat": 3, "dog": 3}


def test_explicit_keys_and_storage_is_picklable(tmp_path, rng):
    path = tmp_path / "keys.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("pixels", data=rng.integers(0, 256, (3, 4, 4), dtype=np.uint8))
        f.create_dataset("cls", data=np.array([1, 0, 1]))
    m = read_dataset(path, images_key="pixels", labels_key="cls")
    first = m.load(0)
    clone = pickle.loads(pickle.dumps(m))
    assert isinstance(clone.storage, HDF5Storage) and clone.storage._file is None
    assert np.array_equal(clone.load(0), first)


def _flat_file(path, n_images: int, n_labels: int | None, side: int = 4):
    """images (n, side, side) and labels (n_labels,) datasets; no labels when n_labels is None."""
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.random.default_rng(0).integers(0, 256, (n_images, side, side), dtype=np.uint8))
        if n_labels is not None:
            f.create_dataset("labels", data=np.zeros(n_labels, dtype=np.uint8))
    return path


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_text("hello, I am text")
    with pytest.raises(LayoutError, match="fake.h5: not a readable HDF5 file"):
        read_dataset(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    with pytest.raises(LayoutError, match="empty file"):
        read_dataset(path)


def test_truncated_file(tmp_path):
    path = _flat_file(tmp_path / "cut.h5", 50, 50, side=16)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(LayoutError, match="cut.h5"):
        m = read_dataset(path)
        for i in range(len(m)):
            m.load(i)


def test_mismatched_lengths(tmp_path):
    path = _flat_file(tmp_path / "mismatch.h5", 5, 4)
    with pytest.raises(LayoutError, match="5 images in 'images' but 4 labels"):
        read_dataset(path)


def test_images_without_labels(tmp_path):
    path = _flat_file(tmp_path / "nolabels.h5", 5, None)
    with pytest.raises(LayoutError, match="no labels dataset"):
        read_dataset(path)


def test_missing_named_key(tmp_path):
    path = _flat_file(tmp_path / "keys.h5", 5, 5)
    with pytest.raises(LayoutError, match=r"no images dataset 'pics' \(present: \['images', 'labels'\]\)"):
        read_dataset(path, images_key="pics")


def test_file_with_no_images(tmp_path):
    path = tmp_path / "nothing.h5"
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "empty"
    with pytest.raises(LayoutError, match="no images found"):
        read_dataset(path)


def test_integer_label_beyond_class_names(tmp_path, rng):
    path = tmp_path / "range.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, (2, 4, 4), dtype=np.uint8))
        f.create_dataset("labels", data=np.array([0, 5]))
        f.attrs["classes"] = ["a", "b"]
    with pytest.raises(LayoutError, match="label 5 has no name among 2 classes"):
        read_dataset(path)
