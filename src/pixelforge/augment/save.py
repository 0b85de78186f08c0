"""Writing augmented images: Keras' save_to_dir naming, atomic writes, array → 8-bit image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.atomic import atomic_path
from pixelforge.errors import PixelforgeError

SAVE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF",
                "webp": "WEBP", "gif": "GIF", "ppm": "PPM"}


def check_format(save_format: str) -> str:
    fmt = str(save_format).lower().lstrip(".")
    if fmt not in SAVE_FORMATS:
        raise PixelforgeError(f"save format must be one of {sorted(SAVE_FORMATS)}, got {save_format!r}")
    return fmt


def to_uint8_image(x: np.ndarray, scale: bool = False) -> np.ndarray:
    """HWC array → uint8 HWC. ``scale`` stretches min..max to 0..255 (Keras' array_to_img(scale=True)),
    otherwise floats in [0, 1] are multiplied by 255 and larger values taken as 0–255 levels."""
    x = np.asarray(x)
    if x.dtype == np.uint8 and not scale:
        return x
    x = x.astype(np.float64)
    if scale:
        x = x - x.min()
        peak = x.max()
        if peak > 0:
            x = x / peak
        x = x * 255
    elif x.max(initial=0) <= 1.0:
        x = x * 255
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def save_to_dir_name(prefix: str, index: int, rng: np.random.Generator, save_format: str) -> str:
    """Keras' ``{prefix}_{index}_{hash}.{format}`` with a random hash below 10^7 (from the seeded rng)."""
    return f"{prefix}_{int(index)}_{int(rng.integers(10**7))}.{save_format}"


def write_image(path: Path, image: np.ndarray, save_format: str, quality: int = 95) -> Path:
    """Write an HWC uint8 image atomically: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = SAVE_FORMATS[check_format(save_format)]
    img = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    pil = Image.fromarray(img)
    if fmt == "JPEG" and pil.mode not in ("L", "RGB"):
        pil = pil.convert("RGB")
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path
