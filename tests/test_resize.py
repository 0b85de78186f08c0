"""Resizing: squash, aspect-aware crop, letterbox pad; area shrinking, cubic enlarging; JPEG draft mode."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pixelforge.data.decode import decode_image
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.resize import resize


@pytest.fixture
def wide() -> np.ndarray:
    """10 rows x 20 columns; column j has value 10*j in every channel, rows identical."""
    cols = (np.arange(20) * 10).astype(np.uint8)
    return np.repeat(np.tile(cols, (10, 1))[:, :, None], 3, axis=2)


def test_squash_stretches_to_the_size(wide):
    out = resize(wide, (7, 9), "squash")
    assert out.shape == (7, 9, 3) and out.dtype == np.uint8


def test_crop_keeps_the_centre_of_the_long_side(wide):
    out = resize(wide, (10, 10), "crop")
    assert out.shape == (10, 10, 3)
    assert np.array_equal(out, wide[:, 5:15])  # same scale: a pure centre crop


def test_crop_scales_the_shortest_side_first(wide):
    out = resize(wide, (5, 5), "crop")
    half = cv2.resize(wide, (10, 5), interpolation=cv2.INTER_AREA)
    assert np.array_equal(out, half[:, 2:7])


def test_pad_letterboxes_with_the_pad_value(wide):
    out = resize(wide, (10, 10), "pad", pad_value=7)
    assert out.shape == (10, 10, 3)
    scaled = cv2.resize(wide, (10, 5), interpolation=cv2.INTER_AREA)
    assert (out[:2] == 7).all() and (out[7:] == 7).all()
    assert np.array_equal(out[2:7], scaled)


def test_pad_value_per_channel(wide):
    out = resize(wide, (20, 20), "pad", pad_value=(1, 2, 3))
    assert (out[0, 0] == [1, 2, 3]).all() and out.shape == (20, 20, 3)


def test_grayscale_keeps_a_channel_axis():
    out = resize(np.zeros((8, 8), dtype=np.uint8), (4, 4))
    assert out.shape == (4, 4, 1)


def test_same_size_is_untouched(wide):
    assert resize(wide, (10, 20)) is wide


def test_auto_interpolation_is_area_when_shrinking_and_cubic_when_enlarging():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert np.array_equal(resize(img, (13, 13)), cv2.resize(img, (13, 13), interpolation=cv2.INTER_AREA))
    assert np.array_equal(resize(img, (90, 90)), cv2.resize(img, (90, 90), interpolation=cv2.INTER_CUBIC))
    assert not np.array_equal(resize(img, (13, 13)), resize(img, (13, 13), interpolation="bilinear"))


def test_sixteen_bit_resizes_as_uint16():
    deep = np.full((8, 8, 1), 50000, dtype=np.uint16)
    out = resize(deep, (4, 4))
    assert out.dtype == np.uint16 and (out == 50000).all()


def test_bad_arguments():
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="unknown resize method"):
        resize(img, (2, 2), "stretch")
    with pytest.raises(ValueError, match="unknown interpolation"):
        resize(img, (2, 2), interpolation="magic")
    with pytest.raises(ValueError, match="size must be positive"):
        resize(img, (0, 2))


def _big_jpeg(mode: str = "RGB", side: int = 4000) -> bytes:
    y, x = np.mgrid[0:side, 0:side]
    arr = np.stack([(x // 16) % 256, (y // 16) % 256, ((x + y) // 32) % 256], axis=2).astype(np.uint8)
    img = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return _big_jpeg()


def test_draft_mode_decodes_a_4000px_jpeg_at_reduced_scale(photo):
    full = decode_image(photo)
    assert full.shape == (4000, 4000, 3)
    small = decode_image(photo, draft_size=(128, 128))
    assert small.shape == (500, 500, 3)  # 1/8 scale: still covers 128 px, 64x fewer pixels decoded
    mid = decode_image(photo, draft_size=(1200, 1200))
    assert mid.shape == (2000, 2000, 3)  # 1/2 scale is the most that still covers 1200 px


def test_draft_mode_result_is_close_to_a_full_decode(photo):
    spec = Preprocess(size=(128, 128))
    fast = spec.decode(photo).astype(int)
    slow = resize(decode_image(photo), (128, 128)).astype(int)
    assert fast.shape == slow.shape == (128, 128, 3)
    assert np.abs(fast - slow).mean() < 4


def test_draft_mode_never_undershoots_a_non_square_target(photo):
    out = decode_image(photo, draft_size=(600, 100))
    assert min(out.shape[:2]) >= 600


def test_draft_mode_on_cmyk_and_gray_jpegs():
    for mode, channels in (("CMYK", 3), ("L", 1)):
        data = _big_jpeg(mode, side=2048)
        out = decode_image(data, draft_size=(64, 64))
        assert out.shape == (256, 256, channels)


def test_draft_mode_leaves_png_alone():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((300, 300), dtype=np.uint8)).save(buf, format="PNG")
    assert decode_image(buf.getvalue(), draft_size=(16, 16)).shape == (300, 300, 1)


def test_draft_mode_covers_the_target_after_an_exif_turn():
    """800 wide x 4000 tall stored, EXIF 6 turns it to 4000 x 800: a 600-row target must still fit."""
    arr = np.random.default_rng(0).integers(0, 256, (4000, 800, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    out = decode_image(buf.getvalue(), draft_size=(600, 100))
    assert out.shape[1] > out.shape[0] and out.shape[0] >= 600
