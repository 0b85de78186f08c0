"""Augmentations for images unlike the training data: new backgrounds, colours, perspective, stroke
width — and the blur, noise and JPEG ops beside them — on real garments and digits."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from pixelforge.augment import Pipeline, SpecError
from pixelforge.augment.compositing import LUMA, scene
from pixelforge.datasets import load_fashion_sample
from tests.test_canonical import mnist_digits

WILD_OPS = {
    "background": "background=1.0",
    "recolor": "recolor=1.0",
    "perspective": "perspective=0.15,perspective.p=1",
    "stroke": "stroke=1.0",
    "blur": "blur=1.5,blur.p=1",
    "noise": "noise=20,noise.p=1",
    "jpeg": "jpeg=[20,40],jpeg.p=1",
    "dilate": "dilate=1.0",
    "erode": "erode=1.0",
}


@lru_cache(maxsize=1)
def garments() -> np.ndarray:
    manifest = load_fashion_sample("test")
    return np.stack([manifest.load(i) for i in range(0, len(manifest), 20)])  # 30 garments, all classes


def as_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255


@pytest.mark.parametrize("name", list(WILD_OPS))
@pytest.mark.parametrize("kind", ["gray", "rgb", "float"])
def test_wild_ops_keep_shape_and_dtype_repeat_with_a_seed_and_change_the_images(name, kind):
    x = garments()
    x = {"gray": x, "rgb": np.repeat(x, 3, axis=3), "float": as_float(x)}[kind]
    pipe = Pipeline.from_spec(WILD_OPS[name])
    out = pipe(x, np.random.default_rng(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.array_equal(out, pipe(x, np.random.default_rng(7)))
    assert not np.array_equal(out, pipe(x, np.random.default_rng(8)))
    changed = [not np.array_equal(a, b) for a, b in zip(out, x, strict=True)]
    assert np.mean(changed) >= 0.8


def test_the_new_ops_round_trip_through_their_recorded_spec():
    text = ("background=0.3,background.kinds=[solid,texture],recolor=0.2,recolor.keep_polarity=false,"
            "perspective=0.1,perspective.fill_mode=constant,stroke=0.4,stroke.size=[2,3,4]")
    pipe = Pipeline.from_spec(text)
    assert [op.name for op in pipe] == ["background", "recolor", "perspective", "stroke"]
    assert Pipeline.from_spec(pipe.to_json()).to_dict() == pipe.to_dict()


def test_bad_parameters_are_named():
    with pytest.raises(SpecError, match="background kinds"):
        Pipeline.from_spec("background=0.5,background.kinds=[photo]")
    with pytest.raises(SpecError, match="perspective fill_mode"):
        Pipeline.from_spec("perspective=0.1,perspective.fill_mode=mirror")
    with pytest.raises(SpecError, match="perspective scale"):
        Pipeline.from_spec("perspective=0.9")
    with pytest.raises(SpecError, match="recolor contrast"):
        Pipeline.from_spec("recolor=0.5,recolor.contrast=2")


# ---- background compositing ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["solid", "gradient", "noise", "texture"])
def test_background_replaces_the_border_and_keeps_the_object(kind):
    digits = mnist_digits()
    out = Pipeline.from_spec(f"background=1.0,background.kinds=[{kind}]")(digits, np.random.default_rng(0))
    ring = lambda b: np.concatenate([b[:, 0], b[:, -1], b[:, :, 0], b[:, :, -1]], axis=1)  # noqa: E731
    background = ring(digits) == 0
    assert np.mean(ring(out)[background] != 0) > 0.5  # the black border is gone
    strokes = digits >= 250  # full-strength stroke pixels stay as they were
    assert np.array_equal(out[strokes], digits[strokes])
    # the new background keeps at least 30% of the stroke/background contrast (default contrast=0.3)
    assert ring(out)[background].max() <= 0.7 * 255 + 1


def test_background_works_on_colour_and_on_light_backgrounds():
    x = np.repeat(255 - garments(), 3, axis=3)  # dark garments on white, RGB
    out = Pipeline.from_spec("background=1.0,background.kinds=[solid]")(x, np.random.default_rng(1))
    bg, obj, _, usable = scene(out.astype(np.float32), 0, 255)
    assert usable.mean() > 0.8
    assert np.all((obj @ LUMA)[usable] < (bg @ LUMA)[usable])  # still darker objects on lighter ground
    colourful = np.abs(out[:, 0, 0, 0].astype(int) - out[:, 0, 0, 2]).max()
    assert colourful > 30  # backgrounds are coloured, not only grey


def test_background_leaves_images_without_a_plain_border_alone():
    noise = np.random.default_rng(0).integers(0, 256, (8, 28, 28, 3), dtype=np.uint8)  # no plain background
    out = Pipeline.from_spec("background=1.0")(noise, np.random.default_rng(0))
    assert np.array_equal(out, noise)


# ---- recolouring ---------------------------------------------------------------------------------
def test_recolor_gives_a_grayscale_model_the_gray_of_a_coloured_image_with_enough_contrast():
    x = garments()
    out = Pipeline.from_spec("recolor=1.0,recolor.contrast=0.3")(x, np.random.default_rng(3))
    bg_before, obj_before, _, ok = scene(x.astype(np.float32), 0, 255)
    bg, obj, _, _ = scene(out.astype(np.float32), 0, 255)
    assert ok.mean() > 0.8
    assert np.all((obj - bg)[ok, 0] > 0)  # bright garments stay brighter than their background
    assert np.median(np.abs(bg[ok, 0] - bg_before[ok, 0])) > 20  # the background level moved
    assert np.all(np.abs(obj - bg)[ok, 0] >= 0.3 * 255 * 0.5)  # never washed out


def test_recolor_on_colour_images_paints_colours_and_may_flip_polarity_when_asked():
    x = np.repeat(garments(), 3, axis=3)
    out = Pipeline.from_spec("recolor=1.0")(x, np.random.default_rng(0))
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).mean() > 10
    flipped = Pipeline.from_spec("recolor=1.0,recolor.keep_polarity=false")(x, np.random.default_rng(0))
    bg, obj, _, ok = scene(flipped.astype(np.float32), 0, 255)
    darker = ((obj - bg) @ LUMA)[ok] < 0
    assert 0.2 < darker.mean() < 0.8


# ---- perspective and stroke width ----------------------------------------------------------------
def test_perspective_moves_the_corners_and_a_zero_scale_does_nothing():
    x = garments()
    out = Pipeline.from_spec("perspective=0.2,perspective.p=1,perspective.fill_mode=constant,perspective.cval=255")(
        x, np.random.default_rng(0))
    assert np.mean(out == 255) > np.mean(x == 255)  # uncovered corners filled with cval
    same = Pipeline.from_spec("perspective=0,perspective.p=1")(x, np.random.default_rng(0))
    assert np.array_equal(same, x)


def test_stroke_thickens_or_thins_whatever_the_polarity():
    digits = mnist_digits()
    pipe = Pipeline.from_spec("stroke=1.0,stroke.size=3")
    bright = pipe(digits, np.random.default_rng(5))
    dark = pipe(255 - digits, np.random.default_rng(5))
    assert np.array_equal(dark, 255 - bright)  # the same stroke change on dark ink on paper
    ink = (bright > 127).sum(axis=(1, 2, 3)) - (digits > 127).sum(axis=(1, 2, 3))
    assert (ink > 0).any() and (ink < 0).any()  # some thicker, some thinner
