"""Errors pixelforge raises for bad input: the CLI turns them into one-line messages (exit 2)."""


class PixelforgeError(Exception):
    """A problem with the user's input or request, with a message that names what is wrong."""


class DecodeError(PixelforgeError):
    """An image could not be decoded (corrupt, truncated, not an image, too large)."""


class LayoutError(PixelforgeError):
    """A dataset source could not be read as the requested (or any) layout."""


class UnsafePathError(PixelforgeError):
    """A path in a dataset file points outside the dataset root."""
