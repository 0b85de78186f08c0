"""Spatial size arithmetic, so a model can say up front that an image is too small for it."""

from __future__ import annotations

from pixelforge.errors import PixelforgeError

# An op is (kernel, stride, padding); a conv and a pool shrink a side the same way.


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def side_after(size: int, ops: list[tuple[int, int, int]]) -> int:
    """Side length after ``ops``; 0 or less when the input is too small for one of them."""
    for kernel, stride, padding in ops:
        if size + 2 * padding < kernel:
            return 0
        size = conv_out(size, kernel, stride, padding)
    return size


def minimum_side(ops: list[tuple[int, int, int]], limit: int = 4096) -> int:
    """Smallest input side that survives every op (shrinking is monotone, so scan upward)."""
    for size in range(1, limit + 1):
        if side_after(size, ops) >= 1:
            return size
    return limit


def require_size(name: str, input_shape, ops: list[tuple[int, int, int]]) -> tuple[int, int]:
    """Output (h, w) after ``ops``; PixelforgeError naming the minimum size when the input is smaller."""
    _, height, width = input_shape
    out_h, out_w = side_after(height, ops), side_after(width, ops)
    if out_h < 1 or out_w < 1:
        low = minimum_side(ops)
        raise PixelforgeError(
            f"model {name!r} needs images of at least {low}x{low} pixels; got {height}x{width}"
            " (resize the data, e.g. --size, or pick a model for small images such as dnn or shallownet)"
        )
    return out_h, out_w


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``"28x28x1"`` (height x width x channels, as images are described) or ``"28x28"`` → (C, H, W)."""
    parts = str(text).lower().replace("*", "x").replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 2:
        values.append(1)
    if len(values) != 3 or min(values) < 1:
        raise PixelforgeError(f"--input expects HEIGHTxWIDTHxCHANNELS like 28x28x1 or 32x32x3; got {text!r}")
    height, width, channels = values
    return channels, height, width
