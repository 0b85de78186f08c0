"""JSON datasets: a list of records or a mapping of labels to paths.

Accepted shapes (keys found by name, or given with ``image_key`` / ``label_key`` / ``split_key``):

    [{"image": "cat/1.png", "label": "cat", "split": "train"}, ...]
    {"images": [...records...]}                 # records under one top-level key
    {"cat": ["cat/1.png", ...], "dog": [...]}   # label → paths
    {"train": {"cat": [...]}, "test": {...}}    # split → label → paths (or split → records)

Paths are relative to the JSON file's folder, or to ``folder=`` (Keras: ``directory=``) inside it, with
``suffix=`` appended (absolute or escaping paths are refused as counted skips; ids without extension are
matched by stem, see ``table_paths``); http(s) URLs read through a UrlStorage when every image is a URL.
The other keys of each record are kept as per-image metadata (``Manifest.metadata``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pixelforge.data.layouts.rows import (
    LABEL_NAMES,
    PATH_NAMES,
    SPLIT_NAMES,
    URL_NAMES,
    clean_label,
    finish_manifest,
    metadata_value,
)
from pixelforge.data.layouts.table_paths import TablePaths, folder_option, table_storage
from pixelforge.data.locations import Storage
from pixelforge.data.manifest import SPLIT_ALIASES, Manifest, Skip
from pixelforge.errors import LayoutError

MAX_JSON_BYTES = 1024**3  # a JSON document is parsed whole; refuse absurd sizes with a message
RECORD_LIST_KEYS = ("images", "records", "data", "items", "annotations", "samples", "files")


def _load(path: str, storage: Storage | None, source: str):
    if storage is not None:
        data = storage.read(path)
        if not isinstance(data, bytes | bytearray):
            raise LayoutError(f"{source}: not a JSON file")
    else:
        file = Path(path)
        if not file.is_file():
            raise LayoutError(f"{path}: no such JSON file")
        try:
            if file.stat().st_size > MAX_JSON_BYTES:
                raise LayoutError(f"{path}: {file.stat().st_size:,} bytes is over the JSON size limit of {MAX_JSON_BYTES:,}")
            data = file.read_bytes()
        except OSError as exc:
            raise LayoutError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data.strip():
        raise LayoutError(f"{source}: empty file, expected a JSON list of records or a {{label: [paths]}} mapping")
    if len(data) > MAX_JSON_BYTES:
        raise LayoutError(f"{source}: {len(data):,} bytes is over the JSON size limit of {MAX_JSON_BYTES:,}")
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise LayoutError(f"{source}: not UTF-8 text; is it really a JSON file?") from None
    except json.JSONDecodeError as exc:
        raise LayoutError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    except RecursionError:
        raise LayoutError(f"{source}: JSON nested too deeply") from None


def _pick(record: dict, wanted: str | None, names: tuple[str, ...]) -> str | None:
    if wanted is not None:
        return wanted if wanted in record else None
    lowered = {str(k).lower(): k for k in record}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _entries(doc, *, image_key, label_key, split_key, source):
    """Yield ``(item name, image value, label value, split, other keys, problem)`` from any accepted shape."""
    if isinstance(doc, dict):
        for key in RECORD_LIST_KEYS:
            if isinstance(doc.get(key), list) and (not doc[key] or isinstance(doc[key][0], dict)):
                yield from _entries(doc[key], image_key=image_key, label_key=label_key, split_key=split_key,
                                    source=f"{source}[{key!r}]")
                return
        split_keys = [k for k in doc if str(k).lower() in SPLIT_ALIASES]
        if doc and len(split_keys) == len(doc) and all(isinstance(v, dict | list) for v in doc.values()):
            for split in split_keys:
                for name, image, label, inner, extra, problem in _entries(
                    doc[split], image_key=image_key, label_key=label_key, split_key=split_key,
                    source=f"{source}[{split!r}]",
                ):
                    yield name, image, label, inner or SPLIT_ALIASES[str(split).lower()], extra, problem
            return
        for label, paths in doc.items():
            if isinstance(paths, str):
                paths = [paths]
            if not isinstance(paths, list):
                yield f"{source}[{label!r}]", None, label, "", {}, "expected a list of paths"
                continue
            for i, value in enumerate(paths):
                yield f"{source}[{label!r}][{i}]", value, label, "", {}, None
        return
    if not isinstance(doc, list):
        raise LayoutError(f"{source}: expected a list of records or a {{label: [paths]}} mapping, got {type(doc).__name__}")
    for i, record in enumerate(doc):
        name = f"{source}[{i}]"
        if not isinstance(record, dict):
            yield name, None, None, "", {}, f"record is a {type(record).__name__}, expected an object"
            continue
        ikey = _pick(record, image_key, PATH_NAMES + URL_NAMES)
        lkey = _pick(record, label_key, LABEL_NAMES)
        skey = _pick(record, split_key, SPLIT_NAMES)
        split = clean_label(record.get(skey)) if skey is not None else ""
        used = {ikey, lkey, skey, *(k for k in record if str(k).lower() in URL_NAMES)}
        extra = {str(k): v for k, v in record.items() if k not in used}
        yield (name, record.get(ikey) if ikey else None, record.get(lkey) if lkey else None, split or "", extra,
               None)


def read_json_layout(
    path,
    *,
    image_key: str | None = None,
    label_key: str | None = None,
    split_key: str | None = None,
    storage: Storage | None = None,
    member_prefix: str | None = None,
    source: str = "",
    check_files: bool = True,
    folder=None,
    directory=None,
    suffix: str | None = None,
) -> Manifest:
    """Read a JSON list of records or a label → paths mapping into a Manifest.

    path: the JSON file, or its location inside ``storage`` (an archive member, a URL's file name).
    folder (or Keras' ``directory``): where the image paths are, relative to the JSON's folder (or absolute).
    suffix: appended to every path, e.g. ".jpg" for ids without extension (tried automatically when absent).
    """
    path = os.fspath(path)
    source = source or (storage.describe(path) if storage is not None else path)
    folder = folder_option(folder, directory, source)
    doc = _load(path, storage, source)
    storage, prefix = table_storage(path, storage, member_prefix, folder, source)
    rows = []
    skipped: list[Skip] = []
    for name, image, label, split, extra, problem in _entries(doc, image_key=image_key, label_key=label_key,
                                                              split_key=split_key, source=source):
        if problem:
            skipped.append(Skip(name, problem))
            continue
        if isinstance(label, list | dict):
            skipped.append(Skip(name, f"label {label!r} is not a single class name (multi-label is not supported)"))
            continue
        label = clean_label(label)
        if label is None:
            skipped.append(Skip(name, "empty or missing label"))
            continue
        if not isinstance(image, str) or not image.strip():
            skipped.append(Skip(name, "no image path (expected one of the keys " + ", ".join(PATH_NAMES[:6]) + ")"))
            continue
        rows.append((name, image.strip(), label, split, extra))
    all_urls = bool(rows) and all(img.lower().startswith(("http://", "https://")) for _, img, *_ in rows)
    if all_urls:
        from pixelforge.data.layouts.remote import UrlStorage

        storage = UrlStorage()
    paths = TablePaths(storage, prefix, suffix, check_files)
    locations, labels, splits, extras = [], [], [], []
    for name, image, label, split, extra in rows:
        if all_urls:
            location = image
        elif image.lower().startswith(("http://", "https://")):
            skipped.append(Skip(name, f"{image!r} is a URL among local paths; use all URLs or all paths"))
            continue
        else:
            location, reason = paths.locate(image)
            if reason:
                skipped.append(Skip(name, reason))
                continue
        locations.append(location)
        labels.append(label)
        splits.append(split)
        extras.append(extra)
    keys = dict.fromkeys(k for extra in extras for k in extra)  # every record's other keys, first-seen order
    metadata = {k: [metadata_value(extra.get(k)) for extra in extras] for k in keys}
    return finish_manifest(
        locations=locations, labels=labels, splits=splits, storage=storage,
        layout="json", source=source, skipped=skipped, notes=paths.notes(), metadata=metadata,
    )
