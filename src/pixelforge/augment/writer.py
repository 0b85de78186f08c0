"""Write augmented copies of a dataset to class folders, with a manifest CSV, class balancing and a
preview montage (``pixelforge augment``).

Images stream one source image at a time: its copies are one batched pipeline call, seeded by
``(seed, row)``, so the same command writes the same files. Names follow Keras' save_to_dir
(``<prefix>_<index>_<hash>.<format>``, index = source row); every file is written atomically.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pixelforge.atomic import atomic_path
from pixelforge.augment.pipeline import Pipeline
from pixelforge.augment.save import check_format, save_to_dir_name, to_uint8_image, write_image
from pixelforge.data.manifest import Manifest, Skip
from pixelforge.errors import PixelforgeError

MANIFEST_COLUMNS = ("path", "label", "source", "source_index", "augmented")


def copies_per_image(manifest: Manifest, per_image: int, balance: bool, target: int | None) -> np.ndarray:
    """How many augmented copies each row gets.

    Without balance: ``per_image`` each. With balance: each class is topped up to ``target``
    (default: the largest class) with copies spread evenly over its images; classes already at or
    above the target get none.
    """
    if per_image < 0:
        raise PixelforgeError(f"--per-image must be >= 0, got {per_image}")
    counts = np.zeros(len(manifest), dtype=np.int64)
    if not balance:
        counts[:] = per_image
        return counts
    sizes = manifest.class_counts()
    goal = max(sizes.values()) if target is None else int(target)
    if goal < 1:
        raise PixelforgeError(f"--target must be >= 1, got {target}")
    labels = np.asarray(manifest.labels)
    for name, size in sizes.items():
        missing = goal - size
        if missing <= 0 or size == 0:
            continue
        rows = np.flatnonzero(labels == name)
        share, extra = divmod(missing, len(rows))
        counts[rows] = share
        counts[rows[:extra]] += 1
    return counts


def folder_name(label: str) -> str:
    """A class label as one safe folder name."""
    name = label.replace("/", "_").replace("\\", "_").strip()
    if name in ("", ".", ".."):
        name = f"class_{name.strip('.') or 'empty'}"
    return name


def augment_to_dir(
    manifest: Manifest,
    pipeline: Pipeline,
    out: str | os.PathLike,
    *,
    per_image: int = 1,
    seed: int = 0,
    balance: bool = False,
    target: int | None = None,
    save_format: str = "png",
    prefix: str = "aug",
    include_originals: bool = False,
    preprocess=None,
    preview: str | os.PathLike | None = None,
    preview_rows: int = 8,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write augmented copies of ``manifest`` into ``out/<class>/`` and ``out/manifest.csv``.

    include_originals: also write each source image (re-encoded) so that ``out`` is a complete
    dataset; balancing always does, since the target counts the originals.
    preprocess: optional Preprocess spec (size, channels) applied when decoding.
    """
    save_format = check_format(save_format)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = copies_per_image(manifest, per_image, balance, target)
    include_originals = include_originals or balance
    rows_csv: list[tuple] = []
    skipped: list[Skip] = []
    per_class = {name: 0 for name in manifest.classes}
    preview_rows_data: list[list[np.ndarray]] = []
    preview_copies = max(1, min(int(counts.max(initial=0)) or 4, 8))
    written = 0
    # names taken by this run, not by files already on disk: a rerun after a kill rewrites the same
    # names (same seed) instead of adding second copies beside the first run's
    used: set[tuple[Path, str]] = set()
    for i in range(len(manifest)):
        if progress is not None:
            progress(i)
        if counts[i] == 0 and not include_originals and len(preview_rows_data) >= preview_rows:
            continue
        try:
            image = preprocess.load(manifest, i) if preprocess is not None else manifest.load(i)
        except PixelforgeError as exc:
            skipped.append(Skip(manifest.describe(i), str(exc)))
            continue
        label = manifest.labels[i]
        folder = out / folder_name(label)
        rng = np.random.default_rng([seed, i])
        if include_originals:
            name = f"{Path(manifest.locations[i]).stem}.{save_format}"
            if (folder, name) in used:  # same file name in two source folders of one class
                name = f"{Path(manifest.locations[i]).stem}_{i}.{save_format}"
            used.add((folder, name))
            write_image(folder / name, to_uint8_image(image), save_format)
            rows_csv.append((f"{folder.name}/{name}", label, manifest.describe(i), i, 0))
            per_class[label] += 1
            written += 1
        n_copies = int(counts[i])
        want_preview = preview is not None and len(preview_rows_data) < preview_rows
        batch_size = max(n_copies, preview_copies if want_preview else 0)
        if batch_size == 0:
            continue
        copies = pipeline(np.repeat(image[None], batch_size, axis=0), rng)
        if want_preview:
            preview_rows_data.append([image, *copies[:preview_copies]])
        for copy in copies[:n_copies]:
            name = save_to_dir_name(prefix, i, rng, save_format)
            while (folder, name) in used:  # a hash collision with an earlier copy of this image
                name = save_to_dir_name(prefix, i, rng, save_format)
            used.add((folder, name))
            write_image(folder / name, to_uint8_image(copy), save_format)
            rows_csv.append((f"{folder.name}/{name}", label, manifest.describe(i), i, 1))
            per_class[label] += 1
            written += 1
    csv_path = out / "manifest.csv"
    _write_csv(csv_path, rows_csv)
    summary = {
        "out": str(out),
        "manifest_csv": str(csv_path),
        "written": written,
        "augmented": int(sum(r[4] for r in rows_csv)),
        "originals": int(sum(1 - r[4] for r in rows_csv)),
        "per_class": per_class,
        "pipeline": pipeline.to_dict(),
        "seed": seed,
        "skipped": [{"item": s.item, "reason": s.reason} for s in skipped],
    }
    if balance:
        summary["target"] = max(manifest.class_counts().values()) if target is None else int(target)
    if preview is not None:
        if not preview_rows_data:
            raise PixelforgeError("no image could be decoded for the preview")
        from pixelforge.augment.preview import write_montage

        summary["preview"] = str(write_montage(preview, preview_rows_data))
    return summary


def _write_csv(path: Path, rows: list[tuple]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
