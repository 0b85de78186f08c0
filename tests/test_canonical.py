"""Canonicalizing preprocessing: polarity, crop, centre by mass, contrast stretch — on real digits and
garments, saved in model.json and applied again at predict."""

from __future__ import annotations

import io
import json
import tarfile
from functools import lru_cache

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelforge.cli import app
from pixelforge.data import canonical
from pixelforge.data.preprocess import Preprocess
from pixelforge.datasets import load_fashion_sample
from pixelforge.errors import ParameterError
from pixelforge.train.data import prepare
from tests.conftest import SHARED, write_png
from tests.train_helpers import one_thread  # noqa: F401 (autouse fixture)

runner = CliRunner()


@lru_cache(maxsize=1)
def mnist_digits(n: int = 40) -> np.ndarray:
    """n MNIST test digits (every 250th file, uint8 N x 28 x 28 x 1), read straight from the archive."""
    archive = SHARED / "mnist.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (real datasets live in ../shared/datasets)")
    images = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.name.startswith("mnist/train/"):
                break
            if member.isfile() and member.name.endswith(".png") and int(member.name.split("/")[-1][:-4]) % 250 == 0:
                images.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read()))))
                if len(images) == n:
                    break
    return np.stack(images)[..., None]


@lru_cache(maxsize=1)
def garments() -> tuple[np.ndarray, list[str]]:
    manifest = load_fashion_sample("test")
    rows = range(0, len(manifest), 10)
    return np.stack([manifest.load(i) for i in rows]), [manifest.labels[i] for i in rows]


def wild_copy(img: np.ndarray, seed: int, scale: float = 0.8, canvas: int = 48) -> np.ndarray:
    """The digit inverted (dark on light), shrunk to ``scale`` and pasted off-centre on a larger canvas."""
    rng = np.random.default_rng(seed)
    side = int(round(28 * scale))
    small = cv2.resize(255 - img[..., 0], (side, side), interpolation=cv2.INTER_AREA)
    out = np.full((canvas, canvas), 255, np.uint8)
    top, left = rng.integers(0, canvas - side + 1, 2)
    out[top : top + side, left : left + side] = small
    return out[..., None]


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


# ---- the steps, on real images ------------------------------------------------------------------
def test_centering_mnist_digits_changes_almost_nothing_because_mnist_was_made_that_way():
    digits = mnist_digits()
    spec = Preprocess(size=28, channels=1, canonical="center")
    assert np.mean([mean_diff(spec.decode(d), d) for d in digits]) < 1.0  # of 255 levels


def test_an_inverted_shifted_shrunk_copy_canonicalizes_back_to_its_original():
    digits = mnist_digits()
    spec = Preprocess(size=28, channels=1, canonical="polarity,center", polarity="dark")
    plain = Preprocess(size=28, channels=1)
    originals = np.stack([spec.decode(d) for d in digits])
    raw, canon, nearest_is_own = [], [], 0
    for i, digit in enumerate(digits):
        wild = wild_copy(digit, seed=i)
        raw.append(mean_diff(plain.decode(wild), digit))
        back = spec.decode(wild)
        canon.append(mean_diff(back, originals[i]))
        nearest_is_own += int(np.argmin([mean_diff(back, o) for o in originals]) == i)
    assert np.mean(canon) < 0.1 * np.mean(raw)
    assert nearest_is_own >= 0.95 * len(digits)


def test_polarity_inverts_only_images_whose_background_differs_from_the_training_data():
    x, _ = garments()
    spec = Preprocess(channels=1, canonical="polarity", polarity="dark")
    assert all(np.array_equal(spec.decode(img), img) for img in x[:50])  # already dark: untouched
    assert all(np.array_equal(spec.decode(255 - img), img) for img in x[:50])  # inverted back exactly


def test_fit_polarity_measures_the_training_background():
    x, _ = garments()
    assert Preprocess().fit_polarity(x).polarity == "dark"
    assert Preprocess().fit_polarity(255 - x).polarity == "light"
    assert Preprocess().fit_polarity(load_fashion_sample("train")).polarity == "dark"  # a Manifest


def test_crop_finds_an_off_centre_garment_and_pads_it_to_square():
    x, _ = garments()
    spec = Preprocess(size=28, channels=1, canonical="crop")
    diffs, raws = [], []
    for i, img in enumerate(x[:40]):
        canvas = np.zeros((90, 60, 1), np.uint8)  # a tall frame, the garment in one corner
        top, left = (0, 0) if i % 2 else (62, 32)
        canvas[top : top + 28, left : left + 28] = img
        diffs.append(mean_diff(spec.decode(canvas), spec.decode(img)))
        raws.append(mean_diff(Preprocess(size=28).decode(canvas), img))
    assert np.mean(diffs) < 0.25 * np.mean(raws)


def test_crop_keeps_the_target_aspect_ratio_and_fills_with_the_background():
    x, _ = garments()
    light = 255 - x[3]  # dark garment on white
    out = canonical.crop_to_content(canonical.Scene(np.pad(light, ((20, 20), (5, 40), (0, 0)), constant_values=255)), 2.0)
    assert abs(out.shape[0] / out.shape[1] - 2.0) < 0.1
    assert np.median(np.concatenate([out[0], out[-1]])) == 255


def test_stretch_restores_a_washed_out_image():
    x, _ = garments()
    spec = Preprocess(canonical="stretch")
    for img in x[:20]:
        faded = (img.astype(np.float32) * 0.3 + 90).astype(np.uint8)
        out = spec.decode(faded)
        assert out.min() == 0 and out.max() == 255
        assert mean_diff(out, spec.decode(img)) < 12


def test_blank_images_pass_through_every_step():
    spec = Preprocess(size=28, channels=1, canonical="polarity,center,stretch", polarity="dark")
    for value in (0, 128, 255):
        out = spec.decode(np.full((40, 30, 1), value, np.uint8))
        assert out.shape == (28, 28, 1) and np.all(out == value)


def test_colour_images_keep_their_channels_and_sixteen_bit_images_their_depth():
    x, _ = garments()
    rgb = np.repeat(255 - x[0], 3, axis=2) * np.array([1.0, 0.8, 0.5])
    spec = Preprocess(size=32, canonical="polarity,center,stretch", polarity="dark")
    out = spec.decode(rgb.astype(np.uint8))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    gray = out.astype(np.float32) @ canonical.LUMA
    assert np.median(np.concatenate([gray[0], gray[-1]])) < 0.5 * gray.max()  # the light background became dark
    deep = spec.decode(x[0].astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.max() == 65535


def test_centering_costs_well_under_a_millisecond_per_image():
    import time

    x, _ = garments()
    spec = Preprocess(size=28, channels=1, canonical="polarity,center,stretch", polarity="dark")
    start = time.perf_counter()
    for img in x:
        spec.decode(img)
    assert (time.perf_counter() - start) / len(x) < 1e-3


# ---- the spec -----------------------------------------------------------------------------------
def test_the_steps_round_trip_in_json_and_run_in_a_fixed_order():
    spec = Preprocess(size=28, channels=1, canonical=["stretch", "polarity", "center"], polarity="light")
    assert spec.canonical == ["polarity", "center", "stretch"]
    again = Preprocess.from_json(spec.to_json())
    assert again == spec and again.to_dict() == spec.to_dict()


def test_a_spec_without_steps_is_saved_as_before():
    assert "canonical" not in Preprocess(size=28).to_dict()
    assert "polarity" not in Preprocess(size=28).to_dict()


def test_bad_steps_and_an_unfitted_polarity_say_what_is_wrong():
    with pytest.raises(ParameterError, match="canonical steps must be among"):
        Preprocess(canonical="polarity,centre")
    with pytest.raises(ParameterError, match="polarity must be one of"):
        Preprocess(polarity="bright")
    with pytest.raises(ParameterError, match="fit_polarity"):
        Preprocess(canonical="polarity").decode(np.zeros((8, 8, 1), np.uint8))


def test_prepare_measures_polarity_and_canonicalizes_arrays_already_at_model_size():
    x, labels = garments()
    data, spec = prepare((255 - x[:30], labels[:30]), Preprocess(canonical="polarity"))
    assert spec.polarity == "light"  # the training data (inverted garments) has light backgrounds
    data, spec = prepare((x[:30], labels[:30]), Preprocess(canonical="polarity", polarity="light"))
    assert np.array_equal(data.x, 255 - x[:30])  # the fast path for ready arrays does not skip the steps


# ---- model.json and predict ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def garment_tree(tmp_path_factory):
    x, labels = garments()
    root = tmp_path_factory.mktemp("garments")
    for i, (img, label) in enumerate(zip(x, labels, strict=True)):
        write_png(root / label.replace("/", "-") / f"{i}.png", img[..., 0])
    return root, x


def test_train_saves_the_steps_and_predict_applies_them(garment_tree, tmp_path):
    root, x = garment_tree
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(root), "--out", str(out), "--epochs", "1", "--batch-size", "32",
                                 "--canonical", "polarity,center", "--json"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "model.json").read_text())["preprocess"]
    assert saved["canonical"] == ["polarity", "center"] and saved["polarity"] == "dark"
    originals = [write_png(tmp_path / "in" / f"{i}.png", x[i, ..., 0]) for i in range(6)]
    inverted = [write_png(tmp_path / "inv" / f"{i}.png", 255 - x[i, ..., 0]) for i in range(6)]
    answers = []
    for files in (originals, inverted):
        result = runner.invoke(app, ["predict", str(out), *map(str, files), "--json"])
        assert result.exit_code == 0, result.output
        answers.append(json.loads(result.stdout))
    assert len(answers[0]) == 6 and all("prediction" in item for item in answers[0])
    strip = [[{k: v for k, v in item.items() if k not in ("image", "path", "source")} for item in a] for a in answers]
    assert strip[0] == strip[1]  # an inverted image predicts exactly as its original
