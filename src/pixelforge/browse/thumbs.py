"""Images for the browser: thumbnails and full views, made on first request and kept in memory.

An image is only ever served by its Manifest row, decoded through the Manifest's storage and encoded
again: no path from a request reaches the disk, and a file that is not an image is never sent as is.
A file that lies outside the dataset folder (a symbolic link out of the tree) is refused.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image

from pixelforge.data.manifest import Manifest
from pixelforge.errors import PixelforgeError, UnsafePathError

THUMB = 96  # pixels, the longer side; smaller images are sent at their own size (the page scales them up)
FULL = 768  # the image page's view
CACHE_BYTES = 192 * 2**20  # thumbnails kept in memory; 70,000 Fashion-MNIST thumbnails take ~25 MB


def inside_dataset(manifest: Manifest, row: int) -> None:
    """Refuse a row whose file, links resolved, lies outside the dataset's folder."""
    root = getattr(manifest.storage, "root", None)
    local = manifest.storage.local_path(manifest.locations[row])
    if root is None or local is None:
        return  # archives, HDF5 and arrays hold their items inside one file
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(local)]) != real_root:
        raise UnsafePathError(f"{manifest.locations[row]}: links outside the dataset folder; not served")


def to_display(image: np.ndarray) -> Image.Image:
    """A decoded uint8/uint16 HWC array as an 8-bit PIL image (grey, RGB or RGBA)."""
    arr = np.asarray(image)
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    elif arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha
        arr = arr[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(arr))


def encode(img: Image.Image, box: int) -> tuple[bytes, str]:
    """(bytes, media type): PNG for small or grey images (exact pixels), JPEG for larger photos."""
    if max(img.size) > box:
        img = img.copy()
        img.thumbnail((box, box), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if img.mode == "RGB" and max(img.size) > 64:
        img.save(buf, format="JPEG", quality=85)
        return buf.getvalue(), "image/jpeg"
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "image/png"


class ImageCache:
    """Thumbnails by row, least recently used dropped first once ``CACHE_BYTES`` is reached."""

    def __init__(self, manifest: Manifest, limit: int = CACHE_BYTES):
        self.manifest = manifest
        self.limit = limit
        self._items: OrderedDict[int, tuple[bytes, str]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def render(self, row: int, box: int) -> tuple[bytes, str]:
        if not 0 <= row < len(self.manifest):
            raise PixelforgeError(f"no image {row}")
        inside_dataset(self.manifest, row)
        return encode(to_display(self.manifest.load(row)), box)

    def thumbnail(self, row: int) -> tuple[bytes, str]:
        with self._lock:
            if row in self._items:
                self._items.move_to_end(row)
                return self._items[row]
        item = self.render(row, THUMB)
        with self._lock:
            if row not in self._items:
                self._items[row] = item
                self._bytes += len(item[0])
                while self._bytes > self.limit and self._items:
                    _, (data, _kind) = self._items.popitem(last=False)
                    self._bytes -= len(data)
        return item

    def full(self, row: int) -> tuple[bytes, str]:
        return self.render(row, FULL)
