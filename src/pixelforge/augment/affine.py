"""Keras-style affine transforms: one matrix per image, applied to a whole batch at once.

``keras_matrices`` builds the same output→input matrix as Keras' ``apply_affine_transform``
(rotation about the centre, shift tx/ty in pixels, shear in degrees, zoom zx/zy where > 1 zooms
out), in (row, col) coordinates. ``warp`` applies the matrices with one of two engines:

- ``warp_batched``: numpy index maps for the whole batch (small images: one pass, no Python loop),
  with scipy.ndimage's boundary rules, i.e. exactly what Keras computes;
- ``warp_opencv``: ``cv2.warpAffine`` per image (large photos, where the per-call cost vanishes),
  with borderMode mapped from fill_mode (constant/wrap differ from scipy only along the edges).
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelforge.augment.base import image_view, lookup, lut_in_place
from pixelforge.augment.threads import THREAD_MIN_PIXELS, for_each_image
from pixelforge.errors import ParameterError

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
CV2_BORDERS = {
    "constant": cv2.BORDER_CONSTANT,
    "nearest": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "wrap": cv2.BORDER_WRAP,
}
# Measured on 2 cores (bench/augment.py, policy at 28x28): per-image cv2.warpAffine ~110k img/s at
# batch 256 and ~73k at batch 32; the whole batch in one cv2.remap over a tall padded image ~55k
# and ~39k; numpy index maps ~14k-58k; torch grid_sample far slower. So "auto" uses OpenCV, and
# the numpy engine stays for exact Keras edges (scipy's constant and wrap rules). Images of at least
# THREAD_MIN_PIXELS are warped on a small thread pool (augment/threads.py; cv2 drops the GIL).


def keras_matrices(theta, tx, ty, shear, zx, zy, height: int, width: int) -> np.ndarray:
    """(N, 2, 3) output→input matrices in (row, col) order, as Keras' ``apply_affine_transform``.

    Arguments are arrays of N values (or scalars): theta and shear in degrees, tx/ty in pixels.
    Keras builds rotation·shift·shear·zoom around the centre in its own (x, y) order and then
    swaps the axes to index numpy arrays; the swap is folded in here, so the result is identical.
    """
    theta, tx, ty, shear, zx, zy = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (theta, tx, ty, shear, zx, zy))
    )
    t, sh = np.deg2rad(theta), np.deg2rad(shear)
    cos, sin = np.cos(t), np.sin(t)
    # linear part L = R @ Shear @ Zoom, translation = R @ (tx, ty), in Keras' (x, y) order
    l00 = cos * zx
    l01 = (-cos * np.sin(sh) - sin * np.cos(sh)) * zy
    l10 = sin * zx
    l11 = (-sin * np.sin(sh) + cos * np.cos(sh)) * zy
    t0 = cos * tx - sin * ty
    t1 = sin * tx + cos * ty
    # about the centre: offset(o) @ M @ offset(-o), Keras uses o = (h/2 - 0.5, w/2 - 0.5)
    o0, o1 = height / 2 - 0.5, width / 2 - 0.5
    c0 = o0 + t0 - (l00 * o0 + l01 * o1)
    c1 = o1 + t1 - (l10 * o0 + l11 * o1)
    out = np.empty(theta.shape + (2, 3), dtype=np.float64)
    # swap x and y (P M P) so that the matrix indexes (row, col)
    out[..., 0, 0], out[..., 0, 1], out[..., 0, 2] = l11, l10, c1
    out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = l01, l00, c0
    return out


def _map_axis(coord: np.ndarray, size: int, fill_mode: str):
    """Source coordinate along one axis → (low index, high index, weight of high, inside mask)."""
    inside = None
    if fill_mode == "wrap" and size > 1:
        # scipy's "wrap": period size - 1, first and last sample overlap (what Keras produces)
        period = size - 1
        coord = np.where(coord < 0, coord + period * (np.floor(-coord / period) + 1), coord)
        coord = np.where(coord > size - 1, coord - period * np.floor(coord / period), coord)
    elif fill_mode == "constant":
        inside = (coord >= -1e-6) & (coord <= size - 1 + 1e-6)
    low = np.floor(coord)
    frac = (coord - low).astype(np.float32)
    low = low.astype(np.int64)
    high = low + 1
    if fill_mode == "reflect":
        low, high = _reflect(low, size), _reflect(high, size)
    else:
        np.clip(low, 0, size - 1, out=low)
        np.clip(high, 0, size - 1, out=high)
    return low, high, frac, inside


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Half-sample symmetric extension (d c b a | a b c d | d c b a), like cv2.BORDER_REFLECT."""
    index = np.mod(index, 2 * size)
    return np.where(index >= size, 2 * size - 1 - index, index)


def warp_batched(batch: np.ndarray, matrices: np.ndarray, fill_mode="nearest", cval=0.0, order=1) -> np.ndarray:
    """Apply (N, 2, 3) output→input (row, col) matrices to an NHWC batch with numpy index maps."""
    n, h, w, c = batch.shape
    rows = np.arange(h, dtype=np.float32)[None, :, None]
    cols = np.arange(w, dtype=np.float32)[None, None, :]
    m = matrices.astype(np.float32)[:, :, :, None, None]
    src_r = m[:, 0, 0] * rows + m[:, 0, 1] * cols + m[:, 0, 2]
    src_c = m[:, 1, 0] * rows + m[:, 1, 1] * cols + m[:, 1, 2]
    if order == 0:
        src_r, src_c = np.floor(src_r + 0.5), np.floor(src_c + 0.5)
    r0, r1, fr, in_r = _map_axis(src_r, h, fill_mode)
    c0, c1, fc, in_c = _map_axis(src_c, w, fill_mode)
    flat = batch.reshape(n * h * w, c)
    base = (np.arange(n, dtype=np.int64) * (h * w))[:, None, None]
    r0 *= w
    r1 *= w
    r0 += base
    r1 += base
    v00 = flat[r0 + c0].astype(np.float32, copy=False)
    v01 = flat[r0 + c1].astype(np.float32, copy=False)
    v10 = flat[r1 + c0].astype(np.float32, copy=False)
    v11 = flat[r1 + c1].astype(np.float32, copy=False)
    fr, fc = fr[..., None], fc[..., None]
    top = v00 + (v01 - v00) * fc
    bottom = v10 + (v11 - v10) * fc
    out = top + (bottom - top) * fr
    if fill_mode == "constant":
        out[~(in_r & in_c)] = cval
    return _cast_like(out, batch.dtype)


def _cast_like(values: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


def warp_opencv(batch: np.ndarray, matrices: np.ndarray, fill_mode="nearest", cval=0.0, order=1,
                tables: np.ndarray | None = None) -> np.ndarray:
    """Apply the matrices image by image with cv2.warpAffine, straight into the output batch.

    tables: uint8 lookup tables (one per image) applied right after each warp, while the image is
    still in cache — how point operations that follow the warp (brightness …) ride along for free.
    """
    n, h, w, c = batch.shape
    flags = (cv2.INTER_LINEAR if order else cv2.INTER_NEAREST) | cv2.WARP_INVERSE_MAP
    border = CV2_BORDERS[fill_mode]
    out = np.empty_like(batch)
    src = batch if batch.dtype != np.float16 else batch.astype(np.float32)
    # (row, col) matrices → OpenCV's (x, y) = (col, row) order, for all images at once
    cv_m = matrices[:, ::-1, ::-1][:, :, [1, 2, 0]].astype(np.float64)
    border_value = (float(cval),) * 4

    def one(i):
        dst = image_view(out, i)
        img = cv2.warpAffine(image_view(src, i), cv_m[i], (w, h), dst=dst, flags=flags, borderMode=border,
                             borderValue=border_value)
        if img is not dst and not np.shares_memory(img, dst):  # OpenCV chose to allocate
            dst[...] = img.reshape(dst.shape)
        if per_image_tables:
            lut_in_place(dst, tables, i)

    # small images: one vectorized lookup for the whole batch beats a cv2.LUT call per image
    per_image_tables = tables is not None and h * w >= THREAD_MIN_PIXELS
    for_each_image(one, n, h * w)
    if tables is not None and not per_image_tables:
        out = lookup(out, tables)
    return out


def warp(batch: np.ndarray, matrices: np.ndarray, fill_mode="nearest", cval=0.0, order=1, engine="auto",
         tables: np.ndarray | None = None) -> np.ndarray:
    """Warp an NHWC batch; ``engine`` is "batched", "opencv" or "auto" (OpenCV, measured faster).

    tables: optional uint8 lookup tables (per image) applied after the warp (uint8 batches only).
    """
    if engine == "auto":
        engine = "opencv"
    if engine == "batched":
        out = warp_batched(batch, matrices, fill_mode, cval, order)
        if tables is not None:
            for i in range(len(out)):
                lut_in_place(image_view(out, i), tables, i)
        return out
    if engine == "opencv":
        return warp_opencv(batch, matrices, fill_mode, cval, order, tables)
    raise ParameterError(f"engine must be 'auto', 'batched' or 'opencv', got {engine!r}")


def apply_affine_transform(x: np.ndarray, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1,
                           fill_mode="nearest", cval=0.0, order=1, engine="batched") -> np.ndarray:
    """One HWC image, with the arguments of Keras' function of the same name (channels last)."""
    if fill_mode not in FILL_MODES:
        raise ParameterError(f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    img = x[:, :, None] if x.ndim == 2 else x
    m = keras_matrices([theta], [tx], [ty], [shear], [zx], [zy], img.shape[0], img.shape[1])
    out = warp(img[None], m, fill_mode, cval, order, engine)[0]
    return out[:, :, 0] if x.ndim == 2 else out
