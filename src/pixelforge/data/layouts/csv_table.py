"""CSV tables: a path column (relative to the CSV's folder), a URL column, or embedded pixels.

Path / URL tables become a Manifest over a folder (or archive) storage / a UrlStorage. Embedded-pixel
tables (``label,pixel0,…,pixel783``) are parsed in chunks of lines with numpy's C parser straight into
one preallocated uint8 array (an ArrayStorage), so no Python list of rows is ever held.

Columns are found by name (``filepath``/``filename``/``path``/``image``…, ``label``/``class``/
``category``/``target``/``y``, ``url``/``link``, ``split``/``subset``/``fold``) or given explicitly.
Paths follow fastai's ``folder=``/``suffix=`` (Keras' ``directory=``); ids without an extension are
matched to image files by stem (see ``table_paths``). Every other column of a path / URL table is kept
as per-image metadata (``Manifest.metadata``).
Bad rows (empty label, missing file, path escaping the root, wrong field count, bad pixel value) are
counted skips with a reason; only a file that is not a readable CSV at all is an error.
``.csv.gz`` / ``.tsv.gz`` files are read through gzip as a stream (never decompressed to disk).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
import zlib
from itertools import islice
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from pixelforge.data.layouts.rows import (
    LABEL_NAMES,
    PATH_NAMES,
    SPLIT_NAMES,
    URL_NAMES,
    clean_label,
    find_column,
    finish_manifest,
    metadata_columns,
    metadata_value,
)
from pixelforge.data.layouts.table_paths import TablePaths, folder_option, table_storage
from pixelforge.data.locations import ArrayStorage, Storage
from pixelforge.data.manifest import Manifest, Skip
from pixelforge.errors import LayoutError

PIXEL_NAME = re.compile(r"^(pixel|pix|px|p)?[_ ]?\d+$|^\d+x\d+$")
MAX_IMAGE_PIXELS = 64_000_000
MAX_ARRAY_BYTES = 8 * 1024**3  # embedded pixels are held in memory; beyond this, convert in pieces
CHUNK_LINES = 4096


def parse_shape(shape) -> tuple[int, ...] | None:
    """"28x28", "28x28x1", (28, 28, 3) or [32, 32] → a tuple; None stays None."""
    if shape is None or shape == "":
        return None
    if isinstance(shape, str):
        parts = re.split(r"[x,* ]+", shape.strip().lower().strip("()[]"))
    else:
        parts = list(shape) if not isinstance(shape, int) else [shape]
    try:
        dims = tuple(int(p) for p in parts if str(p) != "")
    except ValueError:
        raise LayoutError(f"pixel shape {shape!r} is not like '28x28' or '32x32x3'") from None
    if len(dims) not in (2, 3) or min(dims) <= 0 or (len(dims) == 3 and dims[2] not in (1, 2, 3, 4)):
        raise LayoutError(f"pixel shape {shape!r} must be HxW or HxWxC with C in 1-4")
    if math.prod(dims[:2]) > MAX_IMAGE_PIXELS:
        raise LayoutError(f"pixel shape {shape!r} is over the limit of {MAX_IMAGE_PIXELS:,} pixels per image")
    return dims


def infer_shape(count: int, source: str) -> tuple[int, ...]:
    """A square grayscale (count = s²) or square RGB (count = 3·s²) shape from a pixel count."""
    side = math.isqrt(count)
    if side * side == count:
        return (side, side)
    side = math.isqrt(count // 3)
    if count % 3 == 0 and 3 * side * side == count:
        return (side, side, 3)
    raise LayoutError(
        f"{source}: {count} pixel columns is neither a square nor 3 x a square; give the shape, "
        "e.g. pixel_shape='28x28' or '32x32x3'"
    )


def _sniff_delimiter(line: str, path: str) -> str:
    if path.lower().endswith((".tsv", ".tsv.gz")):
        return "\t"
    counts = {d: line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


MAX_TABLE_BYTES = 1024**3  # a gzip table inside an archive is decompressed in memory: refuse bombs


def _gunzip_member(data: bytes, where: str) -> bytes:
    """The decompressed bytes of a gzip table read from a storage (e.g. a member of an archive)."""
    if not data:
        raise LayoutError(f"{where}: empty file (0 bytes), expected a gzip-compressed CSV")
    try:  # GzipFile reads concatenated members and zero padding, checking each member's CRC and size
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzip:
            out = unzip.read(MAX_TABLE_BYTES + 1)
    except EOFError:
        raise LayoutError(f"{where}: not a complete gzip file; is it truncated or misnamed?") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise LayoutError(f"{where}: not a gzip file ({exc}); is it misnamed?") from None
    if len(out) > MAX_TABLE_BYTES:
        raise LayoutError(f"{where}: decompresses to over {MAX_TABLE_BYTES >> 20} MB; refused")
    return out


def _open(path: str, storage: Storage | None) -> tuple[io.TextIOBase, int]:
    """A text handle on the CSV (from disk or from a storage) and an upper bound on its line count."""
    if storage is not None:
        local = storage.local_path(path)
        if local is None or not Path(local).is_file():
            data = storage.read(path)
            if isinstance(data, np.ndarray):
                raise LayoutError(f"{storage.describe(path)}: not a CSV file")
            if path.lower().endswith(".gz"):
                data = _gunzip_member(data, storage.describe(path))
            return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""), data.count(b"\n") + 1
        path = str(local)
    file = Path(path)
    if not file.is_file():
        raise LayoutError(f"{path}: no such CSV file")
    compressed = file.name.lower().endswith(".gz")
    opener = gzip.open if compressed else open
    try:
        if file.stat().st_size == 0:
            raise LayoutError(f"{path}: empty file (0 bytes), expected a CSV with a header row")
        lines = 1  # one streaming pass counts rows (bounds the arrays); a gzip file is checked whole here
        with opener(file, "rb") as raw:
            for block in iter(lambda: raw.read(1 << 20), b""):
                lines += block.count(b"\n")
        return io.TextIOWrapper(opener(file, "rb"), encoding="utf-8-sig", newline=""), lines
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise LayoutError(f"{path}: not a complete gzip file ({exc}); is it truncated or misnamed?") from None
    except OSError as exc:
        raise LayoutError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_csv_layout(
    path,
    *,
    path_column: str | None = None,
    label_column: str | None = None,
    url_column: str | None = None,
    pixel_shape=None,
    split_column: str | None = None,
    delimiter: str | None = None,
    storage: Storage | None = None,
    member_prefix: str | None = None,
    source: str = "",
    pixel_order: str = "hwc",
    check_files: bool = True,
    header: bool | None = None,
    folder=None,
    directory=None,
    suffix: str | None = None,
) -> Manifest:
    """Read a CSV into a Manifest.

    path: the CSV file, or its location inside ``storage`` (e.g. a member of an archive).
    storage: where the CSV and its images live; None means the local disk, with image paths resolved
      against the CSV's folder (``member_prefix`` overrides that folder inside a storage).
    pixel_shape: "28x28" / (28, 28, 1) for embedded pixels; inferred from a square count when None.
    pixel_order: "hwc" (RGB interleaved, the default) or "chw" (planar, e.g. CIFAR-style rows).
    header: True / False, or None to detect (a first row of numbers only is data, not a header).
    folder (or Keras' ``directory``): where the image paths are, relative to the CSV's folder (or absolute).
    suffix: appended to every path, e.g. ".jpg" for ids without extension (tried automatically when absent).
    """
    path = os.fspath(path)
    source = source or (storage.describe(path) if storage is not None else path)
    folder = folder_option(folder, directory, source)
    if pixel_order not in ("hwc", "chw"):
        raise LayoutError(f"pixel_order must be 'hwc' or 'chw', got {pixel_order!r}")
    fh, line_bound = _open(path, storage)
    with fh:
        try:
            first = fh.readline()
            if not first.strip():
                raise LayoutError(f"{source}: empty CSV (no header row)")
            delimiter = delimiter or _sniff_delimiter(first, path)
            names = next(csv.reader([first], delimiter=delimiter))
            if header is None:
                header = not all(_is_number(n) for n in names)
            if not header:
                # header-less tables: label first, then pixels (the classic mnist_train.csv)
                fh = _Prepend(first, fh)
                names = ["label"] + [f"pixel{i}" for i in range(len(names) - 1)]
            if len(names) < 2:
                raise LayoutError(
                    f"{source}: only one column ({names[0]!r}) with delimiter {delimiter!r}; expected a path "
                    "or pixel columns plus a label column"
                )
            return _read_rows(
                fh, names, source=source, path=path, storage=storage, member_prefix=member_prefix,
                path_column=path_column, label_column=label_column, url_column=url_column,
                split_column=split_column, pixel_shape=pixel_shape, delimiter=delimiter,
                pixel_order=pixel_order, check_files=check_files, line_bound=line_bound,
                header_lines=1 if header else 0, folder=folder, suffix=suffix,
            )
        except UnicodeDecodeError as exc:
            raise LayoutError(f"{source}: not UTF-8 text ({exc.reason}); is it really a CSV file?") from None
        except csv.Error as exc:
            raise LayoutError(f"{source}: malformed CSV ({exc})") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Prepend:
    """A line iterator that yields ``first`` before the rest of ``fh`` (for header-less files)."""

    def __init__(self, first: str, fh):
        self.first, self.fh = first, fh

    def __iter__(self):
        yield self.first
        yield from self.fh

    def close(self):
        self.fh.close()


def _read_rows(fh, names, *, source, path, storage, member_prefix, path_column, label_column, url_column,
               split_column, pixel_shape, delimiter, pixel_order, check_files, line_bound, header_lines, folder,
               suffix):
    label_idx = find_column(names, label_column, LABEL_NAMES, "label", source)
    split_idx = find_column(names, split_column, SPLIT_NAMES, "split", source)
    path_idx = find_column(names, path_column, PATH_NAMES, "path", source) if url_column is None else None
    url_idx = find_column(names, url_column, URL_NAMES, "URL", source) if path_column is None else None
    if label_idx is None:
        raise LayoutError(
            f"{source}: no label column found among {names[:12]}; pass label_column= (auto-detected names: "
            f"{', '.join(LABEL_NAMES)})"
        )
    taken = {label_idx, split_idx}
    pixel_cols = [i for i, n in enumerate(names) if i not in taken and PIXEL_NAME.match(str(n).strip().lower())]
    if pixel_shape is not None and path_column is None and url_column is None and len(pixel_cols) < 4:
        pixel_cols = [i for i in range(len(names)) if i not in taken]
    if path_column is None and url_column is None and len(pixel_cols) >= 4 and (path_idx is None or pixel_shape):
        return _read_pixels(fh, names, pixel_cols, label_idx, split_idx, source=source, pixel_shape=pixel_shape,
                            delimiter=delimiter, pixel_order=pixel_order, line_bound=line_bound,
                            header_lines=header_lines)
    if path_idx is None and url_idx is None:
        raise LayoutError(
            f"{source}: no path, URL or pixel columns among {names[:12]}; pass path_column=, url_column= "
            "or pixel_shape="
        )
    reader = csv.reader(fh, delimiter=delimiter)
    use_url = path_idx is None
    column = url_idx if use_url else path_idx
    storage, prefix = table_storage(path, storage, member_prefix, folder, source)
    paths = TablePaths(storage, prefix, suffix, check_files)
    meta_cols = metadata_columns(names, {label_idx, split_idx, path_idx, url_idx} - {None})
    metadata: dict[str, list[str]] = {name: [] for name in meta_cols}
    url_storage = None
    locations, labels, splits, skipped = [], [], [], []
    blank_rows = 0
    for lineno, row in enumerate(reader, start=header_lines + 1):
        if not row:
            continue  # an empty line
        if not any(cell.strip() for cell in row):
            blank_rows += 1  # fields, all empty: no image, but counted so that rows in = read + skipped + ignored
            continue
        item = f"{source} line {lineno}"
        if len(row) <= max(column, label_idx, split_idx or 0):
            skipped.append(Skip(item, f"has {len(row)} field(s), expected {len(names)}"))
            continue
        value = row[column].strip()
        label = clean_label(row[label_idx])
        if label is None:
            skipped.append(Skip(item, f"empty value in label column {names[label_idx]!r}"))
            continue
        if not value:
            skipped.append(Skip(item, f"empty value in column {names[column]!r}"))
            continue
        is_url = use_url or value.lower().startswith(("http://", "https://"))
        if is_url:
            reason = _url_problem(value)
            if reason:
                skipped.append(Skip(item, reason))
                continue
            if not use_url and not locations:
                use_url = True  # a path column holding URLs: read the whole table as URLs
            if not use_url:
                skipped.append(Skip(item, f"{value!r} is a URL in a path column of local paths"))
                continue
            location = value
        else:
            if use_url:
                skipped.append(Skip(item, f"{value!r} is not an http(s) URL"))
                continue
            location, reason = paths.locate(value)
            if reason:
                skipped.append(Skip(item, reason))
                continue
        locations.append(location)
        labels.append(label)
        splits.append((clean_label(row[split_idx]) or "") if split_idx is not None else "")
        for name, i in meta_cols.items():
            metadata[name].append(metadata_value(row[i]) if i < len(row) else "")
    if use_url:
        from pixelforge.data.layouts.remote import UrlStorage

        url_storage = UrlStorage()
    return finish_manifest(
        locations=locations, labels=labels, splits=splits, storage=url_storage or storage,
        layout="csv", source=source, skipped=skipped, notes=paths.notes(), metadata=metadata,
        ignored={"blank_rows": blank_rows} if blank_rows else None,
    )


def _url_problem(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        return f"{value!r}: unsupported URL scheme {parts.scheme!r}; only http and https are allowed"
    if not parts.netloc:
        return f"{value!r}: URL has no host"
    return None


# ---- embedded pixels -----------------------------------------------------------------------------

def _field(line: str, index: int, count: int, delimiter: str) -> str:
    """Field ``index`` of a line with ``count`` fields, without splitting the whole line when avoidable."""
    if '"' in line:
        return next(csv.reader([line], delimiter=delimiter))[index]
    if index < count // 2:
        return line.split(delimiter, index + 1)[index]
    parts = line.rstrip("\r\n").rsplit(delimiter, count - index)
    return parts[index - (count - len(parts))] if len(parts) >= count - index else ""


def _read_pixels(fh, names, pixel_cols, label_idx, split_idx, *, source, pixel_shape, delimiter, pixel_order,
                 line_bound, header_lines):
    count = len(pixel_cols)
    shape = parse_shape(pixel_shape) or infer_shape(count, source)
    if math.prod(shape) != count:
        raise LayoutError(
            f"{source}: pixel shape {'x'.join(map(str, shape))} needs {math.prod(shape):,} values per row "
            f"but the table has {count:,} pixel columns"
        )
    n_max = max(1, line_bound)
    if n_max * count > MAX_ARRAY_BYTES:
        raise LayoutError(
            f"{source}: about {n_max:,} rows x {count:,} pixels would need {n_max * count / 1e9:.1f} GB in memory "
            f"(limit {MAX_ARRAY_BYTES / 1e9:.0f} GB)"
        )
    images = np.empty((n_max, count), dtype=np.uint8)
    labels, splits, skipped = [], [], []
    scale = None  # decided on the first good chunk: 255 for values in [0, 1], 1 for 0..255 integers
    contiguous = pixel_cols == list(range(pixel_cols[0], pixel_cols[0] + count))
    usecols = range(pixel_cols[0], pixel_cols[0] + count) if contiguous else pixel_cols
    n = 0
    lineno = header_lines
    lines_iter = iter(fh)
    while True:
        chunk = list(islice(lines_iter, CHUNK_LINES))
        if not chunk:
            break
        numbers = [lineno + 1 + i for i in range(len(chunk))]
        lineno += len(chunk)
        kept = [(no, line) for no, line in zip(numbers, chunk, strict=True) if line.strip()]
        if not kept:
            continue
        values, good = _parse_chunk([line for _, line in kept], usecols, len(names), delimiter)
        if scale is None and len(values):
            scale = 255 if values.max() <= 1 and values.min() >= 0 else 1
        if scale == 255:
            values = np.round(values.astype(np.float32) * scale)
        valid = np.ones(len(values), bool) if values.dtype == np.uint8 else ((values >= 0) & (values <= 255)).all(axis=1)
        if values.dtype.kind == "f":
            valid &= (values == np.round(values)).all(axis=1)
        take = []
        for j, (no, line) in enumerate(kept):
            item = f"{source} line {no}"
            if isinstance(good[j], str):
                skipped.append(Skip(item, good[j]))
                continue
            if not valid[good[j]]:
                skipped.append(Skip(item, "pixel values must be integers in 0..255 (or all in 0..1)"))
                continue
            label = clean_label(_field(line, label_idx, len(names), delimiter))
            if label is None:
                skipped.append(Skip(item, f"empty value in label column {names[label_idx]!r}"))
                continue
            take.append(good[j])
            labels.append(label)
            split = _field(line, split_idx, len(names), delimiter) if split_idx is not None else ""
            splits.append(clean_label(split) or "")
        images[n : n + len(take)] = values[take]
        n += len(take)
    images = images[:n] if n > 0.9 * n_max else images[:n].copy()
    if pixel_order == "chw" and len(shape) == 3:
        images = images.reshape(n, shape[2], shape[0], shape[1]).transpose(0, 2, 3, 1)
    else:
        images = images.reshape(n, *shape)
    notes = []
    if scale == 255.0:
        notes.append("pixel values are in [0, 1]; scaled by 255 to uint8")
    if len(shape) == 3 and shape[2] == 3 and pixel_shape is None:
        notes.append(f"{count} pixel columns read as {shape[0]}x{shape[1]} RGB, interleaved (pixel_order='hwc')")
    return finish_manifest(
        locations=[str(i) for i in range(n)], labels=labels, splits=splits,
        storage=ArrayStorage(images, name=source), layout="csv", source=source, skipped=skipped, notes=notes,
    )


def _parse_chunk(lines: list[str], usecols, n_fields: int, delimiter: str):
    """Pixel values of a chunk (uint8, int32 or float32: the narrowest that parses) and, per line,
    either its row in those values or the reason to skip it."""
    if all(_count_fields(line, delimiter) == n_fields for line in lines):
        # uint8 parses fastest and refuses out-of-range values; then wider ints; floats last
        for dtype in (np.uint8, np.int32, np.float32):
            try:
                values = np.loadtxt(lines, delimiter=delimiter, usecols=usecols, dtype=dtype, ndmin=2,
                                    quotechar='"', comments=None)
                return values, list(range(len(lines)))
            except (ValueError, IndexError, OverflowError):
                continue
    # a bad line in the chunk: parse line by line to find it
    rows, good = [], []
    cols = list(usecols)
    for line in lines:
        fields = next(csv.reader([line], delimiter=delimiter))
        if len(fields) != n_fields:
            good.append(f"has {len(fields)} field(s), expected {n_fields} (truncated or malformed row)")
            continue
        try:
            row = np.array([float(fields[c]) for c in cols], dtype=np.float32)
        except ValueError:
            good.append("non-numeric or empty pixel value")
            continue
        if not np.all(np.isfinite(row)):
            good.append("non-finite pixel value")
            continue
        good.append(len(rows))
        rows.append(row)
    values = np.stack(rows) if rows else np.zeros((0, len(cols)), np.float32)
    return values, good


def _count_fields(line: str, delimiter: str) -> int:
    if '"' in line:
        return len(next(csv.reader([line], delimiter=delimiter)))
    return line.count(delimiter) + 1


