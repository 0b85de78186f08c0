"""Helpers shared by the table-like readers (CSV, JSON, arrays, DataFrames): finding columns by
name, resolving a row's path safely inside the dataset root, per-image metadata from the other columns,
and building the final Manifest.
"""

from __future__ import annotations

import json

from pixelforge.data.locations import Storage, safe_relative_path
from pixelforge.data.manifest import Manifest, Skip, class_order
from pixelforge.errors import LayoutError, UnsafePathError

# Column / key names recognised automatically, most specific first (compared lower-cased).
PATH_NAMES = ("filepath", "file_path", "filename", "file_name", "image_path", "path", "image", "file", "img",
              "image_id", "id_code", "fname")
LABEL_NAMES = ("label", "labels", "class", "class_name", "classname", "category", "target", "y")
URL_NAMES = ("url", "image_url", "link", "uri", "href")
SPLIT_NAMES = ("split", "subset", "fold", "set", "partition")


def find_column(names: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, source: str) -> int | None:
    """Index of the column the user named (error if absent) or of the first auto-detected candidate."""
    lowered = [str(n).strip().lower() for n in names]
    if wanted is not None:
        key = str(wanted).strip().lower()
        if key not in lowered:
            raise LayoutError(f"{source}: no {what} column {wanted!r}; columns are {list(names)[:20]}")
        return lowered.index(key)
    for candidate in candidates:
        if candidate in lowered:
            return lowered.index(candidate)
    return None


def clean_label(value) -> str | None:
    """A label as text, or None when the value is empty / missing (NaN, None, blank)."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from pandas or JSON
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text or text.lower() in ("nan", "none", "null"):
        return None
    return text


def metadata_value(value) -> str:
    """A metadata cell as text: "" when missing (None, NaN, blank), nested values as compact JSON."""
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return clean_label(value) or ""


def metadata_columns(names: list, taken) -> dict[str, int]:
    """Metadata name → column index for every column not in ``taken`` (blank or repeated names made unique)."""
    out: dict[str, int] = {}
    for i, name in enumerate(names):
        if i in taken:
            continue
        key = str(name).strip() or f"column{i + 1}"
        while key in out:
            key = f"{key}_{i + 1}"
        out[key] = i
    return out


def resolve_location(value: str, prefix: str = "") -> str:
    """A row's relative path joined to ``prefix`` (the table's folder inside the storage).

    Raises UnsafePathError for absolute paths and for paths that climb out of the storage root.
    """
    return safe_relative_path(value, prefix=prefix)


def missing_reason(storage: Storage, location: str) -> str | None:
    """Why a located row cannot be read (missing file), or None when it is there."""
    try:
        if storage.exists(location):
            return None
    except UnsafePathError as exc:
        return str(exc)
    return f"{storage.describe(location)}: file not found"


def locate(value: str, prefix: str, storage: Storage, check_files: bool = True) -> tuple[str | None, str | None]:
    """``(location, None)`` for a row's path inside the storage, or ``(None, reason)`` to skip the row."""
    try:
        location = resolve_location(value, prefix)
    except UnsafePathError as exc:
        return None, f"refused: {exc}"
    reason = missing_reason(storage, location) if check_files else None
    return (None, reason) if reason else (location, None)


def finish_manifest(
    *,
    locations: list[str],
    labels: list[str],
    splits: list[str] | None,
    storage: Storage,
    layout: str,
    source: str,
    skipped: list[Skip],
    classes: list[str] | None = None,
    ignored: dict | None = None,
    notes: list[str] | None = None,
    metadata: dict[str, list[str]] | None = None,
) -> Manifest:
    """The Manifest for a table-like reader; a clear error when no row survived."""
    if not locations:
        detail = f"; {len(skipped)} row(s) skipped, first: {skipped[0].item}: {skipped[0].reason}" if skipped else ""
        if skipped and sum("file not found" in s.reason for s in skipped) >= 0.9 * len(skipped):
            detail += ("; if the images live in another folder, say where with folder= (-o folder=images), and "
                       "add suffix= (-o suffix=.jpg) when the table holds ids without an extension")
        raise LayoutError(f"{source}: no usable images{detail}")
    if splits is not None and not any(splits):
        splits = None
    manifest = Manifest(
        locations=locations,
        labels=labels,
        storage=storage,
        splits=splits,
        classes=classes if classes is not None else class_order(labels),
        layout=layout,
        source=source,
        skipped=list(skipped),
        ignored=dict(ignored or {}),
        notes=list(notes or []),
        metadata=dict(metadata or {}),
    )
    if skipped:
        manifest.notes.append(f"{len(skipped)} row(s) skipped (see skipped for each reason)")
    if manifest.num_classes == 1:
        manifest.notes.append(f"only one class ({manifest.classes[0]!r}): a classifier needs at least two")
    return manifest
