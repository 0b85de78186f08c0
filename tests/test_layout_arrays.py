"""In-memory arrays, .npz files and pandas DataFrames (Keras flow_from_dataframe style)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pixelforge import read_dataset
from pixelforge.cli import app
from pixelforge.data.layouts.arrays import read_arrays_layout, read_npz_layout
from pixelforge.errors import LayoutError
from tests.conftest import write_png

pd = pytest.importorskip("pandas")


def test_arrays_with_int_labels_keep_index_order():
    x = np.zeros((12, 4, 4), np.uint8)
    y = np.array([0, 1, 2, 10, 10, 2, 1, 0, 0, 2, 10, 1])
    m = read_dataset((x, y))
    assert m.layout == "arrays" and m.classes == ["0", "1", "2", "10"]
    assert m.storage.images is x  # no copy


def test_int_labels_map_through_a_class_list():
    x = np.zeros((3, 2, 2, 3), np.uint8)
    m = read_arrays_layout(x, np.array([2, 0, 2]), classes=["cat", "dog", "fox"])
    assert m.classes == ["cat", "dog", "fox"]
    assert m.labels == ["fox", "cat", "fox"] and list(m.label_indices()) == [2, 0, 2]
    with pytest.raises(LayoutError, match="outside the 3 classes"):
        read_arrays_layout(x, np.array([0, 1, 3]), classes=["cat", "dog", "fox"])


def test_string_and_one_hot_labels():
    x = np.zeros((3, 2, 2), np.uint8)
    assert read_arrays_layout(x, np.array(["b", "a", "b"])).class_counts() == {"a": 1, "b": 2}
    assert read_arrays_layout(x, np.eye(3)[[1, 1, 0]]).labels == ["1", "1", "0"]


def test_empty_labels_are_counted_skips():
    x = np.zeros((3, 2, 2), np.uint8)
    m = read_arrays_layout(x, np.array(["a", "", "b"], dtype=object))
    assert m.locations == ["0", "2"] and len(m.skipped) == 1
    m = read_arrays_layout(x, np.array([1.0, np.nan, 0.0]))
    assert m.labels == ["1", "0"] and len(m.skipped) == 1


def test_channels_first_and_flat_arrays_are_rearranged():
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 5), dtype=np.uint8)
    m = read_dataset((x, np.array([0, 1])))
    np.testing.assert_array_equal(m.load(1), x[1].transpose(1, 2, 0))
    flat = np.zeros((2, 784), np.uint8)
    assert read_dataset((flat, np.array([0, 1]))).load(0).shape == (28, 28, 1)


@pytest.mark.parametrize(
    "x,y,message",
    [(np.zeros((2, 5), np.uint8), [0, 1], "neither a square"), (np.zeros((2,), np.uint8), [0, 1], "expected images"),
     (np.zeros((2, 4, 4), np.uint8), [0, 1, 1], "2 images but 3 labels"),
     (np.array([["a"]] * 2), [0, 1], "numeric array"), (np.zeros((2, 4, 4)), [0.5, 1], "whole numbers"),
     (np.zeros((2, 4, 4, 9), np.uint8), [0, 1], "C in 1-4"), (np.zeros((2, 4, 4)), [[[0]], [[1]]], "one value")],
)
def test_bad_arrays_are_clear_errors(x, y, message):
    with pytest.raises(LayoutError, match=message):
        read_arrays_layout(x, np.asarray(y))


def test_huge_dimension_arrays_are_refused_without_allocating():
    huge = np.broadcast_to(np.zeros((1, 1, 1), np.uint8), (2, 9000, 9000))
    with pytest.raises(LayoutError, match="over the 64M pixel limit"):
        read_arrays_layout(huge, np.array([0, 1]))


def test_one_class_arrays_note_it():
    m = read_arrays_layout(np.zeros((2, 2, 2), np.uint8), np.array([3, 3]))
    assert any("only one class" in n for n in m.notes)


# ---- .npz --------------------------------------------------------------------------------------------

def test_npz_with_train_and_test_arrays_gives_splits(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez_compressed(path, x_train=rng.integers(0, 256, (8, 6, 6), dtype=np.uint8), y_train=np.arange(8) % 2,
                        x_test=rng.integers(0, 256, (4, 6, 6), dtype=np.uint8), y_test=np.arange(4) % 2,
                        class_names=np.array(["neg", "pos"]))
    m = read_dataset(path)
    assert m.layout == "npz" and m.classes == ["neg", "pos"]
    assert {k: sum(v.values()) for k, v in m.counts_by_split().items()} == {"train": 8, "test": 4}


@pytest.mark.parametrize("xk,yk", [("x", "y"), ("images", "labels"), ("data", "targets")])
def test_npz_keys_are_detected(tmp_path, xk, yk):
    path = tmp_path / "d.npz"
    np.savez(path, **{xk: np.zeros((3, 4, 4), np.uint8), yk: np.array([0, 1, 1])})
    assert len(read_dataset(path)) == 3


def test_npz_keys_can_be_given_and_bytes_are_accepted(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, pics=np.zeros((2, 4, 4), np.uint8), tags=np.array(["a", "b"]))
    with pytest.raises(LayoutError, match="pass x_key= and y_key="):
        read_npz_layout(buf.getvalue())
    assert read_npz_layout(buf.getvalue(), x_key="pics", y_key="tags").classes == ["a", "b"]
    with pytest.raises(LayoutError, match="no array 'nope'"):
        read_npz_layout(buf.getvalue(), x_key="nope", y_key="tags")


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((2, 2, 2), np.uint8), y=np.array([{"evil": 1}, {}], dtype=object))
    with pytest.raises(LayoutError, match="pickled objects"):
        read_dataset(path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04garbage", b"not an npz at all"])
def test_corrupt_or_empty_npz_is_a_clear_error(tmp_path, content):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(LayoutError, match="d.npz"):
        read_dataset(path)


def test_truncated_npz_is_a_clear_error(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((50, 8, 8), np.uint8), y=np.arange(50) % 2)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(LayoutError, match="d.npz"):
        read_dataset(path)


def test_cli_info_on_npz(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 5, 5), np.uint8), y=np.array([0, 1, 0, 1]))
    result = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["class_counts"] == {"0": 2, "1": 2}


# ---- DataFrame ---------------------------------------------------------------------------------------

@pytest.fixture
def pics(tmp_path):
    for name in ("a.png", "b.png", "c.jpg"):
        write_png(tmp_path / "pics" / name, np.zeros((3, 3, 3), np.uint8)) if name.endswith("png") else None
    (tmp_path / "pics" / "c.jpg").write_bytes(b"")
    return tmp_path / "pics"


def test_dataframe_with_directory_resolves_relative_paths(pics):
    df = pd.DataFrame({"filename": ["a.png", "b.png", "missing.png", "../x.png", "/etc/passwd.png", "notes.txt", "b.png"],
                       "class": ["x", "y", "x", "y", "y", "x", None]})
    m = read_dataset(df, directory=pics)
    assert m.layout == "dataframe" and m.locations == ["a.png", "b.png"]
    reasons = [s.reason for s in m.skipped]
    assert len(reasons) == 5
    assert sum(r.startswith("refused:") for r in reasons) == 2
    assert any("file not found" in r for r in reasons) and any("image file extension" in r for r in reasons)
    assert any("empty value in label column" in r for r in reasons)


def test_dataframe_without_directory_takes_paths_as_given(pics, monkeypatch):
    df = pd.DataFrame({"path": [str(pics / "a.png"), str(pics / "b.png")], "y": ["cat", "dog"],
                       "set": ["train", "test"]})
    m = read_dataset(df, x_col="path", y_col="y", split_col="set")
    assert m.split_names == ["train", "test"] and m.load(1).shape == (3, 3, 3)
    monkeypatch.chdir(pics)
    rel = read_dataset(pd.DataFrame({"filename": ["a.png"], "class": ["c"]}))
    assert rel.load(0).shape == (3, 3, 3)


def test_dataframe_missing_column_is_a_clear_error(pics):
    with pytest.raises(LayoutError, match="no column 'filename'"):
        read_dataset(pd.DataFrame({"file": ["a.png"], "class": ["x"]}))
