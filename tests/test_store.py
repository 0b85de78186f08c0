"""The HDF5 store written by ``convert``: content, statistics, provenance, atomic writes, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelforge import read_dataset
from pixelforge.cli import app
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.store import load_store_arrays, parse_size, store_preprocess, write_store
from pixelforge.datasets import load_fashion_sample
from pixelforge.errors import PixelforgeError
from tests.conftest import write_png

runner = CliRunner()


@pytest.fixture
def tree(tmp_path) -> Path:
    """root/<a|b|c>/i.png: 12 + 8 + 5 grayscale 10x10 images and one broken file."""
    rng = np.random.default_rng(1)
    root = tmp_path / "tree"
    for label, n in (("a", 12), ("b", 8), ("c", 5)):
        for i in range(n):
            write_png(root / label / f"{i:02d}.png", rng.integers(0, 256, (10, 10), dtype=np.uint8))
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_store_reads_back_as_the_same_dataset_bit_for_bit(tree, tmp_path):
    source = read_dataset(tree)
    out = tmp_path / "store.h5"
    summary = write_store(source, out, seed=3)
    assert summary.images == 25 and summary.shape == (10, 10, 1) and summary.dtype == "uint8"
    store = read_dataset(out)
    assert store.layout == "hdf5" and store.classes == ["a", "b", "c"]
    assert store.class_counts() == {"a": 12, "b": 8, "c": 5}
    assert sum(store.counts_by_split()["test"].values()) == 5  # 20% of 25, stratified
    with h5py.File(out) as f:
        sources = [s.decode() for s in f["sources"][()]]
        assert f["labels"].dtype == np.uint8
        assert f["images"].compression == "gzip" and f["images"].chunks[0] >= 1
    for i in range(len(store)):
        original = np.asarray(Image.open(sources[i]))[:, :, None]
        assert np.array_equal(store.load(i), original)
        assert sources[i].endswith(f"{store.labels[i]}/{Path(sources[i]).name}")


def test_store_keeps_splits_of_a_pre_split_source_and_lists_skips(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "presplit"
    for split, n in (("train", 4), ("test", 2)):
        for label in ("x", "y"):
            for i in range(n):
                write_png(root / split / label / f"{i}.png", rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    (root / "train" / "x" / "bad.png").write_bytes(b"")
    summary = write_store(read_dataset(root), tmp_path / "s.h5")
    assert summary.counts_by_split == {"test": 4, "train": 8}
    assert [s.reason for s in summary.skipped] == ["empty file (0 bytes)"]
    store = read_dataset(tmp_path / "s.h5")
    assert store.counts_by_split()["train"] == {"x": 4, "y": 4}
    assert [s.item for s in store.skipped] == [str(root / "train" / "x" / "bad.png")]


def test_store_statistics_come_from_the_training_split(tree, tmp_path):
    out = tmp_path / "s.h5"
    write_store(read_dataset(tree), out, Preprocess(size=(8, 8)), seed=0)
    x, _ = load_store_arrays(out, split="train")
    assert x.shape[1:] == (8, 8, 1)
    spec = store_preprocess(out)
    assert spec.size == (8, 8)
    np.testing.assert_allclose(spec.mean, [x.mean() / 255], rtol=1e-5)
    np.testing.assert_allclose(spec.std, [x.std() / 255], rtol=1e-5)
    with h5py.File(out) as f:
        assert json.loads(f.attrs["preprocess"])["size"] == [8, 8]
        np.testing.assert_allclose(f.attrs["mean"], spec.mean)


def test_store_of_the_fashion_sample_equals_its_arrays(tmp_path):
    sample = load_fashion_sample()
    out = tmp_path / "f.h5"
    write_store(sample, out, compression="lzf")
    x, y = load_store_arrays(out)
    assert np.array_equal(x[:, :, :, 0], sample.storage.images)
    assert np.array_equal(y, sample.label_indices())
    store = read_dataset(out)
    assert store.counts_by_split() == sample.counts_by_split()
    assert store.classes == sample.classes


def test_sixteen_bit_images_stay_uint16(tmp_path):
    root = tmp_path / "deep"
    for label in ("lo", "hi"):
        for i in range(3):
            arr = np.full((4, 4), 1000 * (i + 1) + (label == "hi") * 30000, dtype=np.uint16)
            root.joinpath(label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / label / f"{i}.png")
    write_store(read_dataset(root), tmp_path / "d.h5")
    x, _ = load_store_arrays(tmp_path / "d.h5")
    assert x.dtype == np.uint16 and x.max() > 30000


def test_interrupted_write_leaves_no_file(tree, tmp_path):
    out = tmp_path / "s.h5"

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_store(read_dataset(tree), out, batch_size=4, progress=stop)
    assert list(tmp_path.glob("*s.h5*")) == []


def test_failing_write_keeps_an_existing_store(tree, tmp_path):
    out = tmp_path / "s.h5"
    write_store(read_dataset(tree), out)
    before = out.read_bytes()
    with pytest.raises(PixelforgeError, match="broken.png"):
        write_store(read_dataset(tree), out, on_error="fail")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5", "tree"]


def test_mixed_sizes_need_a_size(tmp_path):
    write_png(tmp_path / "m" / "a" / "0.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "m" / "b" / "0.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(PixelforgeError, match="size"):
        write_store(read_dataset(tmp_path / "m"), tmp_path / "s.h5", batch_size=1)
    assert not (tmp_path / "s.h5").exists()


def test_parse_size():
    assert parse_size("28") == (28, 28) and parse_size("32x48") == (32, 48) and parse_size(None) is None
    with pytest.raises(PixelforgeError):
        parse_size("big")
    with pytest.raises(PixelforgeError):
        parse_size("0x3")


def test_cli_convert_writes_a_store_and_reports(tree, tmp_path):
    out = tmp_path / "cli.h5"
    result = runner.invoke(app, ["convert", str(tree), str(out), "--size", "6", "--channels", "3",
                                 "--resize", "crop", "--seed", "1", "--test-size", "0.4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 25 and report["shape"] == [6, 6, 3]
    assert report["counts_by_split"]["test"] in (10, 11)  # 5 + 4 + 2 held out, less the broken file if drawn
    assert len(report["skipped"]) == 1 and "broken.png" in report["skipped"][0]["item"]
    info = runner.invoke(app, ["info", str(out), "--json", "--sizes", "3"])
    assert info.exit_code == 0 and json.loads(info.stdout)["images"] == 25


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tree}/../missing", "{out}"], "no such file or folder"),
        (["{tree}", "{out}", "--on-error", "fail"], "broken.png"),
        (["{tree}", "{out}", "--size", "abc"], "size must be"),
        (["{tree}", "{out}", "--channels", "2"], "channels must be 1, 3"),
        (["{tree}", "{out}", "--on-error", "ignore"], "--on-error must be"),
        (["{tree}", "{out}", "--compression", "zstd"], "compression must be"),
        (["{tree}", "{tmp}/nowhere/s.h5"], "does not exist"),
    ],
)
def test_cli_convert_bad_input_exits_2_with_one_line(tree, tmp_path, args, message):
    out = tmp_path / "bad.h5"
    argv = [a.format(tree=tree, out=out, tmp=tmp_path) for a in args]
    result = runner.invoke(app, ["convert", *argv])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.slow
def test_convert_full_fashion_mnist_bit_for_bit(fashion_mnist_dir, tmp_path):
    out = tmp_path / "fashion.h5"
    summary = write_store(read_dataset(fashion_mnist_dir), out)
    assert summary.images == 70_000 and summary.counts_by_split == {"test": 10_000, "train": 60_000}
    with h5py.File(out) as f:
        images, sources = f["images"], f["sources"]
        for start in range(0, 70_000, 5_000):
            block = images[start : start + 5_000]
            for j, name in enumerate(sources[start : start + 5_000]):
                assert np.array_equal(block[j, :, :, 0], np.asarray(Image.open(name.decode())))
