"""Sharded pixelforge stores (``convert --shards N``): a folder of stores plus ``index.json``, read as
one Manifest over all shards (see ``pixelforge.data.shards`` for the format).

Locations are ``SHARD_FILE#row``; the storage opens each shard lazily, once per process, and is
never pickled with open files, so the Manifest goes to DataLoader workers and other machines.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pixelforge.data.layouts.hdf5 import STORE_MARK, HDF5Storage, _text, open_hdf5
from pixelforge.data.locations import Storage
from pixelforge.data.manifest import Manifest, Skip
from pixelforge.errors import LayoutError, PixelforgeError

INDEX_NAME = "index.json"
MARK = b'"pixelforge_shards"'


def is_sharded_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a sharded store's folder or its index (checked by the index's first bytes)."""
    path = Path(path)
    index = path / INDEX_NAME if path.is_dir() else path
    if not index.name.endswith(".json") or not index.is_file():
        return False
    try:
        with open(index, "rb") as handle:
            return MARK in handle.read(256)
    except OSError:
        return False


class ShardedStorage(Storage):
    """Rows of several store files in one folder; a location is ``FILE#row``."""

    kind = "shards"

    def __init__(self, folder: str | os.PathLike, files: list[str]):
        self.folder = Path(folder).resolve()
        self.files = list(files)
        self._stores = {name: HDF5Storage(self.folder / name) for name in self.files}

    def read(self, location: str) -> np.ndarray:
        name, _, row = location.partition("#")
        store = self._stores.get(name)
        if store is None:
            raise PixelforgeError(f"{self.describe(location)}: no such shard in the index")
        return store.read(f"images#{row}")

    def describe(self, location: str) -> str:
        name, _, row = location.partition("#")
        return f"{self.folder / name}:images#{row}"

    def close(self) -> None:
        for store in self._stores.values():
            store.close()

    def __repr__(self) -> str:
        return f"ShardedStorage({str(self.folder)!r}, {len(self.files)} shards)"


def read_sharded_layout(path: str | os.PathLike) -> Manifest:
    """One Manifest over every shard listed in the index (``path``: the folder or its index.json)."""
    from pixelforge.data.shards import read_index

    path = Path(path)
    index_path = path / INDEX_NAME if path.is_dir() else path
    try:
        index = read_index(index_path)
    except PixelforgeError as exc:
        raise LayoutError(str(exc)) from None
    folder = index_path.parent
    classes = list(index["classes"])
    locations: list[str] = []
    labels: list[str] = []
    splits: list[str] = []
    files = []
    for entry in index["shards"]:
        name = str(entry["file"])
        if Path(name).name != name:
            raise LayoutError(f"{index_path}: shard {name!r} is not a file name in the index's folder")
        with open_hdf5(folder / name) as f:
            if STORE_MARK not in f.attrs:
                raise LayoutError(f"{folder / name}: not a pixelforge store (no {STORE_MARK} attribute)")
            if _text(f["classes"][()]) != classes:
                raise LayoutError(f"{folder / name}: its classes differ from the index's")
            indices = f["labels"][()]
            part_splits = _text(f["splits"][()])
        if len(indices) != entry["images"]:
            raise LayoutError(f"{folder / name}: holds {len(indices):,} images, the index says {entry['images']:,}")
        files.append(name)
        locations += [f"{name}#{i}" for i in range(len(indices))]
        labels += [classes[int(i)] for i in indices]
        splits += part_splits
    return Manifest(
        locations=locations, labels=labels, storage=ShardedStorage(folder, files), splits=splits,
        classes=classes, layout="shards", source=str(index_path),
        notes=[f"pixelforge sharded store ({len(files)} shards, format {int(index['pixelforge_shards'])})"],
        skipped=[Skip(s["item"], s["reason"]) for s in index.get("skipped", [])],
    )
