"""Augmentation ops and Pipeline: exactness, determinism, fill modes, parsing and validation."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scipy import ndimage

from pixelforge.augment import Pipeline, SpecError
from pixelforge.augment.affine import FILL_MODES, apply_affine_transform
from pixelforge.augment.geometric import RollShift, Rot90, roll_batch
from pixelforge.augment.photometric import apply_scale_shift
from pixelforge.augment.spec import parse_spec
from pixelforge.errors import PixelforgeError


def batch(n=8, h=12, w=12, c=3, seed=0, dtype=np.uint8):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c)).astype(dtype)


def keras_reference(x, theta, tx, ty, shear, zx, zy, fill_mode, cval):
    """Keras' apply_affine_transform written out with scipy.ndimage (what tf_keras runs)."""
    t, s = np.deg2rad(theta), np.deg2rad(shear)
    m = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    m = m @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    m = m @ np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    m = m @ np.diag([zx, zy, 1.0])
    ox, oy = x.shape[0] / 2 - 0.5, x.shape[1] / 2 - 0.5
    m = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]]) @ m @ np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    m[:, [0, 1]] = m[:, [1, 0]]
    m[[0, 1]] = m[[1, 0]]
    return np.stack([ndimage.affine_transform(x[..., k], m[:2, :2], m[:2, 2], order=1, mode=fill_mode, cval=cval)
                     for k in range(x.shape[2])], axis=-1)


# ---- exactness -----------------------------------------------------------------------------------
def test_flips_equal_numpy_flips():
    x = batch()
    h = Pipeline.from_spec("horizontal_flip")(x, np.random.default_rng(1))
    flipped = [np.array_equal(h[i], x[i, :, ::-1]) for i in range(len(x))]
    kept = [np.array_equal(h[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)
    v = Pipeline.from_spec("vertical_flip")(x, np.random.default_rng(2))
    assert all(np.array_equal(v[i], x[i, ::-1]) or np.array_equal(v[i], x[i]) for i in range(len(x)))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_equals_numpy_rot90(k):
    x = batch()
    out = Rot90(k=[k])(x, np.random.default_rng(0), 0, 255)
    for i in range(len(x)):
        assert np.array_equal(out[i], np.rot90(x[i], k))


def test_rot90_odd_turns_on_non_square_images_is_a_clear_error():
    with pytest.raises(SpecError, match="square"):
        Rot90(k=[1])(batch(h=8, w=10), np.random.default_rng(0), 0, 255)


def test_roll_shift_equals_np_roll():
    x = batch(h=10, w=14)
    dy, dx = np.array([1, -2, 0, 3, 9, -9, 4, 0]), np.array([0, 4, -1, 2, -13, 13, 7, 0])
    out = roll_batch(x, dy, dx)
    for i in range(len(x)):
        assert np.array_equal(out[i], np.roll(x[i], (dy[i], dx[i]), axis=(0, 1)))


def test_roll_shift_default_cap_is_20_percent():
    op = RollShift()
    assert op.max == 0.2
    dy, dx = op.draw(np.random.default_rng(0), 2000, 50, 100)
    assert np.abs(dy).max() == 10 and np.abs(dx).max() == 20


def corner_image():
    """A white rectangle filling a 40x60 image, with a differently coloured 6x6 block in each corner."""
    img = np.full((40, 60, 3), 255, np.uint8)
    img[:6, :6], img[:6, -6:] = (255, 0, 0), (0, 255, 0)
    img[-6:, :6], img[-6:, -6:] = (0, 0, 255), (255, 0, 255)
    return img


def colours_present(img):
    corners = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255)]
    return [bool(np.any(np.all(np.abs(img.astype(int) - c) <= 10, axis=-1))) for c in corners]


@pytest.mark.parametrize("degrees", [15, 30, 45, 60, 90, -30])
def test_rotate_without_clipping_keeps_all_four_corners(degrees):
    img = corner_image()
    out = Pipeline.from_spec(f"rotate_expand=[{degrees},{degrees}]")(img[None], np.random.default_rng(0))[0]
    assert out.shape == img.shape
    assert colours_present(out) == [True] * 4
    # the same rotation with clipping (Keras' rotation about the centre) loses corners
    clipped = apply_affine_transform(img.astype(np.float32), theta=degrees, fill_mode="constant")
    assert not all(colours_present(clipped))


def test_brightness_alpha_beta_saturates_at_0_and_255():
    x = np.array([0, 10, 100, 200, 250, 255], np.uint8).reshape(1, 1, 6, 1)
    bright = apply_scale_shift(x, 1.5, 40, 0, 255)
    assert bright.ravel().tolist() == [40, 55, 190, 255, 255, 255]
    dark = apply_scale_shift(x, 1.0, -60, 0, 255)
    assert dark.ravel().tolist() == [0, 0, 40, 140, 190, 195]
    # convertScaleAbs semantics on request: |alpha·x + beta| then saturate
    absolute = apply_scale_shift(x, 1.0, -60, 0, 255, take_abs=True)
    ref = cv2.convertScaleAbs(x.reshape(1, 6), alpha=1.0, beta=-60)
    assert absolute.ravel().tolist() == ref.ravel().tolist()
    floats = apply_scale_shift(x.astype(np.float32) / 255, 2.0, 0.0, 0.0, 1.0)
    assert floats.max() == 1.0 and floats.min() == 0.0


def test_invert_and_grayscale():
    x = batch()
    inv = Pipeline.from_spec("invert=1.0")(x, np.random.default_rng(0))
    assert np.array_equal(inv, 255 - x)
    gray = Pipeline.from_spec("grayscale=1.0")(x, np.random.default_rng(0))
    assert np.all(gray[..., 0] == gray[..., 1]) and np.all(gray[..., 1] == gray[..., 2])
    expected = cv2.cvtColor(x[0], cv2.COLOR_RGB2GRAY)
    assert np.abs(gray[0, ..., 0].astype(int) - expected).max() <= 1


def test_dilate_thickens_and_erode_thins_strokes():
    img = np.zeros((1, 15, 15, 1), np.uint8)
    img[0, 3:12, 7] = 255  # a one-pixel stroke
    thick = Pipeline.from_spec("dilate=1.0,dilate.size=3")(img, np.random.default_rng(0))
    assert (thick > 0).sum() == 3 * 11 and thick[0, 7, 6, 0] == 255
    thin = Pipeline.from_spec("erode=1.0,erode.size=3")(thick, np.random.default_rng(0))
    assert np.array_equal(thin > 0, img > 0)


def test_dilate_with_an_elliptical_kernel():
    img = np.zeros((1, 15, 15, 1), np.uint8)
    img[0, 7, 7] = 255
    round_ = Pipeline.from_spec("dilate=1.0,dilate.size=5,dilate.shape=ellipse")(img, np.random.default_rng(0))
    assert np.array_equal(round_[0, 5:10, 5:10, 0] > 0, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)) > 0)
    with pytest.raises(SpecError, match="shape must be one of"):
        Pipeline.from_spec("dilate.shape=disc")


def test_erasing_writes_a_rectangle_of_the_fill_value():
    x = np.full((20, 16, 16, 1), 200, np.uint8)
    out = Pipeline.from_spec("erasing=1.0,erasing.value=0")(x, np.random.default_rng(0))
    for img in out[..., 0]:
        rows, cols = np.nonzero(img == 0)
        assert len(rows) > 0
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a filled rectangle


def test_noise_blur_jpeg_change_images_and_keep_shape_and_dtype():
    x = batch(n=6, h=24, w=24)
    for spec in ("noise=20,noise.p=1", "blur=2,blur.p=1", "jpeg=[10,10],jpeg.p=1", "color=0.3", "scale_shift=0.5"):
        out = Pipeline.from_spec(spec)(x, np.random.default_rng(0))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert not np.array_equal(out, x), spec


def test_crop_zoom_matches_crop_then_resize():
    from pixelforge.augment.affine import warp

    img = np.random.default_rng(0).random((1, 40, 60, 1)).astype(np.float32)
    m = np.zeros((1, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = 0.5
    m[:, 0, 2], m[:, 1, 2] = 0.25 - 0.5 + 10, 0.25 - 0.5 + 15
    ours = warp(img, m, "nearest")[0, :, :, 0]
    ref = cv2.resize(img[0, 10:30, 15:45], (60, 40), interpolation=cv2.INTER_LINEAR)
    assert np.abs(ours - ref)[1:-1, 1:-1].max() < 1e-5
    out = Pipeline.from_spec("crop_zoom=0.3")(batch(h=20, w=20), np.random.default_rng(0))
    assert out.shape == (8, 20, 20, 3)


# ---- Keras geometry and fill modes ---------------------------------------------------------------
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_batched_engine_equals_keras_affine_for_every_fill_mode(fill_mode):
    x = np.random.default_rng(0).random((9, 13, 2)).astype(np.float32)
    for params in [(20, 2, -3, 10, 1.1, 0.9), (-35, -4.5, 1.5, 0, 0.8, 1.3), (0, 30, 0, 0, 1, 1), (90, 0, 0, 25, 1, 1)]:
        ours = apply_affine_transform(x, *params, fill_mode=fill_mode, cval=0.25, engine="batched")
        assert np.abs(ours - keras_reference(x, *params, fill_mode, 0.25)).max() < 1e-4


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "constant"])
def test_opencv_engine_is_close_to_keras(fill_mode):
    x = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    params = (20, 2, -3, 10, 1.1, 0.9)
    ours = apply_affine_transform(x, *params, fill_mode=fill_mode, cval=0.0, engine="opencv")
    diff = np.abs(ours - keras_reference(x, *params, fill_mode, 0.0))
    assert diff.mean() < 0.02
    if fill_mode == "constant":  # OpenCV blends cval into a one-pixel band along the image's edge
        assert (diff > 0.03).mean() < 0.1
    else:
        assert diff[4:-4, 4:-4].max() < 0.03  # fixed-point interpolation weights only


@pytest.mark.parametrize(
    ("fill_mode", "engine", "expected"),
    [
        ("nearest", "batched", [9, 9, 9, 9]),
        ("nearest", "opencv", [9, 9, 9, 9]),
        ("reflect", "batched", [9, 8, 7, 6]),
        ("reflect", "opencv", [9, 8, 7, 6]),
        ("wrap", "opencv", [0, 1, 2, 3]),  # period 10, like np.roll
        ("wrap", "batched", [1, 2, 3, 4]),  # scipy's wrap (Keras): period 9, first and last column overlap
        ("constant", "batched", [-5, -5, -5, -5]),
        ("constant", "opencv", [-5, -5, -5, -5]),
    ],
)
def test_fill_modes_fill_the_uncovered_area(fill_mode, engine, expected):
    ramp = np.tile(np.arange(10, dtype=np.float32), (6, 1))[:, :, None]  # value = column index
    out = apply_affine_transform(ramp, tx=4, fill_mode=fill_mode, cval=-5, engine=engine)
    assert np.allclose(out[2, :6, 0], np.arange(4, 10), atol=1e-3)  # the shifted content
    assert np.allclose(out[2, 6:, 0], expected, atol=1e-3)  # what the fill mode puts in the gap


def test_width_shift_moves_along_the_width():
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 3, 3] = 1
    out = Pipeline.from_spec({"width_shift_range": [2], "fill_mode": "constant"})(x, np.random.default_rng(0))
    r, c = np.argwhere(out[0, :, :, 0] == 1)[0]
    assert r == 3 and abs(c - 3) == 2


def test_keras_shift_semantics_fraction_pixels_and_choices():
    from pixelforge.augment.keras_ops import draw_shift

    rng = np.random.default_rng(0)
    assert np.abs(draw_shift(rng, 0.25, 1000, 40)).max() <= 10  # fraction of the size
    px = draw_shift(rng, 3.0, 1000, 40)  # float >= 1: pixels, uniform
    assert np.abs(px).max() <= 3 and not np.allclose(px, np.round(px))
    ints = draw_shift(rng, 3, 1000, 40)  # int: whole pixels in (-3, 3)
    assert set(np.unique(ints)) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    choice = draw_shift(rng, [0.1, 0.2], 1000, 10)  # fractions from a list
    assert set(np.unique(choice)) == {-2.0, -1.0, 1.0, 2.0}


# ---- determinism ---------------------------------------------------------------------------------
POLICY = "horizontal_flip,rotation_range=15,width_shift_range=0.1,height_shift_range=0.1,zoom_range=0.1,brightness_range=[0.8,1.2]"


@pytest.mark.parametrize("shape", [(16, 28, 28, 1), (4, 96, 96, 3)])
def test_same_seed_same_batch_different_seed_different_batch(shape):
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    pipe = Pipeline.from_spec(POLICY + ",noise=5,erasing=0.5,blur=1")
    a = pipe(x, np.random.default_rng([7, 0, 3]))
    b = pipe(x, np.random.default_rng([7, 0, 3]))
    c = pipe(x, np.random.default_rng([7, 1, 3]))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == x.dtype and a.shape == x.shape
    assert not np.shares_memory(a, x)


def test_engines_agree_and_flip_folding_changes_nothing():
    x = batch(n=16, h=20, w=30)
    fused = Pipeline.from_spec("rotation_range=15,zoom_range=0.1,horizontal_flip,vertical_flip,engine=batched")
    a = fused(x, np.random.default_rng(5))
    r = np.random.default_rng(5)
    b = fused.ops[1](fused.ops[0](x, r, 0, 255), r, 0, 255)  # the two ops one after the other
    assert np.abs(a.astype(int) - b).max() <= 1
    folded = Pipeline.from_spec("rotation_range=15,horizontal_flip,brightness_range=[0.5,1.5],color=0.2,engine=opencv")
    r = np.random.default_rng(9)
    one_by_one = x
    for op in folded.ops:  # warp, flip, then the two lookup-table ops, each on its own
        one_by_one = op(one_by_one, r, 0, 255)
    diff = np.abs(folded(x, np.random.default_rng(9)).astype(int) - one_by_one)
    assert diff.max() <= 2 and (diff > 0).mean() < 0.01  # OpenCV rounds a mirrored warp a hair differently
    opencv = Pipeline.from_spec("rotation_range=15,zoom_range=0.1,horizontal_flip,vertical_flip,engine=opencv")
    c = opencv(x, np.random.default_rng(5))
    assert np.abs(a.astype(int) - c).mean() < 1.0


def test_float_batches_stay_float_and_saturate_to_value_range():
    x = batch().astype(np.float32) / 255
    out = Pipeline.from_spec(POLICY)(x, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    wide = Pipeline.from_spec({"brightness_range": [2, 2], "value_range": None})(x, np.random.default_rng(0))
    assert wide.max() > 1.5


# ---- specs ---------------------------------------------------------------------------------------
def test_cli_string_dict_and_json_give_the_same_pipeline():
    text = "rotation_range=15,width_shift_range=0.2,horizontal_flip,zoom_range=[0.9,1.1],blur=1.5,blur.p=0.3"
    from_text = Pipeline.from_spec(text)
    as_dict = from_text.to_dict()
    assert Pipeline.from_spec(as_dict).to_dict() == as_dict
    assert Pipeline.from_spec(from_text.to_json()).to_dict() == as_dict
    assert [op["op"] for op in as_dict["ops"]] == ["affine", "flip", "blur"]  # order recorded
    assert as_dict["ops"][2]["p"] == 0.3 and as_dict["ops"][2]["sigma"] == 1.5


def test_parse_values():
    spec = parse_spec("rescale=1/255,zoom_range=[0.9,1.1],horizontal_flip,fill_mode=reflect,vertical_flip=false")
    assert spec == {"rescale": pytest.approx(1 / 255), "zoom_range": [0.9, 1.1], "horizontal_flip": True,
                    "fill_mode": "reflect", "vertical_flip": False}


def test_identity():
    assert Pipeline.from_spec(None).is_identity
    assert Pipeline.from_spec("").is_identity
    assert Pipeline.from_spec("rotation_range=0,horizontal_flip=false").is_identity
    assert not Pipeline.from_spec("rotation_range=5").is_identity
    x = batch()
    assert np.array_equal(Pipeline.from_spec(None)(x, np.random.default_rng(0)), x)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rotaton_range=10", "did you mean 'rotation_range'"),
        ("zoom_range=[1.2,0.8]", "zoom_range"),
        ("zoom_range=[0.9,1.0,1.1]", "zoom_range"),
        ("fill_mode=mirror", "fill_mode must be one of"),
        ("rotation_range=abc", "rotation_range must be a number"),
        ("width_shift_range=-0.1", "width_shift_range must be >= 0"),
        ("brightness_range=0.5", "brightness_range must be a pair"),
        ("blur.p=2", "blur p must be <= 1"),
        ("blur.speed=2", "unknown blur parameter key .speed."),
        ("zoom_range=[0.9,1.1", "unbalanced"),
        ("{bad json", "not valid JSON"),
        ("horizontal_flip=3", "horizontal_flip must be true or false"),
    ],
)
def test_bad_specs_give_clear_messages(spec, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[")):
        Pipeline.from_spec(spec)


def test_bad_batches_give_clear_messages():
    pipe = Pipeline.from_spec("rotation_range=10")
    with pytest.raises(PixelforgeError, match="NHWC"):
        pipe(np.zeros((2, 3, 4, 5, 6), np.uint8), np.random.default_rng(0))
    with pytest.raises(PixelforgeError, match="float batch"):
        Pipeline.from_spec("rescale=1/255")(batch(), np.random.default_rng(0))


# ---- normalization order -------------------------------------------------------------------------
def test_normalization_position_is_recorded_and_split():
    pipe = Pipeline.from_spec("rotation_range=10,rescale=1/255,samplewise_center,noise=5")
    names = [op["op"] for op in pipe.to_dict()["ops"]]
    assert names == ["affine", "normalize", "noise"]
    assert [op.name for op in pipe.before_normalization] == ["affine"]
    assert [op.name for op in pipe.after_normalization] == ["normalize", "noise"]
    out = pipe(batch().astype(np.float32), np.random.default_rng(0))
    assert abs(float(out.mean())) < 0.05  # centred; noise after normalization is not clipped to [0, 1]


def test_featurewise_fit_streams_batches():
    x = batch(n=40).astype(np.float32)
    pipe = Pipeline.from_spec("featurewise_center,featurewise_std_normalization,rescale=1/255")
    with pytest.raises(PixelforgeError, match="fit"):
        pipe(x, np.random.default_rng(0))
    pipe.fit(iter([x[:15], x[15:]]))
    out = pipe(x, np.random.default_rng(0))
    assert np.allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    assert np.allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-3)
    restored = Pipeline.from_spec(pipe.to_dict())
    assert np.allclose(restored(x, np.random.default_rng(0)), out)


def test_specs_from_json_and_yaml_files(tmp_path):
    spec = {"rotation_range": 10, "horizontal_flip": True, "blur.p": 0.2}
    (tmp_path / "aug.json").write_text(json.dumps(spec))
    expected = Pipeline.from_spec(spec).to_dict()
    assert Pipeline.from_spec(str(tmp_path / "aug.json")).to_dict() == expected
    yaml = pytest.importorskip("yaml")
    (tmp_path / "aug.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert Pipeline.from_spec(str(tmp_path / "aug.yaml")).to_dict() == expected
