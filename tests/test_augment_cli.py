"""`pixelforge augment`: augmented copies, manifest CSV, class balancing, preview montage."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelforge.augment import Pipeline
from pixelforge.augment.writer import augment_to_dir, copies_per_image
from pixelforge.cli import app
from pixelforge.data.read import read_dataset
from tests.conftest import write_png

runner = CliRunner()
NAME = re.compile(r"aug_(\d+)_(\d{1,7})\.(png|jpg)")


@pytest.fixture
def unbalanced(tmp_path):
    """a: 6 images, b: 2 images, c: 3 images (12x12 RGB)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "src"
    for label, n in (("a", 6), ("b", 2), ("c", 3)):
        for i in range(n):
            write_png(root / label / f"{label}{i}.png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    return root


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_augment_writes_copies_and_a_manifest(unbalanced, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["augment", str(unbalanced), "--out", str(out), "--per-image", "3",
                                 "--augment", "rotation_range=20,horizontal_flip", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == 33 and summary["per_class"] == {"a": 18, "b": 6, "c": 9}
    rows = read_rows(out / "manifest.csv")
    assert len(rows) == 33
    for row in rows:
        path = out / row["path"]
        assert path.is_file() and path.parent.name == row["label"]
        match = NAME.fullmatch(path.name)
        assert match, path.name
        source = row["source"]
        assert source.endswith(".png") and f"/{row['label']}/" in source.replace("\\", "/")
        assert row["augmented"] == "1"
        assert Image.open(path).size == (12, 12)
    assert not list(out.rglob(".*"))  # no temporary files


def test_augment_is_repeatable_with_a_seed(unbalanced, tmp_path):
    def run(name, seed):
        out = tmp_path / name
        args = ["augment", str(unbalanced), "--out", str(out), "--per-image", "2", "--seed", str(seed)]
        assert runner.invoke(app, args).exit_code == 0
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}

    first, again, other = run("one", 1), run("two", 1), run("three", 2)
    assert first == again
    assert first != other


def test_balance_tops_up_every_class_to_the_largest(unbalanced, tmp_path):
    out = tmp_path / "balanced"
    result = runner.invoke(app, ["augment", str(unbalanced), "--out", str(out), "--balance", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["per_class"] == {"a": 6, "b": 6, "c": 6} and summary["originals"] == 11
    counts = {d.name: len(list(d.glob("*.png"))) for d in out.iterdir() if d.is_dir()}
    assert counts == {"a": 6, "b": 6, "c": 6}
    rows = read_rows(out / "manifest.csv")
    augmented_b = [r for r in rows if r["label"] == "b" and r["augmented"] == "1"]
    assert len(augmented_b) == 4 and {r["source_index"] for r in augmented_b} == {"6", "7"}  # spread evenly
    # the result reads back as a balanced dataset
    assert read_dataset(out).class_counts() == {"a": 6, "b": 6, "c": 6}


def test_balance_with_a_target(unbalanced, tmp_path):
    manifest = read_dataset(unbalanced)
    counts = copies_per_image(manifest, 0, balance=True, target=10)
    assert counts.sum() == 4 + 8 + 7
    result = runner.invoke(app, ["augment", str(unbalanced), "--out", str(tmp_path / "t"), "--balance",
                                 "--target", "10", "--format", "jpg", "--json"])
    assert json.loads(result.stdout)["per_class"] == {"a": 10, "b": 10, "c": 10}
    assert all(p.suffix == ".jpg" for p in (tmp_path / "t").rglob("*.*") if p.name != "manifest.csv")


def test_preview_has_one_row_per_source_image(unbalanced, tmp_path):
    preview = tmp_path / "grid.png"
    manifest = read_dataset(unbalanced)
    summary = augment_to_dir(manifest, Pipeline.from_spec("rotation_range=30"), tmp_path / "p", per_image=3,
                             preview=preview, preview_rows=4)
    grid = np.asarray(Image.open(preview))
    assert summary["preview"] == str(preview)
    cell = 64  # small images are enlarged to 64-pixel cells, 2-pixel gaps
    assert grid.shape == (4 * (cell + 2) + 2, 4 * (cell + 2) + 2, 3)  # 4 rows: original + 3 copies


def test_bad_input_is_one_clear_line(unbalanced, tmp_path):
    result = runner.invoke(app, ["augment", str(unbalanced), "--out", str(tmp_path / "x"), "--augment", "zoom=2"])
    assert result.exit_code == 2 and "unknown augmentation 'zoom'" in result.output
    result = runner.invoke(app, ["augment", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
    result = runner.invoke(app, ["augment", str(unbalanced), "--out", str(tmp_path / "x"), "--format", "gifx"])
    assert result.exit_code == 2 and "save format" in result.output


def test_undecodable_images_are_skipped_and_reported(unbalanced, tmp_path):
    (unbalanced / "a" / "broken.png").write_bytes(b"not a png")
    result = runner.invoke(app, ["augment", str(unbalanced), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["skipped"]) == 1 and "broken.png" in summary["skipped"][0]["item"]
    assert summary["written"] == 11


def test_balance_real_photos_clothing5_test_split(clothing5_dir, tmp_path):
    out = tmp_path / "clothing5-balanced"
    result = runner.invoke(app, ["augment", str(clothing5_dir / "test"), "--out", str(out), "--balance",
                                 "--size", "64", "--format", "jpg", "--preview", str(tmp_path / "grid.png"),
                                 "--augment", "rotation_range=15,width_shift_range=0.1,zoom_range=0.1,horizontal_flip",
                                 "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    largest = max(read_dataset(clothing5_dir / "test").class_counts().values())
    assert set(summary["per_class"].values()) == {largest}
    assert read_dataset(out).class_counts() == summary["per_class"]
    assert Image.open(tmp_path / "grid.png").size[1] > 8 * 64
