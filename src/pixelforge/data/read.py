"""``read_dataset``: any source → Manifest, with the layout auto-detected or named.

Layouts (one module each under ``pixelforge.data.layouts``):
  directory  class folders, flat / pre-split / hierarchical
  csv        paths, URLs or embedded pixels (.csv, .tsv, and the same gzipped)
  json       records or a {label: [paths]} mapping
  hdf5       group per class, nested groups, or flat images/labels datasets (pixelforge stores too)
  shards     a sharded pixelforge store: its folder or its index.json (``convert --shards N``)
  arrays     in-memory (x, y), .npz files, pandas DataFrames of paths and labels
  archive    zip / tar / tar.gz holding any of the above, read in place
  url        a remote file (archive, CSV, JSON) fetched over http(s) with a cache

Label options (``label_map``, ``include_labels``, ``exclude_labels``, ``min_per_class``, and ``curation``,
the decisions file ``pixelforge browse`` writes) work for every layout: they are applied to the reader's
Manifest here (see ``pixelforge.data.label_options``).
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

import numpy as np

from pixelforge.data.label_options import LABEL_OPTIONS, apply_label_options, pop_label_options
from pixelforge.data.manifest import Manifest
from pixelforge.errors import LayoutError

# layout name → (module, function); imported lazily so optional parts cost nothing until used
LAYOUTS = {
    "directory": ("pixelforge.data.layouts.directory", "read_directory_layout"),
    "csv": ("pixelforge.data.layouts.csv_table", "read_csv_layout"),
    "json": ("pixelforge.data.layouts.json_records", "read_json_layout"),
    "hdf5": ("pixelforge.data.layouts.hdf5", "read_hdf5_layout"),
    "shards": ("pixelforge.data.layouts.sharded", "read_sharded_layout"),
    "arrays": ("pixelforge.data.layouts.arrays", "read_arrays_layout"),
    "npz": ("pixelforge.data.layouts.arrays", "read_npz_layout"),
    "dataframe": ("pixelforge.data.layouts.arrays", "read_dataframe_layout"),
    "archive": ("pixelforge.data.layouts.archive", "read_archive_layout"),
    "url": ("pixelforge.data.layouts.remote", "read_url_layout"),
}

EXTENSION_LAYOUTS = {
    ".csv": "csv", ".tsv": "csv", ".json": "json", ".h5": "hdf5", ".hdf5": "hdf5", ".he5": "hdf5",
    ".npz": "npz", ".zip": "archive", ".tar": "archive", ".tgz": "archive", ".gz": "archive",
    ".csv.gz": "csv", ".tsv.gz": "csv",
    ".bz2": "archive", ".xz": "archive",
}


def layout_reader(name: str):
    try:
        module, func = LAYOUTS[name]
    except KeyError:
        raise LayoutError(f"unknown layout {name!r}; expected one of {sorted(LAYOUTS)}") from None
    return getattr(importlib.import_module(module), func)


def detect_layout(source) -> str:
    """The layout name for a source, from its type, URL scheme, or file extension."""
    if isinstance(source, tuple) and len(source) == 2:
        return "arrays"
    if type(source).__name__ == "DataFrame":
        return "dataframe"
    text = str(source)
    if text.startswith(("http://", "https://")):
        return "url"
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise LayoutError(f"{text}: unsupported URL scheme {scheme!r}; only http and https are allowed")
    path = Path(text)
    if not path.exists():
        raise LayoutError(f"{text}: no such file or folder")
    from pixelforge.data.layouts.sharded import is_sharded_store

    if is_sharded_store(path):
        return "shards"
    if path.is_dir():
        return "directory"
    name = path.name.lower()
    for ext in sorted(EXTENSION_LAYOUTS, key=len, reverse=True):
        if name.endswith(ext):
            return EXTENSION_LAYOUTS[ext]
    raise LayoutError(
        f"{text}: cannot tell the layout from the extension {path.suffix!r}; expected a folder or one of "
        f"{', '.join(sorted(EXTENSION_LAYOUTS))} (or pass layout=...)"
    )


def check_options(reader, options: dict, layout: str) -> None:
    """Refuse reader options a layout does not take (instead of a TypeError), naming those it does."""
    params = inspect.signature(reader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # the reader passes them on and checks them itself
    unknown = sorted(set(options) - set(params))
    if unknown:
        accepted = [n for n, p in params.items() if p.default is not inspect.Parameter.empty]
        raise LayoutError(
            f"layout {layout!r} has no option {', '.join(map(repr, unknown))}; its options are {', '.join(accepted)} "
            f"(and, for every layout, {', '.join(LABEL_OPTIONS)})"
        )


def read_dataset(source, layout: str = "auto", **options) -> Manifest:
    """Read any supported source into a Manifest.

    source: a folder, a .csv/.json/.h5/.npz/.zip/.tar(.gz) file, an http(s) URL, an ``(x, y)`` tuple
    of numpy arrays, or a pandas DataFrame. ``layout`` overrides detection; other keyword options go
    to the layout's reader (e.g. ``label_mode="top"`` for folders, ``path_column=`` for CSV), except
    the label options, which every layout takes (e.g. ``exclude_labels="Not sure,Skip"``).
    """
    label_options = pop_label_options(options)
    manifest = _read(source, layout, options)
    return apply_label_options(manifest, **label_options) if label_options else manifest


def _read(source, layout: str, options: dict) -> Manifest:
    name = detect_layout(source) if layout == "auto" else layout
    reader = layout_reader(name)
    check_options(reader, options, name)
    if name == "directory":
        from pixelforge.data.locations import FileStorage

        root = Path(source)
        if not root.is_dir():
            raise LayoutError(f"{source}: not a folder")
        return reader(FileStorage(root), source=str(source), **options)
    if name == "arrays":
        x, y = source
        return reader(np.asarray(x), np.asarray(y), **options)
    if name == "dataframe":
        return reader(source, **options)
    return reader(os.fspath(source), **options)
