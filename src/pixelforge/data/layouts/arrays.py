"""In-memory data: numpy ``(x, y)`` arrays, ``.npz`` files, and pandas DataFrames of paths and labels.

- ``read_arrays_layout(x, y, classes=None)``: x is (N, H, W), (N, H, W, C), (N, C, H, W) with C in 1/3,
  or flat (N, H*W[*3]) with ``pixel_shape``; y holds ints, strings or one-hot rows. Integer labels map
  through ``classes`` (a list of names) when given; otherwise they become their decimal names, ordered
  numerically so index i stays class i.
- ``read_npz_layout(path)``: keys found by name (``x``/``images``/``x_train``…, ``y``/``labels``…);
  ``x_train``/``y_train``/``x_test``/``y_test`` (and ``x_val``) become splits. Loaded without pickle.
- ``read_dataframe_layout(df, x_col="filename", y_col="class", directory=None)`` like Keras'
  ``flow_from_dataframe``: with ``directory``, paths are relative to it and may not climb out of it
  (absolute ones are refused); with ``directory=None`` paths are used as given (absolute, or relative
  to the working folder), since the caller built the table. ``folder=`` is a synonym of ``directory``
  (fastai's name) and ``suffix=`` is appended to every path; ids without any extension are matched to
  image files by stem. Missing files and names with another extension are counted skips. The other
  columns are kept as per-image metadata.
"""

from __future__ import annotations

import io
import os
import posixpath
import zipfile
import zlib
from pathlib import Path

import numpy as np

from pixelforge.data.layouts.csv_table import infer_shape, parse_shape
from pixelforge.data.layouts.directory import is_image_name
from pixelforge.data.layouts.rows import clean_label, finish_manifest, metadata_value
from pixelforge.data.layouts.table_paths import TablePaths, folder_option
from pixelforge.data.locations import ArrayStorage, FileStorage
from pixelforge.data.manifest import SPLIT_ALIASES, Manifest, Skip
from pixelforge.errors import LayoutError

X_KEYS = ("x", "images", "image", "imgs", "data", "features", "inputs", "X")
Y_KEYS = ("y", "labels", "label", "targets", "target", "classes_idx", "Y")
CLASS_NAME_KEYS = ("classes", "class_names", "label_names", "names")


def _image_array(x: np.ndarray, name: str, pixel_shape=None) -> np.ndarray:
    """x as (N, H, W) or (N, H, W, C); channels-first and flat rows are rearranged."""
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise LayoutError(f"{name}: images must be a numeric array, got dtype {x.dtype}")
    if x.ndim == 2:
        shape = parse_shape(pixel_shape) or infer_shape(x.shape[1], name)
        if int(np.prod(shape)) != x.shape[1]:
            raise LayoutError(f"{name}: rows of {x.shape[1]} values do not fit the pixel shape {shape}")
        x = x.reshape(len(x), *shape)
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 2, 3, 4):
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # NCHW → NHWC
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 2, 3, 4)):
        raise LayoutError(
            f"{name}: expected images shaped (N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1-4, got {x.shape}"
        )
    if x.shape[1] * x.shape[2] > 64_000_000:
        raise LayoutError(f"{name}: images of {x.shape[1]}x{x.shape[2]} pixels are over the 64M pixel limit")
    return x


def _label_names(y: np.ndarray, classes, name: str) -> tuple[list, list[str] | None]:
    """Per-row label names (None for an empty label) and the class list in index order."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot / probabilities
        y = y.argmax(axis=1)
    elif y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1:
        raise LayoutError(f"{name}: labels must be one value per image, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        finite = y[np.isfinite(y)]
        if np.all(finite == np.round(finite)):
            labels = [None if not np.isfinite(v) else int(v) for v in y.tolist()]
        else:
            raise LayoutError(f"{name}: float labels must be whole numbers (class indices)")
    elif np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        labels = [int(v) for v in y.tolist()]
    else:
        labels = [clean_label(v.decode() if isinstance(v, bytes) else v) for v in y.tolist()]
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(set(classes)) != len(classes):
            raise LayoutError(f"{name}: class names must be distinct, got {classes}")
        out = []
        for v in labels:
            if isinstance(v, int):
                if not 0 <= v < len(classes):
                    raise LayoutError(f"{name}: label index {v} is outside the {len(classes)} classes given")
                out.append(classes[v])
            else:
                out.append(v)
        unknown = {v for v in out if v is not None} - set(classes)
        if unknown:
            raise LayoutError(f"{name}: labels not among the classes given: {sorted(unknown)[:5]}")
        return out, classes
    if any(isinstance(v, int) and v < 0 for v in labels):
        raise LayoutError(f"{name}: negative class index in labels")
    return [str(v) if isinstance(v, int) else v for v in labels], None


def read_arrays_layout(
    x,
    y,
    classes=None,
    *,
    splits=None,
    pixel_shape=None,
    name: str = "arrays",
    source: str = "",
) -> Manifest:
    """Numpy images and labels → a Manifest over an ArrayStorage (the array itself, not a copy)."""
    images = _image_array(x, name, pixel_shape)
    labels, class_list = _label_names(y, classes, name)
    if len(labels) != len(images):
        raise LayoutError(f"{name}: {len(images)} images but {len(labels)} labels")
    if splits is not None and len(splits) != len(images):
        raise LayoutError(f"{name}: {len(images)} images but {len(splits)} split values")
    keep = [i for i, v in enumerate(labels) if v is not None]
    skipped = [Skip(f"{name}[{i}]", "empty label") for i, v in enumerate(labels) if v is None]
    return finish_manifest(
        locations=[str(i) for i in keep],
        labels=[labels[i] for i in keep],
        splits=[str(splits[i]) for i in keep] if splits is not None else None,
        storage=ArrayStorage(images, name=name),
        layout="arrays",
        source=source or name,
        skipped=skipped,
        classes=class_list,
    )


def _find_key(keys: list[str], wanted: str | None, candidates, what: str, source: str) -> str | None:
    if wanted is not None:
        if wanted not in keys:
            raise LayoutError(f"{source}: no array {wanted!r} for {what}; arrays are {keys}")
        return wanted
    for name in candidates:
        if name in keys:
            return name
    return None


def read_npz_layout(path, x_key: str | None = None, y_key: str | None = None, *, classes=None,
                    pixel_shape=None, source: str = "") -> Manifest:
    """A ``.npz`` file (a path, bytes or a binary file object) → a Manifest; never unpickles."""
    source = source or (os.fspath(path) if isinstance(path, str | os.PathLike) else "npz")
    if isinstance(path, bytes | bytearray):
        path = io.BytesIO(path)
    elif isinstance(path, str | os.PathLike) and not Path(path).is_file():
        raise LayoutError(f"{source}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise LayoutError(f"{source}: a single .npy array, expected an .npz with images and labels")
            return _read_npz(npz, x_key, y_key, classes, pixel_shape, source)
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, zlib.error) as exc:  # damaged (fuzzing)
        raise LayoutError(f"{source}: not a readable .npz file ({exc})") from None
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise LayoutError(f"{source}: holds pickled objects, which are refused (they can run code)") from None
        raise LayoutError(f"{source}: cannot read ({exc})") from None


def _read_npz(npz, x_key, y_key, classes, pixel_shape, source) -> Manifest:
    keys = list(npz.files)
    if not keys:
        raise LayoutError(f"{source}: empty .npz (no arrays)")
    if classes is None:
        ckey = next((k for k in CLASS_NAME_KEYS if k in keys), None)
        if ckey is not None and npz[ckey].ndim == 1 and not np.issubdtype(npz[ckey].dtype, np.number):
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in npz[ckey].tolist()]
    if x_key is None and y_key is None:
        pairs = []
        for split in SPLIT_ALIASES:
            for xs, ys in ((f"x_{split}", f"y_{split}"), (f"X_{split}", f"y_{split}"),
                           (f"{split}_images", f"{split}_labels"), (f"images_{split}", f"labels_{split}")):
                if xs in keys and ys in keys:
                    pairs.append((xs, ys, SPLIT_ALIASES[split]))
        if pairs:
            xs = [_image_array(npz[a], f"{source}:{a}", pixel_shape) for a, _, _ in pairs]
            if len({x.shape[1:] for x in xs}) > 1:
                raise LayoutError(f"{source}: split arrays have different image shapes {[x.shape for x in xs]}")
            ys = [np.asarray(npz[b]) for _, b, _ in pairs]
            splits = [s for (_, _, s), x in zip(pairs, xs, strict=True) for _ in range(len(x))]
            manifest = read_arrays_layout(np.concatenate(xs), np.concatenate(ys), classes, splits=splits,
                                          name=source, source=source)
            manifest.layout = "npz"
            return manifest
    xk = _find_key(keys, x_key, X_KEYS, "images", source)
    yk = _find_key(keys, y_key, Y_KEYS, "labels", source)
    if xk is None or yk is None:
        raise LayoutError(
            f"{source}: cannot tell which arrays hold images and labels among {keys}; pass x_key= and y_key="
        )
    manifest = read_arrays_layout(npz[xk], npz[yk], classes, pixel_shape=pixel_shape, name=source, source=source)
    manifest.layout = "npz"
    return manifest


def read_dataframe_layout(
    df,
    x_col: str = "filename",
    y_col: str = "class",
    directory=None,
    *,
    split_col: str | None = None,
    check_files: bool = True,
    source: str = "",
    folder=None,
    suffix: str | None = None,
) -> Manifest:
    """A pandas DataFrame of image paths and labels (Keras ``flow_from_dataframe`` style)."""
    source = source or "dataframe"
    directory = folder_option(folder, directory, source)
    suffix = str(suffix or "")
    for col in (x_col, y_col) + ((split_col,) if split_col else ()):
        if col not in df.columns:
            raise LayoutError(f"{source}: no column {col!r}; columns are {list(df.columns)[:20]}")
    paths = df[x_col].tolist()
    raw_labels = df[y_col].tolist()
    raw_splits = df[split_col].tolist() if split_col else [""] * len(paths)
    meta_cols = [c for c in df.columns if c not in (x_col, y_col, split_col)]
    skipped: list[Skip] = []
    rows = []
    for i, (value, label, split) in enumerate(zip(paths, raw_labels, raw_splits, strict=True)):
        item = f"{source} row {df.index[i]!r}"
        if isinstance(label, list | tuple | set):
            skipped.append(Skip(item, "multi-label rows are not supported"))
            continue
        label = clean_label(label)
        if label is None:
            skipped.append(Skip(item, f"empty value in label column {y_col!r}"))
            continue
        value = clean_label(value)
        if value is None:
            skipped.append(Skip(item, f"empty value in path column {x_col!r}"))
            continue
        value += suffix
        if posixpath.splitext(value)[1] and not is_image_name(value):  # Keras skips other files; bare ids are matched
            skipped.append(Skip(item, f"{value!r} does not have an image file extension"))
            continue
        rows.append((item, value, label, clean_label(split) or "", i))
    if directory is not None:
        storage = FileStorage(directory)
        if not storage.root.is_dir():
            raise LayoutError(f"{directory}: no such folder")
        relative = rows
    else:
        # paths as given (absolute, or relative to the working folder), under their common folder
        absolute = [os.path.abspath(value) for _, value, *_ in rows]
        root = os.path.commonpath(absolute) if absolute else os.getcwd()
        root = root if os.path.isdir(root) else os.path.dirname(root)
        storage = FileStorage(root)
        relative = [(item, os.path.relpath(a, root).replace(os.sep, "/"), label, split, i)
                    for (item, _, label, split, i), a in zip(rows, absolute, strict=True)]
    resolver = TablePaths(storage, check_files=check_files)
    locations, labels, splits, kept = [], [], [], []
    for item, value, label, split, i in relative:
        location, reason = resolver.locate(value)
        if reason:
            where = f" (paths are relative to directory={str(directory)!r})" if directory is not None else ""
            skipped.append(Skip(item, reason + (where if reason.startswith("refused") else "")))
            continue
        locations.append(location)
        labels.append(label)
        splits.append(split)
        kept.append(i)
    metadata = {}
    for col in meta_cols:
        values = df[col].tolist()
        metadata[str(col)] = [metadata_value(values[i]) for i in kept]
    return finish_manifest(
        locations=locations, labels=labels, splits=splits, storage=storage,
        layout="dataframe", source=source, skipped=skipped, notes=resolver.notes(), metadata=metadata,
    )
