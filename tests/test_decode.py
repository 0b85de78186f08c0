"""Decoding: EXIF orientation, every common mode, alpha, channels, backends, and broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from pixelforge.data.decode import apply_orientation, decode_image, sniff_header
from pixelforge.errors import DecodeError


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    """A 12x20 RGB image with distinct rows and columns (so flips and turns are visible)."""
    y, x = np.mgrid[0:12, 0:20]
    return np.stack([x * 12, y * 20, (x + y) * 7], axis=2).astype(np.uint8)


# ---- EXIF orientation -------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("backend", ["pillow", "opencv"])
def test_exif_orientation_matches_pillow_exif_transpose(rgb, orientation, backend):
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = orientation
    data = encode(img, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    out = decode_image(data, backend=backend)
    assert out.shape == ((20, 12, 3) if orientation >= 5 else (12, 20, 3))  # the tag really was applied
    assert np.array_equal(out, expected)
    if orientation != 1:
        assert out.shape != rgb.shape or not np.array_equal(out, rgb)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_on_jpeg(rgb, orientation):
    img = Image.fromarray(np.kron(rgb, np.ones((4, 4, 1), dtype=np.uint8)))
    exif = img.getexif()
    exif[0x0112] = orientation
    data = encode(img, "JPEG", exif=exif, quality=95)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    out = decode_image(data)
    assert np.array_equal(out, expected)
    cv = decode_image(data, backend="opencv")
    assert cv.shape == expected.shape
    assert np.abs(cv.astype(int) - expected).mean() < 3


def test_apply_orientation_rotates_like_pillow(rgb):
    for orientation in range(1, 9):
        img = Image.fromarray(rgb)
        exif = img.getexif()
        exif[0x0112] = orientation
        img = Image.open(io.BytesIO(encode(img, "PNG", exif=exif)))
        assert np.array_equal(apply_orientation(rgb, orientation), np.asarray(ImageOps.exif_transpose(img)))


# ---- modes ------------------------------------------------------------------------------------
def test_mode_1_becomes_uint8_0_or_255():
    bits = np.zeros((5, 7), dtype=bool)
    bits[1:3, 2:5] = True
    out = decode_image(encode(Image.fromarray(bits)))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 1)
    assert set(np.unique(out)) == {0, 255}
    assert np.array_equal(out[:, :, 0] == 255, bits)


def test_mode_l_keeps_one_channel(rgb):
    gray = rgb[:, :, 0]
    out = decode_image(encode(Image.fromarray(gray)))
    assert out.shape == (12, 20, 1) and np.array_equal(out[:, :, 0], gray)


def test_mode_la_drops_or_composites_alpha():
    la = np.zeros((4, 4, 2), dtype=np.uint8)
    la[:, :, 0] = 200
    la[:, :2, 1] = 255  # left half opaque, right half transparent
    data = encode(Image.fromarray(la, mode="LA"))
    dropped = decode_image(data)
    assert dropped.shape == (4, 4, 1) and (dropped == 200).all()
    on_black = decode_image(data, background=(0, 0, 0))
    assert (on_black[:, :2] == 200).all() and (on_black[:, 2:] == 0).all()


def test_mode_p_with_transparency_composites_on_background():
    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 0, 1, 1, 0, 0, 1, 1])
    pal.info["transparency"] = 1  # palette entry 1 (blue) is transparent
    data = encode(pal, transparency=1)
    assert Image.open(io.BytesIO(data)).mode == "P"
    dropped = decode_image(data)
    assert dropped.shape == (2, 4, 3)
    assert (dropped[0, 0] == [255, 0, 0]).all() and (dropped[0, 2] == [0, 0, 255]).all()
    on_white = decode_image(data, background=(255, 255, 255))
    assert (on_white[0, 0] == [255, 0, 0]).all() and (on_white[0, 2] == [255, 255, 255]).all()


def test_mode_p_without_transparency_is_rgb():
    pal = Image.new("P", (3, 3))
    pal.putpalette([10, 20, 30] * 256)
    out = decode_image(encode(pal))
    assert out.shape == (3, 3, 3) and (out == [10, 20, 30]).all()


def test_mode_rgba_drops_alpha_or_composites_half_transparency():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128
    data = encode(Image.fromarray(rgba, mode="RGBA"))
    assert (decode_image(data) == [200, 0, 0]).all()
    grey = decode_image(data, background=(100, 100, 100))
    expected = np.round(np.array([200, 0, 0]) * 128 / 255 + 100 * (1 - 128 / 255))
    assert (grey == expected.astype(np.uint8)).all()
    assert (decode_image(data, backend="opencv", background=(100, 100, 100)) == grey).all()


def test_mode_cmyk_becomes_rgb(rgb):
    cmyk = Image.fromarray(rgb).convert("CMYK")
    out = decode_image(encode(cmyk, "JPEG", quality=100))
    assert out.shape == (12, 20, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - np.asarray(cmyk.convert("RGB"))).mean() < 8


def test_mode_cmyk_tiff_is_exact(rgb):
    cmyk = Image.fromarray(rgb).convert("CMYK")
    out = decode_image(encode(cmyk, "TIFF"))
    assert np.array_equal(out, np.asarray(cmyk.convert("RGB")))


def test_sixteen_bit_stays_uint16():
    deep = (np.arange(24, dtype=np.uint16) * 2700).reshape(4, 6)
    data = encode(Image.fromarray(deep))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    for backend in ("pillow", "opencv"):
        out = decode_image(data, backend=backend)
        assert out.dtype == np.uint16 and out.shape == (4, 6, 1)
        assert np.array_equal(out[:, :, 0], deep)


def test_sixteen_bit_to_three_channels_stays_uint16():
    deep = np.full((3, 3), 60000, dtype=np.uint16)
    out = decode_image(encode(Image.fromarray(deep)), channels=3)
    assert out.shape == (3, 3, 3) and out.dtype == np.uint16 and (out == 60000).all()


# ---- channels ---------------------------------------------------------------------------------
def test_channels_forced_to_one_uses_pillow_luma(rgb):
    data = encode(Image.fromarray(rgb))
    out = decode_image(data, channels=1)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    assert out.shape == (12, 20, 1) and np.array_equal(out[:, :, 0], expected)


def test_channels_forced_to_three_repeats_gray(rgb):
    out = decode_image(encode(Image.fromarray(rgb[:, :, 1])), channels=3)
    assert out.shape == (12, 20, 3)
    assert (out[:, :, 0] == out[:, :, 2]).all() and np.array_equal(out[:, :, 1], rgb[:, :, 1])


def test_arrays_pass_through_with_channels(rgb):
    assert decode_image(rgb).shape == (12, 20, 3)
    assert decode_image(rgb[:, :, 0], channels=3).shape == (12, 20, 3)
    floats = decode_image(np.full((2, 2), 0.5))
    assert floats.dtype == np.uint8 and (floats == 128).all()
    with pytest.raises(DecodeError, match="expected a 2-D or 3-D"):
        decode_image(np.zeros((2, 2, 2, 2), dtype=np.uint8))


# ---- backends ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "P", "PT", "I;16"])
@pytest.mark.parametrize("background", [None, (30, 60, 90)])
def test_opencv_and_auto_give_the_same_arrays_as_pillow_for_png(rgb, mode, background):
    if mode == "I;16":
        img = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    elif mode == "PT":  # palette with a transparent entry
        img = Image.fromarray(rgb).convert("P")
        img.info["transparency"] = 3
    else:
        img = Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])).convert(mode)
    data = encode(img, **({"transparency": 3} if mode == "PT" else {}))
    expected = decode_image(data, backend="pillow", background=background)
    for backend in ("opencv", "auto"):
        out = decode_image(data, backend=backend, background=background)
        assert out.dtype == expected.dtype and np.array_equal(out, expected), (mode, backend)


def test_sniff_header_reads_sizes_without_decoding(rgb):
    png = sniff_header(encode(Image.fromarray(rgb)))
    assert (png.format, png.width, png.height, png.components, png.exif) == ("png", 20, 12, 3, False)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6
    jpeg = sniff_header(encode(img, "JPEG", exif=exif))
    assert (jpeg.format, jpeg.width, jpeg.height, jpeg.components, jpeg.exif) == ("jpeg", 20, 12, 3, True)
    assert sniff_header(encode(img, "BMP")) is None and sniff_header(b"\xff\xd8garbage") is None


def test_opencv_reduced_decode_matches_pillow_draft_scale():
    big = np.kron(np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8), np.ones((40, 40, 1), np.uint8))
    data = encode(Image.fromarray(big), "JPEG", quality=90)  # 2000 x 1600
    a = decode_image(data, backend="pillow", draft_size=(150, 150))
    b = decode_image(data, backend="opencv", draft_size=(150, 150))
    assert a.shape == b.shape == (250, 200, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2
    gray = encode(Image.fromarray(big[:, :, 0]), "JPEG")
    assert decode_image(gray, backend="opencv", draft_size=(300, 300)).shape == (500, 400, 1)


def test_opencv_is_close_to_pillow_for_jpeg(rgb):
    big = np.kron(rgb, np.ones((8, 8, 1), dtype=np.uint8))
    data = encode(Image.fromarray(big), "JPEG", quality=90)
    a = decode_image(data, backend="pillow").astype(int)
    b = decode_image(data, backend="opencv").astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 1.5 and np.abs(a - b).max() <= 16


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown decoder backend"):
        decode_image(b"x", backend="magick")


# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["pillow", "opencv"])
def test_zero_byte_file(backend):
    with pytest.raises(DecodeError, match="empty.png: empty file"):
        decode_image(b"", name="empty.png", backend=backend)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("backend", ["pillow", "opencv"])
def test_truncated_file(rgb, fmt, backend):
    big = np.kron(rgb, np.ones((8, 8, 1), dtype=np.uint8))
    data = encode(Image.fromarray(big), fmt)
    with pytest.raises(DecodeError, match=r"cut\.img"):
        decode_image(data[: len(data) // 2], name="cut.img", backend=backend)


@pytest.mark.parametrize("backend", ["pillow", "opencv"])
def test_text_file_named_jpg(backend):
    with pytest.raises(DecodeError, match=r"notes\.jpg: not an image file"):
        decode_image(b"this is a text file, not a photo\n" * 10, name="notes.jpg", backend=backend)


def _huge_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb's calling card)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("backend", ["pillow", "opencv"])
def test_decompression_bomb_is_refused_before_allocating(backend):
    import tracemalloc

    data = _huge_png_header(100_000, 100_000)
    tracemalloc.start()
    with pytest.raises(DecodeError, match=r"bomb\.png: image is 100000x100000 .* decompression bomb"):
        decode_image(data, name="bomb.png", backend=backend)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50_000_000  # 10 GB of pixels were never allocated


def test_pixel_limit_is_adjustable(rgb):
    data = encode(Image.fromarray(rgb))
    with pytest.raises(DecodeError, match="over the limit of 100"):
        decode_image(data, name="small.png", max_pixels=100)
    assert decode_image(data, max_pixels=None).shape == (12, 20, 3)


def test_wrong_input_type():
    with pytest.raises(DecodeError, match="expected encoded bytes or an array"):
        decode_image(12345, name="n")
