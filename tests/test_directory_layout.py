import numpy as np
import pytest

from pixelforge import read_dataset
from pixelforge.data.locations import safe_relative_path
from pixelforge.errors import LayoutError, UnsafePathError
from tests.conftest import write_png


def test_flat_class_folders_give_sorted_classes_and_counts(class_tree):
    m = read_dataset(class_tree)
    assert m.layout == "directory"
    assert m.classes == ["cat", "dog"]
    assert m.class_counts() == {"cat": 3, "dog": 2}
    assert m.label_indices().dtype == np.uint8
    assert m.ignored == {"hidden": 1, "non_image": 1}
    assert not m.is_split


def test_integer_class_folders_sort_numerically_like_a_csv_of_the_same_labels(tmp_path):
    img = np.zeros((4, 4), np.uint8)
    for label in ("10", "2", "1"):
        write_png(tmp_path / "tree" / label / "x.png", img)
    (tmp_path / "tree" / "labels.csv").write_text("".join(["filepath,label\n"] + [f"{k}/x.png,{k}\n" for k in (10, 2, 1)]))
    folders, table = read_dataset(tmp_path / "tree", layout="directory"), read_dataset(tmp_path / "tree" / "labels.csv")
    assert folders.classes == table.classes == ["1", "2", "10"]
    for m in (folders, table):
        assert dict(zip(m.labels, m.label_indices().tolist(), strict=True)) == {"1": 0, "2": 1, "10": 2}


def test_keras_drop_in_keeps_keras_text_order_for_integer_folders(tmp_path):
    from pixelforge.keras import ImageDataGenerator

    for label in ("10", "2", "1"):
        write_png(tmp_path / label / "x.png", np.zeros((4, 4), np.uint8))
    flow = ImageDataGenerator().flow_from_directory(tmp_path, target_size=(4, 4), batch_size=3, shuffle=False)
    assert flow.class_indices == {"1": 0, "10": 1, "2": 2}
    assert flow.classes.tolist() == [0, 1, 2]


def test_pre_split_folders_keep_their_split(tmp_path):
    img = np.zeros((4, 4), np.uint8)
    for split in ("train", "val", "test"):
        for label in ("a", "b"):
            write_png(tmp_path / split / label / "x.png", img)
    m = read_dataset(tmp_path)
    assert m.split_names == ["train", "validation", "test"]
    assert m.counts_by_split()["validation"] == {"a": 1, "b": 1}


@pytest.mark.parametrize("mode,expected", [("leaf", ["dress", "hat"]), ("top", ["clothes"]), ("path", ["clothes/dress", "clothes/hat"])])
def test_hierarchical_label_modes(tmp_path, mode, expected):
    img = np.zeros((4, 4), np.uint8)
    write_png(tmp_path / "clothes" / "dress" / "1.PNG", img)
    write_png(tmp_path / "clothes" / "hat" / "2.JpG".replace("JpG", "png"), img)
    write_png(tmp_path / "other" / "x.png", img)
    m = read_dataset(tmp_path, label_mode=mode)
    assert all(c in m.classes for c in expected)


def test_uppercase_extensions_are_images(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    write_png(tmp_path / "a" / "ONE.PNG", img)
    write_png(tmp_path / "b" / "two.png", img)
    assert len(read_dataset(tmp_path)) == 2


def test_folder_without_class_folders_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(LayoutError, match="no images in class folders"):
        read_dataset(tmp_path)


def test_empty_class_folder_and_single_class_are_noted(tmp_path):
    write_png(tmp_path / "only" / "a.png", np.zeros((3, 3), np.uint8))
    (tmp_path / "empty").mkdir()
    m = read_dataset(tmp_path)
    assert any("empty folder" in n for n in m.notes)
    assert any("only one class" in n for n in m.notes)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "a/../../x.png", "C:/x.png"])
def test_paths_escaping_the_root_are_refused(bad):
    with pytest.raises(UnsafePathError):
        safe_relative_path(bad)


def test_real_clothing5_counts(clothing5_dir):
    m = read_dataset(clothing5_dir)
    assert len(m) == 1116
    assert m.classes == ["dress", "hat", "outwear", "shoes", "skirt"]
    assert {s: sum(c.values()) for s, c in m.counts_by_split().items()} == {"train": 858, "validation": 108, "test": 150}
