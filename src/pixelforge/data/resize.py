"""Resize HWC arrays: squash, aspect-aware centre crop, or letterbox pad.

Interpolation "auto" uses area averaging when shrinking and bicubic when enlarging (OpenCV's
recommendation; area avoids aliasing, cubic keeps edges when upsampling).
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.errors import ParameterError

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "linear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
RESIZE_METHODS = ("squash", "crop", "pad")


def _interp(name: str, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    if name == "auto":
        shrinking = dst_hw[0] * dst_hw[1] < src_hw[0] * src_hw[1]
        return cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    try:
        return INTERPOLATIONS[name]
    except KeyError:
        raise ParameterError(
            f"unknown interpolation {name!r}; expected 'auto' or one of {sorted(INTERPOLATIONS)}"
        ) from None


def _cv_resize(img: np.ndarray, hw: tuple[int, int], interpolation: str) -> np.ndarray:
    if img.shape[:2] == tuple(hw):
        return img
    out = cv2.resize(img, (hw[1], hw[0]), interpolation=_interp(interpolation, img.shape[:2], hw))
    return out[:, :, None] if out.ndim == 2 else out


def resize(
    img: np.ndarray,
    size: tuple[int, int],
    method: str = "squash",
    interpolation: str = "auto",
    pad_value: int | tuple = 0,
) -> np.ndarray:
    """Resize an HWC array to ``size`` = (height, width).

    squash: stretch to the size; crop: scale the shortest side to fit, then centre crop; pad: scale
    the longest side to fit, then pad the rest with ``pad_value`` (letterbox).
    """
    th, tw = int(size[0]), int(size[1])
    if th <= 0 or tw <= 0:
        raise ParameterError(f"size must be positive (height, width), got {size}")
    if img.ndim == 2:
        img = img[:, :, None]
    h, w = img.shape[:2]
    if method == "squash":
        return _cv_resize(img, (th, tw), interpolation)
    if method == "crop":
        scale = max(th / h, tw / w)
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        scaled = _cv_resize(img, (nh, nw), interpolation)
        top, left = (nh - th) // 2, (nw - tw) // 2
        return np.ascontiguousarray(scaled[top : top + th, left : left + tw])
    if method == "pad":
        scale = min(th / h, tw / w)
        nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
        scaled = _cv_resize(img, (nh, nw), interpolation)
        out = np.empty((th, tw, img.shape[2]), dtype=img.dtype)
        out[...] = np.asarray(pad_value, dtype=img.dtype).reshape(-1)[: img.shape[2]] if np.ndim(pad_value) else pad_value
        top, left = (th - nh) // 2, (tw - nw) // 2
        out[top : top + nh, left : left + nw] = scaled
        return out
    raise ParameterError(f"unknown resize method {method!r}; expected one of {RESIZE_METHODS}")
