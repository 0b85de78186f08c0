"""The data-curation experiment (MNIST) and the wild-test-and-retrain loop, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pixelforge.cli import app
from pixelforge.experiments.curation import MATERIAL, SETUPS, add_inverted, derived_test_sets

runner = CliRunner()


def test_derived_sets_and_inverted_training_images():
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28, 1)
    sets = derived_test_sets(x)
    assert np.array_equal(sets["inverted"], 255 - x)
    assert np.array_equal(sets["shifted"], np.roll(x, 4, axis=2))
    x10 = np.zeros((10, 28, 28, 1), np.uint8)
    more, labels = add_inverted(x10, np.arange(10), 0.1, seed=0)
    assert len(more) == 11 and more[-1].min() == 255 and labels[-1] in range(10)
    assert [s.label for s in SETUPS] == list(MATERIAL)


def test_curation_quick_run_writes_the_side_by_side_table(mnist_dir, tmp_path):
    out = tmp_path / "curation"
    result = runner.invoke(app, ["experiment", "curation", str(mnist_dir), "--out", str(out), "--quick", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    labels = [r["label"] for r in data["rows"]]
    assert labels == list(MATERIAL)
    assert data["recommended"]["row"]["label"] == "CNN [16, 32] + pixelforge recommendations"
    for row in data["rows"]:
        assert 0 <= row["inverted"] <= 1 and 0 <= row["shifted"] <= 1
    assert data["rows"][0]["test"] > 0.6, "even the quick DNN learns MNIST"
    assert "invert" in data["recommended"]["augment"], "the inversion weakness is found and addressed"
    md = (out / "curation.md").read_text()
    assert "| DNN [512] |" in md and "97.9%" in md and "Following pixelforge's own recommendations" in md
    assert (out / "runs" / "dnn-512" / "model.json").exists()


def test_curation_rejects_a_source_without_splits(class_tree):
    result = runner.invoke(app, ["experiment", "curation", str(class_tree), "--quick"])
    assert result.exit_code == 2 and "train and test splits" in result.output


@pytest.mark.slow
def test_curation_full_run_has_the_material_shape(mnist_dir, tmp_path):
    from pixelforge.experiments.curation import run_curation

    result = run_curation(mnist_dir, tmp_path / "full")
    assert result["checks"]["shift_augmentation_lifts_shifted_above_95"]
    assert result["checks"]["inverted_images_lift_inverted_above_90"]
    rows = {r["label"]: r for r in result["rows"]}
    assert rows["DNN [512]"]["test"] > 0.96 and rows["DNN [512]"]["inverted"] < 0.3
    rec = result["recommended"]  # following the suite's advice fixes what the material's table shows
    assert rec["gain"]["inverted"] > 0.2 and rec["gain"]["shifted"] > 0.15
    if rec["gain"]["mean_corrupted_accuracy"] < 0:  # ...and any weakness it opens is reported
        assert "Regressions" in (tmp_path / "full" / "curation.md").read_text()


def test_wild_retrain_softens_until_the_clean_budget_holds(tmp_path):
    from pixelforge.augment.spec import parse_spec
    from pixelforge.experiments.wild_retrain import run_wild_retrain
    from pixelforge.robustness.recommend import soften
    from tests.conftest import write_png
    from tests.test_robustness import bars

    x, y = bars(n_per_class=30, seed=5)
    names = ["horizontal", "vertical", "square"]
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        write_png(tmp_path / "data" / ("test" if i % 3 == 0 else "train") / names[label] / f"{i}.png", img[..., 0])
    result = run_wild_retrain(tmp_path / "data", tmp_path / "out", model="dnn", params={"nodes": [16]}, epochs=1,
                              suite_limit=None, augment="rotation_range=20,invert=0.2", max_clean_drop=-1.0,
                              attempts=2, log=lambda m: None)
    assert [t["augment"] for t in result["attempts"]] == ["invert=0.2,rotation_range=20", "invert=0.1,rotation_range=10"]
    assert set(result["checks"]) == {"mean_corrupted_accuracy_rises", "clean_drop_at_most_1_point"}
    for name in ("wild_retrain.json", "wild_retrain.md", "before/report.html", "after/accuracy.png"):
        assert (tmp_path / "out" / name).exists(), name
    assert soften(parse_spec("brightness_range=[0.6,1.4],jpeg=[30,95],noise=40"), 0.5) == {
        "brightness_range": [0.8, 1.2], "jpeg": [62, 95], "noise": 20}


@pytest.mark.slow
def test_fashion_mnist_retrained_with_the_recommendations_is_more_robust(fashion_mnist_dir, tmp_path):
    from pixelforge.experiments.wild_retrain import run_wild_retrain

    result = run_wild_retrain(fashion_mnist_dir, tmp_path / "fashion", model="fmnist_baseline")
    assert result["checks"]["mean_corrupted_accuracy_rises"]
    assert result["checks"]["clean_drop_at_most_1_point"]
