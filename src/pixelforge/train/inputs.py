"""What ``predict`` accepts: image files, folders (searched recursively), glob patterns and http(s)
URLs, turned into a list of sources, and one source read into a decoded image."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from pixelforge.data.decode import decode_image
from pixelforge.data.layouts.directory import is_image_name
from pixelforge.errors import PixelforgeError

MAX_IMAGE_BYTES = 64 * 1024**2


def is_url(text: str) -> bool:
    return str(text).lower().startswith(("http://", "https://"))


def expand_sources(items) -> list[str]:
    """Files, folders, globs and URLs → an ordered list of image files and URLs (no duplicates)."""
    found: list[str] = []
    for item in items:
        text = str(item)
        if is_url(text):
            found.append(text)
        elif Path(text).is_dir():
            images = [
                os.path.join(root, name)
                for root, dirs, files in os.walk(text)
                for name in files
                if is_image_name(name) and not name.startswith(".")
            ]
            if not images:
                raise PixelforgeError(f"{text}: folder holds no image files")
            found.extend(sorted(images))
        elif Path(text).is_file():
            found.append(text)
        elif glob.has_magic(text):
            matches = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise PixelforgeError(f"{text}: pattern matches no file")
            found.extend(matches)
        else:
            raise PixelforgeError(f"{text}: no such file, folder or URL")
    return list(dict.fromkeys(found))


def read_bytes(source: str) -> bytes:
    if is_url(source):
        from pixelforge.data.layouts.remote import UrlStorage

        return UrlStorage(max_bytes=MAX_IMAGE_BYTES).read(source)
    path = Path(source)
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise PixelforgeError(f"{source}: file is larger than {MAX_IMAGE_BYTES >> 20} MB")
        return path.read_bytes()
    except OSError as exc:
        raise PixelforgeError(f"{source}: cannot read ({exc.strerror or exc})") from None


def read_image(source: str, preprocess) -> np.ndarray:
    """Decode one file or URL with its own channels (the model converts them, with a note)."""
    return decode_image(
        read_bytes(source), name=str(source), background=preprocess.background, draft_size=preprocess.size
    )
