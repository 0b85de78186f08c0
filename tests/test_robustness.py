"""Robustness: corruptions, the wild-test suite, recommendations and their outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from pixelforge.robustness.corruptions import CORRUPTIONS, corrupt, has_uniform_background
from pixelforge.robustness.recommend import augment_spec, merged_augment, recommend, train_command
from pixelforge.robustness.suite import accuracy, macro_precision, run_wild_suite


def bars(n_per_class: int = 60, size: int = 16, seed: int = 0):
    """Bright bars on black: class 0 horizontal, 1 vertical, 2 a square outline; jittered position."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    for label in range(3):
        for _ in range(n_per_class):
            img = np.zeros((size, size), np.uint8)
            r, c = rng.integers(4, size - 4, size=2)
            if label == 0:
                img[r : r + 2, 2 : size - 2] = 255
            elif label == 1:
                img[2 : size - 2, c : c + 2] = 255
            else:
                img[r - 3 : r + 3, c - 3 : c + 3] = 255
                img[r - 2 : r + 2, c - 2 : c + 2] = 0
            x.append(img)
            y.append(label)
    return np.stack(x)[..., None], np.array(y)


class TinyModel:
    """What the suite needs of a saved model: classes, preprocess, predict_arrays."""

    def __init__(self, size: int = 16):
        torch.manual_seed(0)
        self.classes = ["horizontal", "vertical", "square"]
        self.preprocess = Preprocess(size=(size, size), channels=1)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(4),
            torch.nn.Flatten(), torch.nn.Linear(128, 3),
        )

    def fit(self, x, y, steps: int = 150):
        opt = torch.optim.Adam(self.net.parameters(), lr=0.01)
        data, target = torch.from_numpy(self.preprocess.transform(x)), torch.from_numpy(y).long()
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(self.net(data), target).backward()
            opt.step()
        return self

    def predict_arrays(self, x, batch_size=256):
        with torch.no_grad():
            return torch.softmax(self.net(torch.from_numpy(self.preprocess.transform(x))), 1).numpy()


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    x, y = bars()
    return TinyModel().fit(x, y), bars(n_per_class=20, seed=1)


@pytest.fixture
def digits():
    """Eight 28x28 bright-on-dark blobs, and an RGB version of them on a light background."""
    rng = np.random.default_rng(3)
    x = np.zeros((8, 28, 28, 1), np.uint8)
    for img in x:
        r, c = rng.integers(8, 20, size=2)
        img[r - 5 : r + 5, c - 2 : c + 2] = 255
        img[r - 5 : r - 3, c - 5 : c + 5] = 200
    rgb = np.where(np.repeat(x, 3, -1) > 0, np.array([200, 30, 40], np.uint8), np.uint8(235))
    return x, rgb.astype(np.uint8)


# ---- corruptions ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_seeded_keeps_shape_and_severity_zero_is_identity(name, digits):
    gray, rgb = digits
    batch = rgb if CORRUPTIONS[name].needs_color else gray
    assert CORRUPTIONS[name].applies_to(batch) is None
    assert np.array_equal(corrupt(name, batch, 0, 0), batch)
    for severity in CORRUPTIONS[name].severities:
        a = corrupt(name, batch, severity, np.random.default_rng(7))
        b = corrupt(name, batch, severity, np.random.default_rng(7))
        assert a.dtype == np.uint8 and a.shape == batch.shape
        assert np.array_equal(a, b), "same seed, same output"
        assert not np.array_equal(a, batch), f"severity {severity} changed nothing"


def test_severities_grow_in_strength(digits):
    gray, _ = digits
    for name in ("noise", "blur", "contrast", "rotation", "background_gray"):
        diffs = [np.abs(corrupt(name, gray, s, 0).astype(int) - gray).mean() for s in CORRUPTIONS[name].severities]
        assert diffs[-1] > diffs[0], name


def test_roll_matches_the_material_four_pixel_shift(digits):
    gray, _ = digits
    assert np.array_equal(corrupt("roll", gray, 3, 0), np.roll(gray, 4, axis=2))
    assert np.array_equal(corrupt("invert", gray, 1, 0), 255 - gray)


def test_geometric_fill_uses_the_border_colour(digits):
    _, rgb = digits
    out = corrupt("shift", rgb, 5, 0)
    assert np.all(out[:, 0, 0] == 235) and np.all(out[:, -1, -1] == 235)


def test_stroke_thickening_follows_polarity(digits):
    gray, _ = digits
    thick = corrupt("thicken", gray, 2, 0)
    assert (thick > 0).sum() > (gray > 0).sum()
    dark_on_light = 255 - gray
    assert (corrupt("thicken", dark_on_light, 2, 0) < 255).sum() > (dark_on_light < 255).sum()


def test_background_replacement_keeps_the_foreground(digits):
    gray, _ = digits
    out = corrupt("background_gray", gray, 3, 0)
    assert np.all(out[gray == 255] == 255)
    assert np.all(out[gray == 0] > 100)


def test_colour_corruptions_and_uniform_background_are_checked(digits):
    gray, rgb = digits
    assert "colour" in CORRUPTIONS["grayscale"].applies_to(gray)
    grey = corrupt("grayscale", rgb, 4, 0)
    assert np.all(grey[..., 0] == grey[..., 1])
    colourized = corrupt("hue_shift", np.repeat(gray, 3, -1), 3, 0)
    assert np.abs(colourized[..., 0].astype(int) - colourized[..., 2]).max() > 20
    noisy = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    assert not has_uniform_background(noisy) and has_uniform_background(gray)


def test_bad_input_is_a_clear_error(digits):
    gray, _ = digits
    with pytest.raises(PixelforgeError, match="unknown corruption"):
        corrupt("sepia", gray, 1, 0)
    with pytest.raises(PixelforgeError, match="severities 0-1"):
        corrupt("invert", gray, 2, 0)
    with pytest.raises(PixelforgeError, match="uint8"):
        corrupt("noise", gray.astype(np.float32), 1, 0)
    assert corrupt("noise", gray[..., 0], 1, 0).shape == (8, 28, 28)


def test_corruptions_are_the_augment_ops_at_fixed_strength(digits):
    """Corruptions run the augmentation ops (or their warp engine) with fixed parameters, and still
    compute exactly what their definitions say, pixel for pixel."""
    import cv2

    gray, rgb = digits
    blurred = corrupt("blur", gray, 3, 0)  # sigma 1 px per 28 px
    assert np.array_equal(blurred[..., 0], np.stack([cv2.GaussianBlur(im, (0, 0), 1.0) for im in gray[..., 0]]))
    assert np.array_equal(corrupt("jpeg", rgb, 2, 0)[0], cv2.cvtColor(cv2.imdecode(
        cv2.imencode(".jpg", cv2.cvtColor(rgb[0], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 50])[1],
        cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    assert np.array_equal(corrupt("thicken", gray, 2, 0)[..., 0], np.stack([cv2.dilate(im, ellipse) for im in gray[..., 0]]))
    assert np.array_equal(corrupt("grayscale", rgb, 4, 0)[..., 1], np.clip(np.rint(
        rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)), 0, 255).astype(np.uint8))
    brighter, darker = (np.clip(np.rint(gray + d), 0, 255) for d in (25.5, -25.5))  # +-0.1 x 255
    assert all(np.array_equal(out, b) or np.array_equal(out, d)
               for out, b, d in zip(corrupt("brightness", gray, 1, 0), brighter, darker, strict=True))
    # rotation about the true centre, uncovered pixels in the border colour (also off-square)
    wide = np.ascontiguousarray(np.pad(rgb, ((0, 0), (0, 0), (5, 5), (0, 0)), constant_values=235)[:1])
    h, w = wide.shape[1:3]
    turned = [cv2.warpAffine(wide[0], cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), a, 1.0), (w, h),
                             flags=cv2.INTER_LINEAR, borderValue=(235, 235, 235)) for a in (20.0, -20.0)]
    assert any(np.array_equal(corrupt("rotation", wide, 3, seed)[0], t) for seed in (0, 1) for t in turned)
    # noise: the noise op's draws, at the corruption's strength
    flat = np.full((4, 28, 28, 1), 128, np.uint8)
    assert np.std(corrupt("noise", flat, 3, 0).astype(float) - 128) == pytest.approx(0.12 * 255, rel=0.05)


def test_contrast_is_scale_shift_within_one_level_of_the_pixel_formula():
    """contrast is the scale_shift op's alpha·x + beta (alpha = level, beta = (1 - level) x mean), one
    lookup table per image; (x - mean)·level + mean rounds differently in rare ties, by one level."""
    x = np.random.default_rng(1).integers(0, 256, (16, 17, 23, 3), dtype=np.uint8)
    xf = x.astype(np.float32)
    mean = xf.mean(axis=(1, 2, 3), keepdims=True)
    for severity, level in enumerate(CORRUPTIONS["contrast"].levels, start=1):
        reference = np.clip(np.rint((xf - mean) * level + mean), 0, 255)
        assert np.abs(corrupt("contrast", x, severity, 0) - reference).max() <= 1


# ---- metrics and suite ------------------------------------------------------------------------
def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import precision_score

    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 5, 200)
    assert accuracy(t, p) == pytest.approx(np.mean(t == p))
    assert macro_precision(t, p) == pytest.approx(precision_score(t, p, average="macro", zero_division=0))


def test_wild_suite_finds_the_inversion_weakness(trained):
    model, (x, y) = trained
    report = run_wild_suite(model, x, y, corruptions=["invert", "roll", "noise", "grayscale"], seed=1, threshold=0.1)
    assert report["clean"]["accuracy"] > 0.9
    assert report["images"] == len(x)
    assert report["corruptions"]["invert"]["severities"]["1"]["accuracy"] < 0.8
    assert report["corruptions"]["invert"]["max_drop"] > 0.2
    assert set(report["corruptions"]["noise"]["severities"]) == {"1", "2", "3", "4", "5"}
    assert "grayscale" in report["not_applicable"]
    recs = {r["corruption"]: r for r in report["recommendations"]}
    assert "invert" in recs and "noise" not in recs, "noise costs less than the threshold"
    again = run_wild_suite(model, x, y, corruptions=["noise"], seed=1, threshold=0.1)
    assert again["corruptions"]["noise"] == report["corruptions"]["noise"], "seeded: repeatable per corruption"
    json.dumps(report)


def test_wild_suite_limit_severities_and_class_names(trained):
    model, (x, y) = trained
    names = np.array(model.classes)[y]
    report = run_wild_suite(model, x[..., 0], names, corruptions=["blur", "invert"], severities=[2, 4], limit=30)
    assert report["images"] == 30
    assert set(report["corruptions"]["blur"]["severities"]) == {"2", "4"}
    assert "invert" not in report["corruptions"], "invert has one severity; 2 and 4 are beyond it"
    with pytest.raises(PixelforgeError, match="not among the model's classes"):
        run_wild_suite(model, x, np.array(["circle"] * len(x)), corruptions=["blur"])


def test_wild_suite_reads_a_manifest_and_a_wild_dir(trained, tmp_path):
    from pixelforge.data.read import read_dataset
    from pixelforge.robustness.report import write_report
    from tests.conftest import write_png

    model, (x, y) = trained
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        write_png(tmp_path / "data" / "test" / model.classes[label] / f"{i}.png", img[..., 0])
        write_png(tmp_path / "data" / "train" / model.classes[label] / f"{i}.png", img[..., 0])
    for i in range(6):  # the user's own images: inverted ones fool the model
        write_png(tmp_path / "wild" / model.classes[y[i * 10]] / f"w{i}.png", 255 - x[i * 10, ..., 0])
    manifest = read_dataset(str(tmp_path / "data"))
    report = run_wild_suite(model, manifest, corruptions=["invert", "shift"], wild_dir=tmp_path / "wild")
    assert report["split"] == "test" and report["images"] == len(x)
    assert report["wild"]["images"] == 6 and report["wild"]["misclassified"]
    paths = write_report(report, tmp_path / "out", saved_model=model, example=x[0])
    for name in ("report.json", "report.html", "accuracy.png", "examples.png", "wild_misclassified.png"):
        assert (tmp_path / "out" / name).stat().st_size > 100, name
    assert "Testing in the wild" in (tmp_path / "out" / "report.html").read_text()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["clean"] == report["clean"]
    assert not list((tmp_path / "out").glob(".*tmp")), paths


# ---- recommendations --------------------------------------------------------------------------
def _fake_report(drops: dict) -> dict:
    corruptions = {}
    for name, per_sev in drops.items():
        levels = CORRUPTIONS[name].levels
        sev = {str(s): {"accuracy": 0.98 - d, "drop": d, "level": levels[s - 1], "macro_precision": 0.9}
               for s, d in per_sev.items()}
        corruptions[name] = {"severities": sev, "max_drop": max(per_sev.values())}
    return {"corruptions": corruptions}


def test_recommendations_follow_the_failing_levels():
    report = _fake_report({
        "invert": {1: 0.95},
        "roll": {1: 0.01, 2: 0.1, 3: 0.57, 4: 0.8, 5: 0.9},
        "rotation": {1: 0.0, 2: 0.02, 3: 0.03},
        "background_texture": {1: 0.2},
    })
    recs = {r["corruption"]: r for r in recommend(report, threshold=0.05)}
    assert set(recs) == {"invert", "roll", "background_texture"}
    assert recs["roll"]["severity"] == 3 and recs["roll"]["augment"].get("width_shift_range", 0.2) == 0.2
    assert "10% inverted" in recs["invert"]["data"]
    merged = merged_augment(list(recs.values()))
    spec = augment_spec(merged)
    assert "width_shift_range=0.2" in spec or "width_shift_range" not in merged
    cmd = train_command("data/mnist", "cnn", "runs/robust", merged, {"epochs": 10, "batch_size": 32})
    assert cmd.startswith("pixelforge train data/mnist --model cnn --epochs 10 --batch-size 32 --out runs/robust")
    if merged:
        assert f"--augment {spec}" in cmd


# ---- command line -----------------------------------------------------------------------------
def test_evaluate_wild_cli_writes_the_report_and_a_train_command_that_runs(tmp_path):
    import shlex

    from typer.testing import CliRunner

    from pixelforge.cli import app
    from tests.conftest import write_png

    x, y = bars(n_per_class=12, seed=4)
    names = ["horizontal", "vertical", "square"]
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        split = "test" if i % 3 == 0 else "train"
        write_png(tmp_path / "data" / split / names[label] / f"{i}.png", img[..., 0])
    for i in range(3):
        write_png(tmp_path / "mine" / names[y[i * 12]] / f"m{i}.png", 255 - x[i * 12, ..., 0])
    runner = CliRunner()
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(tmp_path / "data"), "--out", str(run), "--model", "dnn",
                                  "--param", "nodes=16", "--epochs", "2", "--json"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["evaluate", str(run), str(tmp_path / "data"), "--wild", "--wild-dir",
                                 str(tmp_path / "mine"), "--corruptions", "invert,shift,noise",
                                 "--severities", "1-3", "--threshold", "0.0", "--json"])
    assert result.exit_code == 0, result.output
    wild = json.loads(result.stdout)["wild"]
    assert set(wild["corruptions"]) == {"invert", "shift", "noise"}
    assert set(wild["corruptions"]["shift"]["severities"]) == {"1", "2", "3"}
    assert wild["wild"]["images"] == 3
    assert (run / "evaluation" / "wild" / "report.html").exists()
    command = wild["train_command"]
    assert command.startswith(f"pixelforge train {tmp_path / 'data'} --model dnn --epochs 2")
    assert "--param nodes=16" in command and "--augment" in command
    again = runner.invoke(app, shlex.split(command)[1:] + ["--json"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "run-robust" / "model.json").exists()
    bad = runner.invoke(app, ["evaluate", str(run), str(tmp_path / "data"), "--wild", "--severities", "x"])
    assert bad.exit_code == 2 and "--severities" in bad.output
