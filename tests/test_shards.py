"""Sharded stores (``convert --shards N``): N stores plus an index, read back as one Manifest."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from pixelforge import read_dataset
from pixelforge.cli import app
from pixelforge.data import shards as shards_module
from pixelforge.data.shards import shard_bounds, write_sharded_store
from pixelforge.data.store import store_preprocess, write_store
from pixelforge.datasets.shapes import make_shapes
from pixelforge.errors import ParameterError, PixelforgeError

runner = CliRunner()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A pre-split folder of 4 x 12 generated 16x16 RGB images, one of them corrupt."""
    root = tmp_path_factory.mktemp("shapes") / "shapes"
    make_shapes(12, size=16, seed=5, corrupt=1, write_to=root)
    return root


@pytest.fixture(scope="module")
def single(shapes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "single.h5"
    write_store(read_dataset(shapes), out, seed=2)
    return out


def convert(*args: str):
    result = runner.invoke(app, ["convert", *map(str, args)])
    return result


def test_four_shards_read_back_as_the_single_file_store(shapes, single, tmp_path):
    out = tmp_path / "sharded"
    result = convert(shapes, out, "--shards", "4", "--seed", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["file"] for s in report["shards"]] == [f"shard-0000{k}-of-00004.h5" for k in range(4)]
    assert sorted(p.name for p in out.iterdir()) == ["index.json", *(s["file"] for s in report["shards"])]
    one, sharded = read_dataset(single), read_dataset(out)
    assert sharded.layout == "shards" and len(sharded) == len(one) == report["images"]
    assert sharded.classes == one.classes and sharded.labels == one.labels and sharded.splits == one.splits
    assert sharded.counts_by_split() == one.counts_by_split()
    assert [s.item for s in sharded.skipped] == [s.item for s in one.skipped] and len(one.skipped) == 1
    for i in range(len(one)):
        assert np.array_equal(sharded.load(i), one.load(i))
    by_index = read_dataset(out / "index.json")
    assert by_index.labels == one.labels and by_index.layout == "shards"
    sharded.load(len(one) - 1)  # opens the last shard
    copy = pickle.loads(pickle.dumps(sharded))  # to DataLoader workers: no open file travels
    assert np.array_equal(copy.load(len(one) - 1), one.load(len(one) - 1))


def test_the_index_lists_counts_statistics_and_provenance(shapes, single, tmp_path):
    out = tmp_path / "sharded"
    summary = write_sharded_store(read_dataset(shapes), out, shards=4, seed=2)
    index = json.loads((out / "index.json").read_text())
    one = read_dataset(single)
    assert index["pixelforge_shards"] == 1 and index["classes"] == one.classes
    assert index["images"] == summary.images == len(one) == sum(s["images"] for s in index["shards"])
    assert index["counts_by_split"] == {split: counts for split, counts in one.counts_by_split().items()}
    for entry in index["shards"]:
        part = read_dataset(out / entry["file"])
        assert entry["counts_by_split"] == part.counts_by_split()
        assert entry["bytes"] == (out / entry["file"]).stat().st_size
    expected = store_preprocess(single)
    assert np.allclose(index["preprocess"]["mean"], expected.mean, rtol=1e-6)
    assert np.allclose(index["preprocess"]["std"], expected.std, rtol=1e-6)
    assert np.allclose(index["mean"], summary.mean) and index["train_images"] == one.counts_by_split()["train"]["circle"] * 4
    assert index["source"] == str(shapes) and index["pixelforge_version"] and index["created"]


def test_each_shard_is_a_row_range_of_the_single_file_store_and_reads_alone(shapes, single, tmp_path):
    out = tmp_path / "sharded"
    write_sharded_store(read_dataset(shapes), out, shards=4, seed=2)
    index = json.loads((out / "index.json").read_text())
    with h5py.File(single) as f:
        images, labels, splits = f["images"][()], f["labels"][()], f["splits"][()]
    for k, entry in enumerate(index["shards"]):
        rows = slice(entry["first_row"], entry["first_row"] + entry["images"])
        with h5py.File(out / entry["file"]) as f:
            assert np.array_equal(f["images"][()], images[rows])  # bit for bit
            assert np.array_equal(f["labels"][()], labels[rows]) and list(f["splits"][()]) == list(splits[rows])
            assert (f.attrs["shard"], f.attrs["shards"]) == (k, 4)
        alone = read_dataset(out / entry["file"])
        assert alone.layout == "hdf5" and len(alone) == entry["images"] and alone.classes == index["classes"]
        assert np.array_equal(alone.load(0), images[entry["first_row"]])
        # every shard carries the statistics of the whole training split
        assert store_preprocess(out / entry["file"]).to_dict() == index["preprocess"]


def test_shard_size_gives_shards_of_that_many_rows(shapes, tmp_path):
    summary = write_sharded_store(read_dataset(shapes), tmp_path / "s", shard_size=20)
    assert len(summary.shards) == 3 and sum(s["images"] for s in summary.shards) == 48  # 49 files, one corrupt: skipped in shard 0
    assert [s["images"] for s in summary.shards if s["file"] != "shard-00000-of-00003.h5"] == [20, 9]
    assert shard_bounds(49, shard_size=20) == [0, 20, 40, 49] and shard_bounds(10, shards=3) == [0, 3, 6, 10]
    with pytest.raises(ParameterError, match="not both"):
        shard_bounds(10, shards=2, shard_size=5)
    with pytest.raises(ParameterError, match="between 1 and"):
        shard_bounds(10, shards=11)


def test_a_failed_shard_leaves_no_index_and_no_file(shapes, tmp_path, monkeypatch):
    calls = []
    real = shards_module.write_images

    def fail_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise PixelforgeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(shards_module, "write_images", fail_third)
    out = tmp_path / "sharded"
    with pytest.raises(PixelforgeError, match="disk on fire"):
        write_sharded_store(read_dataset(shapes), out, shards=4)
    assert len(calls) == 3 and not out.exists() and list(tmp_path.iterdir()) == []


def test_a_failed_rewrite_removes_the_old_index_and_a_rewrite_replaces_the_store(shapes, tmp_path, monkeypatch):
    out = tmp_path / "sharded"
    write_sharded_store(read_dataset(shapes), out, shards=4)
    monkeypatch.setattr(shards_module, "write_images", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        write_sharded_store(read_dataset(shapes), out, shards=4)
    assert not (out / "index.json").exists()  # the old shards stay, but no index points at them
    monkeypatch.undo()
    write_sharded_store(read_dataset(shapes), out, shards=2)
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "shard-00000-of-00002.h5", "shard-00001-of-00002.h5"]
    assert len(read_dataset(out)) == 48
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PixelforgeError, match="holds other files"):
        write_sharded_store(read_dataset(shapes), out, shards=2)


def test_cli_shards_and_shard_size_together_is_a_usage_error(shapes, tmp_path):
    out = tmp_path / "sharded"
    result = convert(shapes, out, "--shards", "4", "--shard-size", "10")
    assert result.exit_code == 2, result.output
    assert "--shards" in result.output and "not both" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_cli_reports_the_shards(shapes, tmp_path):
    out = tmp_path / "sharded"
    result = convert(shapes, out, "--shard-size", "25")
    assert result.exit_code == 0, result.output
    assert "2 shards + index.json" in result.output
    info = runner.invoke(app, ["info", str(out), "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["images"] == 48
