"""Sharded stores: one dataset as N pixelforge stores (shards) plus a small JSON index, in one folder.

Layout of a sharded store (format 1), ``OUT/``:
  shard-00000-of-00004.h5 …  each a complete pixelforge store (``pixelforge.data.store``) holding a
                             contiguous row range of the split-assigned dataset; it reads alone
                             (``read_dataset("OUT/shard-00001-of-00004.h5")``)
  index.json                 {"pixelforge_shards": 1, classes, images, shape, dtype, shards: [{file,
                             images, first_row, bytes, counts_by_split: {split: {class: n}}}],
                             counts_by_split, preprocess, mean, std, train_images, skipped, source,
                             layout, pixelforge_version, created}

The split policy and the statistics are the single-file store's: splits are assigned once over the
whole dataset, and the channel mean/std are computed once over its training rows; every shard carries
those same statistics, so a process reading one shard (a DDP rank, a cluster job) normalizes like the
others. Shards are written to temporary files and renamed only when every one is complete, the index
last: a failed or interrupted write leaves no index and no shard (and removes an older index first,
so an index never points at a mix of old and new shards).
``read_dataset("OUT")`` or ``read_dataset("OUT/index.json")`` gives one Manifest over all shards.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from pixelforge.atomic import atomic_path
from pixelforge.data.layouts.sharded import INDEX_NAME
from pixelforge.data.manifest import Manifest, Skip
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.split import assign_splits
from pixelforge.data.stats import RunningStats
from pixelforge.data.store import (
    StoreSummary,
    _compression_args,
    _write_stats,
    _write_tables,
    write_images,
)
from pixelforge.errors import ParameterError, PixelforgeError

SHARDS_FORMAT = 1
SHARDS_MARK = "pixelforge_shards"  # the index's first key: ``is_sharded_store`` looks for it
SHARD_FILE = re.compile(r"^shard-\d{5}-of-\d{5}\.h5$")


def shard_bounds(n: int, shards: int | None = None, shard_size: int | None = None) -> list[int]:
    """Row bounds of the shards: ``shards`` equal contiguous ranges (as ``Manifest.shard``), or ranges
    of ``shard_size`` rows (the last one shorter)."""
    if (shards is None) == (shard_size is None):
        raise ParameterError("give either shards (a number of files) or shard_size (images per file), not both")
    if shards is not None:
        if shards < 1 or shards > n:
            raise ParameterError(f"shards must be between 1 and the number of images ({n:,}), got {shards}")
        return np.linspace(0, n, shards + 1).astype(int).tolist()
    if shard_size < 1:
        raise ParameterError(f"shard_size must be a positive number of images, got {shard_size}")
    return [*range(0, n, shard_size), n]


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.h5"


def _previous_shards(folder: Path) -> list[str]:
    """The shard files already in ``folder`` (a sharded store to replace, or what a failed replacement
    left); refuse a folder holding anything else."""
    if folder.exists() and not folder.is_dir():
        raise PixelforgeError(f"{folder}: is a file; a sharded store is written to a folder")
    if not folder.parent.is_dir():
        raise PixelforgeError(f"{folder.parent}: output folder does not exist")
    if not folder.exists():
        return []
    names = {p.name for p in folder.iterdir() if not (p.name.startswith(".") and p.name.endswith(".partial"))}
    old = sorted(name for name in names if SHARD_FILE.match(name))
    other = sorted(names - {INDEX_NAME, *old})
    if other:
        raise PixelforgeError(f"{folder}: holds other files ({', '.join(other[:3])}); give a new or empty folder "
                              "for the sharded store")
    return old


def read_index(path: str | os.PathLike) -> dict:
    """The parsed ``index.json`` of a sharded store, checked to be one."""
    path = Path(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{path}: unreadable sharded-store index ({exc})") from None
    if not isinstance(index, dict) or SHARDS_MARK not in index:
        raise PixelforgeError(f"{path}: not a pixelforge sharded-store index (no {SHARDS_MARK!r} key)")
    return index


def write_sharded_store(
    manifest: Manifest,
    folder: str | os.PathLike,
    spec: Preprocess | None = None,
    *,
    shards: int | None = None,
    shard_size: int | None = None,
    seed: int = 0,
    test_size: float | None = None,
    group_column: str | None = None,
    on_error: str = "skip",
    compression: str = "gzip",
    batch_size: int = 256,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "local",
) -> StoreSummary:
    """Decode ``manifest`` with ``spec`` into ``folder`` as ``shards`` stores (or stores of ``shard_size``
    images) plus ``index.json``; splits and statistics as ``write_store``'s (see the module docstring)."""
    import h5py

    from pixelforge import __version__

    spec = Preprocess() if spec is None else Preprocess.from_dict(spec.to_dict())
    if len(manifest) == 0:
        raise PixelforgeError(f"{manifest.source or 'source'}: no images to store")
    comp = _compression_args(compression)
    bounds = shard_bounds(len(manifest), shards, shard_size)
    manifest = assign_splits(manifest, seed=seed, test_size=test_size, group_column=group_column)
    folder = Path(folder)
    old = _previous_shards(folder)
    created = not folder.exists()
    folder.mkdir(exist_ok=True)
    (folder / INDEX_NAME).unlink(missing_ok=True)  # from here on no index points at the old shards
    count = len(bounds) - 1
    names = [shard_name(k, count) for k in range(count)]
    stats = RunningStats()
    skipped: list[Skip] = list(manifest.skipped)
    entries: list[dict] = []
    try:
        with ExitStack() as stack:
            index_tmp = stack.enter_context(atomic_path(folder / INDEX_NAME, make_parents=False))  # renamed last
            temps, first = [], None
            for k, name in enumerate(names):
                part = manifest.subset(np.arange(bounds[k], bounds[k + 1]))
                tmp = stack.enter_context(atomic_path(folder / name, make_parents=False))
                part_skips: list[Skip] = []
                with h5py.File(tmp, "w") as f:
                    rows, shape, dtype = write_images(
                        f, part, spec, stats, comp, folder / name, on_error=on_error, skipped=part_skips,
                        workers=workers, batch_size=batch_size, progress=progress, offset=bounds[k],
                        total=len(manifest), engine=engine,
                    )
                    if first is not None and (shape, dtype) != first:
                        raise PixelforgeError(f"{part.describe(int(rows[0]))}: {name} decoded to {shape} {dtype}, but "
                                              f"earlier shards are {first[0]} {first[1]}; give --size and --channels")
                    first = (shape, dtype)
                    _write_tables(f, part, rows, part_skips, comp)
                skipped += part_skips
                kept = part.subset(rows)
                entries.append({"file": name, "images": len(rows), "first_row": sum(e["images"] for e in entries),
                                "counts_by_split": _counts(kept)})
                temps.append(tmp)
            for k, tmp in enumerate(temps):  # the statistics of the whole training split, in every shard
                with h5py.File(tmp, "a") as f:
                    mean, std = _write_stats(f, spec, stats, manifest)
                    f.attrs["shard"], f.attrs["shards"] = k, count
                    f.attrs["first_row"] = entries[k]["first_row"]
                entries[k]["bytes"] = Path(tmp).stat().st_size
            stored = Preprocess.from_dict({**spec.to_dict(), "mean": None, "std": None})
            if stats.count:
                stored.set_statistics(stats)
            totals: dict[str, dict[str, int]] = {}
            for entry in entries:
                for split, counts in entry["counts_by_split"].items():
                    row = totals.setdefault(split, dict.fromkeys(manifest.classes, 0))
                    for label, n in counts.items():
                        row[label] += n
            index = {
                SHARDS_MARK: SHARDS_FORMAT, "classes": list(manifest.classes),
                "images": sum(e["images"] for e in entries), "shape": list(first[0]), "dtype": first[1],
                "shards": entries, "counts_by_split": totals, "preprocess": stored.to_dict(),
                "mean": mean, "std": std, "train_images": stats.count,
                "skipped": [{"item": s.item, "reason": s.reason} for s in skipped],
                "source": manifest.source, "layout": manifest.layout, "pixelforge_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            Path(index_tmp).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    except BaseException:
        if created:
            try:
                folder.rmdir()  # only when empty: nothing of a failed first write is left
            except OSError:
                pass
        raise
    for name in set(old) - set(names):
        (folder / name).unlink(missing_ok=True)
    return StoreSummary(
        path=str(folder), images=index["images"], shape=first[0], dtype=first[1], classes=list(manifest.classes),
        counts_by_split={split: sum(c.values()) for split, c in totals.items()}, mean=mean, std=std,
        skipped=skipped, bytes=sum(e["bytes"] for e in entries) + (folder / INDEX_NAME).stat().st_size,
        shards=[{"file": e["file"], "images": e["images"], "bytes": e["bytes"]} for e in entries],
    )


def _counts(manifest: Manifest) -> dict[str, dict[str, int]]:
    """``{split: {class: n}}`` as the store records them (a row without a split is "train")."""
    table: dict[str, dict[str, int]] = {}
    for split, label in zip(manifest.splits, manifest.labels, strict=True):
        row = table.setdefault(split or "train", dict.fromkeys(manifest.classes, 0))
        row[label] += 1
    return table

