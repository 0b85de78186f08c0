"""Atomic file writes: a reader (or a resumed run after a kill) never sees a half-written file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pixelforge.atomic import atomic_path


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=_plain) + "\n")


def write_with(path, writer: Callable[[Path], object]) -> Path:
    """``writer(tmp_path)`` writes the file (e.g. ``savefig``); the result appears atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def _plain(value):
    """numpy scalars and arrays → plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
