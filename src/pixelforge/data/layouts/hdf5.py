"""HDF5 files: a group per class, nested groups, flat ``images``/``labels`` datasets, pixelforge stores.

Layouts recognised, in this order:
  pixelforge store  (written by ``pixelforge convert``): images, labels, classes, splits, provenance
  flat datasets     ``images``/``x``/``data``/``X`` with ``labels``/``y``/``targets`` (integer indices or
                    names); class names from a ``classes`` dataset or attribute when present. Split groups
                    (``train/images``, ``test/images``, …) are read as pre-split.
  class groups      ``/<class>/<image datasets>`` or nested ``/clothes/dress/…``: the label is a ``label``
                    attribute (on the dataset or the nearest group above it), else the leaf group name.
                    An image is a 2-D/3-D array dataset, one row of a stacked (N, H, W[, C]) dataset, or
                    a 1-D uint8 dataset holding encoded bytes (PNG, JPEG…).

Locations are ``dataset/path`` for one image or ``dataset/path#row`` for a row of a stack.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pixelforge.data.locations import Storage
from pixelforge.data.manifest import SPLIT_ALIASES, Manifest, Skip
from pixelforge.errors import LayoutError, PixelforgeError

IMAGE_KEYS = ("images", "x", "data", "X", "image", "imgs")
LABEL_KEYS = ("labels", "y", "targets", "label", "Y", "target")
STORE_MARK = "pixelforge_store"
CHUNK_CACHE_BYTES = 64 * 1024 * 1024  # holds a few chunks so row-by-row reads decompress each once


def _h5py():
    import h5py

    return h5py


def open_hdf5(path: str | os.PathLike, mode: str = "r"):
    """Open an HDF5 file with a clear error for anything that is not one."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise LayoutError(f"{path}: no such file")
    if path.is_dir():
        raise LayoutError(f"{path}: is a folder, not an HDF5 file")
    if path.stat().st_size == 0:
        raise LayoutError(f"{path}: empty file (0 bytes), not an HDF5 file")
    try:
        return h5py.File(path, mode, rdcc_nbytes=CHUNK_CACHE_BYTES)
    except OSError as exc:
        detail = str(exc).split("(")[0].strip().rstrip(",") or "unreadable"
        raise LayoutError(f"{path}: not a readable HDF5 file ({detail}; truncated or not HDF5?)") from None


class HDF5Storage(Storage):
    """Images inside an HDF5 file. The file opens lazily, once per process, and is never pickled,
    so a Manifest over it can go to DataLoader workers or other machines."""

    kind = "hdf5"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        self._file = None
        self._pid = None
        self._datasets: dict = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"], state["_pid"], state["_datasets"] = None, None, {}
        return state

    @property
    def file(self):
        if self._file is None or self._pid != os.getpid():
            self._file = open_hdf5(self.path)
            self._pid = os.getpid()
            self._datasets = {}
        return self._file

    def dataset(self, key: str):
        """An open dataset, kept open: its chunk cache lives only as long as the open object."""
        file = self.file
        found = self._datasets.get(key)
        if found is None:
            found = self._datasets[key] = file[key]
        return found

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._datasets = {}

    def read(self, location: str) -> bytes | np.ndarray:
        key, _, row = location.partition("#")
        try:
            dataset = self.dataset(key)
            value = dataset[int(row)] if row else dataset[()]
        except (KeyError, ValueError, IndexError, OSError) as exc:
            raise PixelforgeError(f"{self.describe(location)}: cannot read ({exc})") from None
        if isinstance(value, bytes):
            return value
        value = np.asarray(value)
        if value.ndim == 1 and value.dtype == np.uint8:
            return value.tobytes()  # encoded image bytes (PNG, JPEG, …)
        if value.dtype.kind == "V":  # opaque blob
            return value.tobytes()
        return value

    def read_rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """A contiguous block of a stacked dataset in one read (fast path for stores)."""
        return self.dataset(key)[start:stop]

    def describe(self, location: str) -> str:
        return f"{self.path}:{location}"

    def __repr__(self) -> str:
        return f"HDF5Storage({str(self.path)!r})"


def _text(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values).reshape(-1)]


def _class_names(f, labels_ds) -> list[str] | None:
    for holder in (f, labels_ds):
        if "classes" in holder.attrs:
            return _text(holder.attrs["classes"])
    for key in ("classes", "class_names", "label_names"):
        if key in f and isinstance(f[key], _h5py().Dataset):
            return _text(f[key][()])
    return None


def _find_key(group, wanted: str | None, candidates, what: str, where: str) -> str | None:
    h5py = _h5py()
    if wanted is not None:
        if wanted not in group or not isinstance(group[wanted], h5py.Dataset):
            present = sorted(group.keys())
            raise LayoutError(f"{where}: no {what} dataset {wanted!r} (present: {present})")
        return wanted
    for key in candidates:
        if key in group and isinstance(group[key], h5py.Dataset):
            return key
    return None


def _flat_rows(path, group, images_key, labels_key, classes, prefix=""):
    """(locations, labels) for one group holding flat images/labels datasets."""
    where = f"{path}:{group.name}"
    x_key = _find_key(group, images_key, IMAGE_KEYS, "images", where)
    y_key = _find_key(group, labels_key, LABEL_KEYS, "labels", where)
    if x_key is None:
        return None
    if y_key is None:
        raise LayoutError(
            f"{where}: found images {x_key!r} but no labels dataset (looked for {', '.join(LABEL_KEYS)}; "
            "pass labels_key=...)"
        )
    x, y = group[x_key], group[y_key]
    if x.ndim not in (2, 3, 4) and not (x.ndim == 1 and x.dtype.kind in "OV"):
        raise LayoutError(f"{where}/{x_key}: expected images shaped (N, H, W[, C]), got {x.shape}")
    if len(x) != len(y):
        raise LayoutError(f"{where}: {len(x):,} images in {x_key!r} but {len(y):,} labels in {y_key!r}")
    raw = y[()]
    if raw.ndim == 2:  # one-hot
        raw = raw.argmax(axis=1)
    names = classes or _class_names(group.file, y)
    if raw.dtype.kind in "iu":
        if names is not None:
            if len(raw) and (raw.min() < 0 or raw.max() >= len(names)):
                raise LayoutError(f"{where}/{y_key}: label {int(raw.max())} has no name among {len(names)} classes")
            labels = [names[int(i)] for i in raw]
        else:
            labels = [str(int(i)) for i in raw]
    else:
        labels = _text(raw)
    key = f"{prefix}{x_key}"
    return [f"{key}#{i}" for i in range(len(x))], labels, names


def _read_store(path, f) -> Manifest:
    classes = _text(f["classes"][()])
    labels_idx = f["labels"][()]
    n = len(labels_idx)
    if f["images"].shape[0] != n:
        raise LayoutError(f"{path}: store has {f['images'].shape[0]:,} images but {n:,} labels")
    splits = _text(f["splits"][()]) if "splits" in f else None
    storage = HDF5Storage(path)
    manifest = Manifest(
        locations=[f"images#{i}" for i in range(n)],
        labels=[classes[int(i)] for i in labels_idx],
        storage=storage,
        splits=[s if s != "all" else "" for s in splits] if splits else None,
        classes=classes,
        layout="hdf5",
        source=str(path),
        notes=[f"pixelforge store (format {int(f.attrs[STORE_MARK])})"],
    )
    if "skipped" in f:  # what the convert left out stays reported with the store
        items, reasons = _text(f["skipped/items"][()]), _text(f["skipped/reasons"][()])
        manifest.skipped = [Skip(i, r) for i, r in zip(items, reasons, strict=True)]
    return manifest


def _walk_class_groups(path, f, label_attr):
    """(locations, labels, splits, skipped) for class groups, nested or not, possibly under split groups.

    A dataset's label: its own ``label_attr``, else the nearest group above with one, else the name of
    the group holding it (the leaf group)."""
    h5py = _h5py()
    locations, labels, splits, skipped = [], [], [], []

    def visit(group, inherited, split, is_root):
        own = group.attrs.get(label_attr)
        inherited = _text(own)[0] if own is not None else inherited
        for name in sorted(group.keys()):
            item = group.get(name)
            if isinstance(item, h5py.Group):
                if is_root and split is None and name.lower() in SPLIT_ALIASES:
                    visit(item, inherited, SPLIT_ALIASES[name.lower()], True)  # a split is not a class level
                else:
                    visit(item, inherited, split, False)
                continue
            if not isinstance(item, h5py.Dataset):
                continue
            item_label = item.attrs.get(label_attr)
            item_label = _text(item_label)[0] if item_label is not None else inherited
            if item_label is None and not is_root:
                item_label = group.name.rsplit("/", 1)[-1]
            if item_label is None:
                skipped.append(Skip(f"{path}:{item.name}", "dataset outside any class group and without a label"))
                continue
            shape, key = item.shape, item.name.lstrip("/")
            one_image = (
                item.dtype.kind in "OV" or (len(shape) == 1 and item.dtype == np.uint8) or len(shape) == 2
                or (len(shape) == 3 and shape[2] in (1, 3, 4))
            )
            if one_image:
                locations.append(key)
                labels.append(item_label)
                splits.append(split or "")
            elif len(shape) in (3, 4):
                locations.extend(f"{key}#{i}" for i in range(shape[0]))
                labels.extend([item_label] * shape[0])
                splits.extend([split or ""] * shape[0])
            else:
                skipped.append(Skip(f"{path}:{item.name}", f"not an image dataset (shape {shape})"))

    visit(f, None, None, True)
    return locations, labels, splits, skipped


def read_hdf5_layout(
    path: str | os.PathLike,
    *,
    images_key: str | None = None,
    labels_key: str | None = None,
    label_attr: str = "label",
    classes: list[str] | None = None,
) -> Manifest:
    """Read an HDF5 file into a Manifest (see the module docstring for the layouts recognised).

    images_key / labels_key: dataset names for the flat layout (auto-detected otherwise).
    label_attr: attribute that names the class of a group or dataset (default "label").
    classes: class names for integer labels when the file has none.
    """
    path = Path(path)
    try:
        return _read_layout(path, images_key, labels_key, label_attr, classes)
    except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
        # a damaged file fails deep inside h5py (found by tests/test_fuzz.py: a flipped bit in a
        # dataspace raised KeyError "dataspace dim 0 size of 65540 is greater than maxdim size of 4")
        if isinstance(exc, PixelforgeError):
            raise
        raise LayoutError(f"{path}: damaged or unreadable HDF5 file ({exc})") from None


def _read_layout(path: Path, images_key, labels_key, label_attr, classes) -> Manifest:
    h5py = _h5py()
    with open_hdf5(path) as f:
        if STORE_MARK in f.attrs and images_key is None and labels_key is None:
            return _read_store(path, f)
        rows = _flat_rows(path, f, images_key, labels_key, classes)
        if rows is not None:
            locations, labels, names = rows
            return Manifest(locations, labels, HDF5Storage(path), classes=_ordered(names, labels),
                            layout="hdf5", source=str(path))
        split_groups = [k for k in f if k.lower() in SPLIT_ALIASES and isinstance(f[k], h5py.Group)]
        flat_splits = [k for k in split_groups if _find_key(f[k], images_key, IMAGE_KEYS, "images", str(path))]
        if flat_splits:
            locations, labels, splits, names = [], [], [], classes
            for key in flat_splits:
                locs, labs, found = _flat_rows(path, f[key], images_key, labels_key, names, prefix=f"{key}/")
                names = names or found
                locations += locs
                labels += labs
                splits += [SPLIT_ALIASES[key.lower()]] * len(locs)
            return Manifest(locations, labels, HDF5Storage(path), splits=splits,
                            classes=_ordered(names, labels), layout="hdf5", source=str(path))
        locations, labels, splits, skipped = _walk_class_groups(path, f, label_attr)
        if not locations:
            present = sorted(f.keys())
            raise LayoutError(
                f"{path}: no images found: expected flat datasets ({'/'.join(IMAGE_KEYS[:4])} with "
                f"{'/'.join(LABEL_KEYS[:3])}) or a group per class; top level holds {present or 'nothing'}"
            )
    return Manifest(locations, labels, HDF5Storage(path), splits=splits, classes=_ordered(classes, labels),
                    layout="hdf5", source=str(path), skipped=skipped)


def _ordered(names: list[str] | None, labels: list[str]) -> list[str] | None:
    """Keep a file's own class list (its index order is the file's meaning); else sort (Manifest default)."""
    if names is None:
        return None
    missing = sorted(set(labels) - set(names))
    return list(names) + missing
