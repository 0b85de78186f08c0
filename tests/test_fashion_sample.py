"""The embedded Fashion-MNIST sample loads from the package alone, with the documented counts."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from pixelforge.datasets import load_fashion_sample
from pixelforge.datasets.fashion import FASHION_CLASSES, OFFICIAL_LABEL, SAMPLE_PATH


def test_sample_ships_inside_the_package_and_is_small():
    assert SAMPLE_PATH.parent.name == "datasets"
    assert SAMPLE_PATH.stat().st_size < 2_200_000


def test_sample_has_300_train_and_60_test_images_per_class():
    m = load_fashion_sample()
    assert len(m) == 3600
    assert m.layout == "builtin"
    assert sorted(m.classes) == sorted(FASHION_CLASSES)
    by_split = m.counts_by_split()
    assert set(by_split) == {"train", "test"}
    assert all(n == 300 for n in by_split["train"].values())
    assert all(n == 60 for n in by_split["test"].values())


def test_sample_images_are_28x28x1_uint8_and_indices_follow_sorted_names():
    m = load_fashion_sample("test")
    assert len(m) == 600 and m.split_names == ["test"]
    img = m.load(0)
    assert img.shape == (28, 28, 1) and img.dtype == np.uint8
    assert m.classes == sorted(FASHION_CLASSES)
    assert m.label_indices().dtype == np.uint8
    assert OFFICIAL_LABEL["T-shirt/top"] == 0 and OFFICIAL_LABEL["Ankle boot"] == 9


def test_sample_rows_name_their_original_file():
    m = load_fashion_sample()
    name = m.describe(0)
    assert name.startswith("fashion_sample:train/") and name.endswith(".png")
    # the official label in the file path agrees with the class name
    for i in range(0, len(m), 97):
        digit = int(m.describe(i).split("/")[1])
        assert FASHION_CLASSES[digit] == m.labels[i]


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split must be"):
        load_fashion_sample("validation")


@pytest.fixture(scope="module")
def fashion_members() -> dict[str, bytes]:
    """Every PNG of the Fashion-MNIST archive, read in one pass (a few seconds, no extraction)."""
    from tests.conftest import SHARED
    from tools.build_fashion_sample import read_members

    archive = SHARED / "fashion-mnist.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (real datasets live in ../shared/datasets)")
    return read_members(archive)


def test_sample_pixels_equal_the_archive_files(fashion_members):
    m = load_fashion_sample()
    for i in (0, 1234, 3599):
        rel = m.describe(i).split(":", 1)[1]
        original = np.asarray(Image.open(io.BytesIO(fashion_members[rel])))
        assert np.array_equal(m.load(i)[:, :, 0], original)


def test_sample_build_is_reproducible(tmp_path, fashion_members):
    """Rebuilding from a small archive with the same seed gives the same bytes."""
    from tools.build_fashion_sample import build

    archive = tmp_path / "mini.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for digit in range(10):
                names = sorted(n for n in fashion_members if n.startswith(f"{split}/{digit}/"))[:4]
                for name in names:
                    info = tarfile.TarInfo(f"fashion-mnist/{name}")
                    info.size = len(fashion_members[name])
                    tar.addfile(info, io.BytesIO(fashion_members[name]))
    a = build(archive, tmp_path / "a.npz", 2, 1, seed=3)
    b = build(archive, tmp_path / "b.npz", 2, 1, seed=3)
    assert a["images"] == b["images"] == 30
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as data:
        first = str(data["files"][0])
        img = data["images"][0]
    assert np.array_equal(img, np.asarray(Image.open(io.BytesIO(fashion_members[first]))))
