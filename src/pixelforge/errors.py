"""Errors pixelforge raises for bad input: the CLI turns them into one-line messages (exit 2)."""


import os

# --debug of the current command-line invocation (the CLI sets it every time); PIXELFORGE_DEBUG=1 also works
debug_flag = {"on": False}


def debugging() -> bool:
    """Whether internal errors should raise with their traceback instead of becoming one-line messages."""
    return debug_flag["on"] or os.environ.get("PIXELFORGE_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


class PixelforgeError(Exception):
    """A problem with the user's input or request, with a message that names what is wrong."""


class DecodeError(PixelforgeError):
    """An image could not be decoded (corrupt, truncated, not an image, too large)."""


class LayoutError(PixelforgeError):
    """A dataset source could not be read as the requested (or any) layout."""


class UnsafePathError(PixelforgeError):
    """A path in a dataset file points outside the dataset root."""


class ParameterError(PixelforgeError, ValueError):
    """A parameter outside what is accepted (also a ValueError, as scikit-learn and Keras raise)."""


def check_keys(data, known, what: str, error: type[PixelforgeError] = ParameterError) -> None:
    """Reject keys of a config dict that ``what`` does not know, naming the known ones and the closest:
    a mistyped key must not be silently dropped."""
    import difflib

    known = sorted(known)
    unknown = [k for k in data if k not in known]
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise error(f"unknown {what} key{'s' if len(unknown) > 1 else ''} {', '.join(parts)}; "
                f"known: {', '.join(known) or 'none'}")
