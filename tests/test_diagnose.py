"""Shift diagnosis (pixelforge.robustness.diagnose) and the wild evidence sets (tools/make_wild.py).

The one-axis tests shift real images (the embedded Fashion-MNIST sample; MNIST from the shared
datasets, slow) on one axis at a time and check that the diagnosis names that axis first.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pixelforge.errors import ParameterError, PixelforgeError
from pixelforge.robustness.diagnose import AXIS_NAMES, compare, diagnose_shift, measure_image, measure_set
from tests.conftest import write_png

ROOT = Path(__file__).resolve().parents[1]


# ---- one-axis shifts of 28x28 grayscale images (bright object on black) --------------------------
def invert(x, rng):
    return 255 - x


def off_centre(x, rng):
    """Move each object 4-6 pixels up or down and left or right (black comes in, nothing wraps)."""
    out = np.zeros_like(x)
    for img, o in zip(x, out, strict=True):
        dy, dx = rng.choice([-1, 1], 2) * rng.integers(4, 7, 2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        o[:] = cv2.warpAffine(img, m, (28, 28), flags=cv2.INTER_NEAREST, borderValue=0)
    return out


def scale_down(x, rng):
    """Half the size, still centred."""
    out = np.zeros_like(x)
    out[:, 7:21, 7:21] = [cv2.resize(img, (14, 14), interpolation=cv2.INTER_AREA) for img in x]
    return out


def _composite(x, background):
    alpha = x.astype(np.float32)[..., None] / 255
    return (alpha * x[..., None] + (1 - alpha) * background).round().astype(np.uint8)


def grey_background(x, rng):
    return _composite(x, np.full((len(x), 28, 28, 3), 110, np.float32))


def blob_background(x, rng):
    """Smooth blobs (up to 110) over half of a black background: its median stays dark."""
    fields = [cv2.resize(rng.random((5, 5)).astype(np.float32), (28, 28), interpolation=cv2.INTER_CUBIC)
              for _ in x]
    return _composite(x, (np.clip(np.stack(fields) - 0.5, 0, None) * 220)[..., None])


def coloured_background(x, rng):
    """Dark saturated colours: red, green, blue, purple."""
    colours = np.array([[130, 0, 0], [0, 70, 0], [0, 0, 190], [100, 0, 120]], np.float32)
    return _composite(x, colours[rng.integers(4, size=len(x))][:, None, None, :])


def blur(x, rng):
    return np.stack([cv2.GaussianBlur(img, (0, 0), 1.5) for img in x])


def noise(x, rng):
    return np.clip(x + rng.normal(0, 25, x.shape), 0, 255).astype(np.uint8)


SHIFTS = {
    "polarity": invert, "position": off_centre, "scale": scale_down,
    "background_brightness": grey_background, "background_texture": blob_background,
    "background_colour": coloured_background, "sharpness": blur, "noise": noise,
}
# Fashion-MNIST garments fill the frame: moving one crops it (a scale change too), and its own border
# is mostly garment, so a background texture barely shows there; MNIST digits test those two.
FASHION_SHIFTS = [a for a in SHIFTS if a not in ("position", "background_texture")]


@pytest.fixture(scope="module")
def fashion():
    """(train images, test images, train measurements) of the embedded sample, 28x28 uint8."""
    from pixelforge.data.loader import load_arrays
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.datasets import load_fashion_sample

    spec = Preprocess(channels=1)
    train = load_arrays(load_fashion_sample("train"), spec)[0][..., 0]
    test = load_arrays(load_fashion_sample("test"), spec)[0][..., 0]
    values, *_ = measure_set(train, size=28, limit=900, seed=0)
    return train, test[::2], values


@pytest.mark.parametrize("axis", FASHION_SHIFTS)
def test_a_fashion_set_shifted_on_one_axis_is_diagnosed_on_that_axis_first(fashion, axis):
    _train, test, train_values = fashion
    shifted = SHIFTS[axis](test, np.random.default_rng(1))
    wild, *_ = measure_set(shifted, size=28, limit=None)
    rows = compare(train_values, wild)
    assert rows[0]["axis"] == axis, [(r["axis"], r["distance"]) for r in rows[:4]]
    assert rows[0]["differs"] and rows[0]["distance"] >= 2
    assert rows[0]["distance"] > 1.5 * rows[1]["distance"], "named clearly ahead of the next axis"


def test_the_test_split_of_the_same_data_differs_on_no_axis(fashion):
    _train, test, train_values = fashion
    rows = compare(train_values, measure_set(test, size=28, limit=None)[0])
    assert [r["axis"] for r in rows if r["differs"]] == []
    assert max(r["distance"] for r in rows) < 0.3
    assert {r["axis"] for r in rows} == set(AXIS_NAMES)


@pytest.mark.slow
def test_an_mnist_set_shifted_on_one_axis_is_diagnosed_on_that_axis_first(mnist_dir):
    from PIL import Image

    def load(split, step):
        files = sorted((mnist_dir / split).glob("*/*.png"))[::step]
        return np.stack([np.asarray(Image.open(f)) for f in files])

    train, test = load("train", 60), load("test", 20)
    train_values, *_ = measure_set(train, size=28, limit=None)
    assert not [r for r in compare(train_values, measure_set(test, size=28)[0]) if r["differs"]]
    for axis, shift in SHIFTS.items():
        rows = compare(train_values, measure_set(shift(test, np.random.default_rng(2)), size=28)[0])
        assert rows[0]["axis"] == axis, [(r["axis"], r["distance"]) for r in rows[:4]]
        assert rows[0]["distance"] > 1.5 * rows[1]["distance"], (axis, rows[:2])


# ---- measuring one image ----------------------------------------------------------------------
def test_measure_image_reads_polarity_position_scale_and_colour():
    img = np.zeros((28, 28, 3), np.uint8)
    img[4:12, 16:24] = 255  # an 8x8 white square up and to the right
    v = measure_image(img, (56, 28))
    assert v["polarity"] == 0 and v["background_brightness"] == 0
    assert v["position"] == pytest.approx(np.hypot((19.5 - 13.5) / 28, (7.5 - 13.5) / 28))
    assert v["scale"] == pytest.approx(8 / 28)
    assert v["stroke_width"] == pytest.approx(2 * 64 / 32 / 8)  # a full square: area / half perimeter
    assert v["aspect_ratio"] == pytest.approx(-1) and v["size"] == pytest.approx(np.log2(np.sqrt(56 * 28)))
    assert v["colour_saturation"] == 0 and v["noise"] == 0
    inverted = measure_image(255 - img, (28, 28))
    assert inverted["polarity"] == 1 and inverted["background_brightness"] == 1
    red = np.zeros_like(img)
    red[..., 0] = np.where(img[..., 0] > 0, 255, 40)  # a red square on a dark red background
    assert measure_image(red, (28, 28))["background_colour"] == pytest.approx(40 / 255, abs=1e-6)
    blank = measure_image(np.full((28, 28, 3), 128, np.uint8), (28, 28))
    assert np.isnan(blank["polarity"]) and blank["background_texture"] == 0


# ---- the API ---------------------------------------------------------------------------------
def test_diagnose_shift_on_arrays_is_seeded_json_ready_and_keeps_examples(fashion):
    train, test, _ = fashion
    examples: dict = {}
    report = diagnose_shift(train, invert(test, None), size=28, limit=300, seed=3, examples=4,
                            examples_out=examples)
    assert report["differs"][0] == "polarity" and report["axes"][0]["direction"] == "higher"
    assert report["summary"].startswith("your images differ from the training data in polarity")
    assert report["train"]["images"] == 300 and report["wild"]["images"] == 300
    assert "W1" in report["formula"] and report["cut"] == 1.0
    assert len(examples["wild"]) == 4 and examples["wild"][0].shape == (28, 28, 3)
    assert examples["wild"][0].mean() > examples["train"][0].mean(), "the wild examples are the inverted ones"
    assert diagnose_shift(train, invert(test, None), size=28, limit=300, seed=3) == report
    json.dumps(report)


def test_diagnose_shift_reads_folders_counts_unreadable_files_and_measures_native_sizes(tmp_path, fashion):
    train, test, _ = fashion
    for i, img in enumerate(train[:40]):
        write_png(tmp_path / "data" / "train" / str(i % 2) / f"{i}.png", img)
    for i, img in enumerate(test[:20]):  # the user's images: 84 x 56 RGB, dark on light
        big = cv2.resize(255 - img, (56, 84), interpolation=cv2.INTER_CUBIC)
        write_png(tmp_path / "mine" / str(i % 2) / f"{i}.png", np.repeat(big[..., None], 3, -1))
    (tmp_path / "mine" / "0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    report = diagnose_shift(str(tmp_path / "data"), tmp_path / "mine", size=28)
    assert report["train"]["images"] == 40 and report["wild"]["images"] == 20
    assert report["wild"]["skipped_count"] == 1 and "broken.png" in report["wild"]["skipped"][0]["item"]
    by = {r["axis"]: r for r in report["axes"]}
    assert by["size"]["wild"]["median"] == pytest.approx(np.log2(np.sqrt(84 * 56)))
    assert by["aspect_ratio"]["wild"]["median"] == pytest.approx(np.log2(56 / 84))
    assert report["differs"][0] == "polarity"


def test_bad_input_is_a_clear_error(tmp_path, fashion):
    train = fashion[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(PixelforgeError, match="no images"):
        diagnose_shift(train, tmp_path / "empty")
    with pytest.raises(ParameterError, match="N x H x W"):
        diagnose_shift(train, np.zeros((5, 5), np.uint8))
    with pytest.raises(ParameterError, match="cut must be positive"):
        diagnose_shift(train, train, cut=0)
    with pytest.raises(ParameterError, match="at least 8 pixels"):
        diagnose_shift(train, train, size=4)


# ---- the report and the command line -------------------------------------------------------------
class BrightnessModel:
    """What the wild suite needs of a saved model: it calls an image class 0 when it is mostly dark."""

    classes = ["0", "1", "2"]

    def __init__(self):
        from pixelforge.data.preprocess import Preprocess

        self.preprocess = Preprocess(size=(28, 28), channels=1)

    def predict_arrays(self, x, batch_size=256):
        dark = (x.reshape(len(x), -1).mean(axis=1) < 100).astype(np.float32)
        return np.stack([dark, 1 - dark, np.zeros_like(dark)], axis=1)


def _write_sets(tmp_path, train, test):
    for i, img in enumerate(train[::10]):
        write_png(tmp_path / "data" / "train" / str(i % 3) / f"{i}.png", img)
    for i, img in enumerate(test[:30]):
        write_png(tmp_path / "data" / "test" / str(i % 3) / f"{i}.png", img)
        if i < 12:  # the user's images: the same garments inverted
            write_png(tmp_path / "mine" / str(i % 3) / f"m{i}.png", 255 - img)


def test_the_wild_report_says_how_your_images_differ(tmp_path, fashion):
    from rich.console import Console

    from pixelforge.data.read import read_dataset
    from pixelforge.robustness.command import wild_evaluate
    from pixelforge.robustness.report import print_report

    train, test, _ = fashion
    _write_sets(tmp_path, train, test)
    manifest = read_dataset(str(tmp_path / "data"))
    report = wild_evaluate(BrightnessModel(), manifest.split("test"), tmp_path / "run", tmp_path / "data",
                           wild_dir=tmp_path / "mine", corruptions="invert", out_dir=tmp_path / "out", limit=100,
                           reference=manifest)
    shift = report["shift"]
    assert shift["differs"][0] == "polarity"
    assert 90 <= shift["train"]["images"] <= 100, "a sample of the train split (300 images), not the test split (30)"
    assert json.loads((tmp_path / "out" / "report.json").read_text())["shift"] == shift
    html = (tmp_path / "out" / "report.html").read_text()
    assert "How your images differ from the training data" in html and "<th>polarity</th>" in html
    assert (tmp_path / "out" / "shift_examples.png").stat().st_size > 1000
    console = Console(record=True, width=120)
    print_report(report, console)
    text = console.export_text()
    assert "how your images differ" in text and "polarity: auto-polarity" in text


@pytest.mark.slow
def test_evaluate_wild_dir_on_the_command_line_reports_the_shift(tmp_path, fashion):
    from typer.testing import CliRunner

    from pixelforge.cli import app

    train, test, _ = fashion
    _write_sets(tmp_path, train, test)
    runner = CliRunner()
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(tmp_path / "data"), "--out", str(run), "--model", "dnn",
                                  "--param", "nodes=8", "--epochs", "1", "--json"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["evaluate", str(run), str(tmp_path / "data"), "--wild-dir", str(tmp_path / "mine"),
                                 "--corruptions", "invert"])
    assert result.exit_code == 0, result.output
    assert "how your images differ" in result.output and "auto-polarity" in result.output
    out = run / "evaluation" / "wild"
    assert json.loads((out / "report.json").read_text())["shift"]["differs"][0] == "polarity"
    assert "How your images differ from the training data" in (out / "report.html").read_text()


# ---- tools/make_wild.py ---------------------------------------------------------------------------
def _make_wild():
    spec = importlib.util.spec_from_file_location("make_wild", ROOT / "tools" / "make_wild.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_make_wild_digits_are_seeded_varied_and_written_atomically(tmp_path):
    from PIL import Image

    make_wild = _make_wild()
    info = make_wild.write_set("digits", tmp_path / "a", seed=5, per_class=3)
    assert info["images"] == 30
    files = _files(tmp_path / "a")
    assert sorted({name.split("/")[0] for name in files}) == [str(d) for d in range(10)]
    make_wild.write_set("digits", tmp_path / "b", seed=5, per_class=3)
    assert _files(tmp_path / "b") == files, "same seed, same bytes"
    make_wild.write_set("digits", tmp_path / "b", seed=6, per_class=3, force=True)
    assert _files(tmp_path / "b") != files
    with pytest.raises(SystemExit, match="exists"):
        make_wild.write_set("digits", tmp_path / "b", seed=6, per_class=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"], "no temporary folder is left"
    sizes = {Image.open(tmp_path / "a" / name).size for name in files}
    assert len(sizes) > 5 and all(64 <= min(s) and max(s) <= 160 for s in sizes)
    assert all(Image.open(tmp_path / "a" / name).mode == "RGB" for name in files)


def test_make_wild_clothes_are_inverted_fashion_test_garments(tmp_path, fashion):
    from PIL import Image

    _train, test, _ = fashion
    for i, img in enumerate(test[:20]):  # a stand-in Fashion-MNIST tree with a test split
        write_png(tmp_path / "fmnist" / "test" / str(i % 10) / f"{i}.png", img)
    info = _make_wild().write_set("clothes", tmp_path / "wild", seed=0, per_class=2, fashion_dir=tmp_path / "fmnist")
    assert info["images"] == 20
    report = diagnose_shift(test, tmp_path / "wild", size=28)
    assert "polarity" in report["differs"][:2], report["summary"]
    img = np.asarray(Image.open(next((tmp_path / "wild" / "3").iterdir())).convert("L"))
    assert np.median(np.concatenate([img[0], img[-1]])) > 128, "light backgrounds"
