"""Class folders: flat (``root/<class>/*.png``), pre-split (``root/train/<class>/…``) and hierarchical
(``root/clothes/dress/…``, label = leaf folder, top folder or the full path).

Works on any tree storage (a folder on disk or an archive), so a zip of a folder reads the same.
Hidden files and non-image files are counted in ``Manifest.ignored``, never loaded; what the storage
could not list as a regular file (a named pipe, a broken link, an unreadable folder) is a named skip.
"""

from __future__ import annotations

from collections import Counter

from pixelforge.data.locations import Storage
from pixelforge.data.manifest import SPLIT_ALIASES, Manifest, Skip
from pixelforge.errors import LayoutError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
LABEL_MODES = ("leaf", "top", "path")


def is_image_name(name: str) -> bool:
    dot = name.rfind(".")
    return dot >= 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def _unwrap(paths: list[list[str]]) -> int:
    """How many single wrapper folders (e.g. ``fashion-mnist/`` inside an archive) to strip."""
    depth = 0
    while paths:
        tops = {p[depth] for p in paths if len(p) > depth + 1}
        loose = any(len(p) == depth + 1 for p in paths)
        if len(tops) != 1 or loose or next(iter(tops)).lower() in SPLIT_ALIASES:
            return depth
        # a single class folder holding images directly is a class, not a wrapper
        if all(len(p) == depth + 2 for p in paths):
            return depth
        depth += 1
    return depth


def read_directory_layout(
    storage: Storage,
    *,
    label_mode: str = "leaf",
    prefix: str = "",
    source: str = "",
) -> Manifest:
    """Read class folders under ``prefix`` of a tree storage into a Manifest."""
    if label_mode not in LABEL_MODES:
        raise LayoutError(f"label mode must be one of {LABEL_MODES}, got {label_mode!r}")
    prefix = prefix.strip("/")
    ignored: Counter = Counter()
    notes: list[str] = []
    candidates: list[list[str]] = []
    for rel in storage.list_files():
        if prefix:
            if not rel.startswith(prefix + "/"):
                continue
            rel = rel[len(prefix) + 1 :]
        parts = rel.split("/")
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            ignored["hidden"] += 1
        elif not is_image_name(parts[-1]):
            ignored["non_image"] += 1
        else:
            candidates.append(parts)

    strip = _unwrap(candidates)
    base = "/".join(([prefix] if prefix else []) + (candidates[0][:strip] if strip else []))
    locations, labels, splits = [], [], []
    for parts in candidates:
        full = "/".join(([prefix] if prefix else []) + parts)
        parts = parts[strip:]
        split = ""
        if len(parts) > 1 and parts[0].lower() in SPLIT_ALIASES:
            split, parts = SPLIT_ALIASES[parts[0].lower()], parts[1:]
        folders = parts[:-1]
        if not folders:
            ignored["unlabelled"] += 1
            continue
        label = {"leaf": folders[-1], "top": folders[0], "path": "/".join(folders)}[label_mode]
        locations.append(full)
        labels.append(label)
        splits.append(split)

    # pipes, sockets, devices, broken links, unreadable folders: named skips, never opened
    unlisted = getattr(storage, "unlisted", {})
    skipped = []
    for rel, reason in unlisted.items():
        if prefix and not rel.startswith(prefix + "/"):
            continue
        if any(part.startswith(".") for part in rel.split("/")):
            ignored["hidden"] += 1
        else:
            skipped.append(Skip(storage.describe(rel), reason))
    if ignored["unlabelled"]:
        notes.append(f"{ignored['unlabelled']} image(s) directly in the root folder have no class folder and were not loaded")
    if any(splits) and not all(splits):
        loose = sum(1 for s in splits if not s)
        notes.append(f"{loose} image(s) sit outside the train/validation/test folders; they have no split")
    empty = getattr(storage, "empty_folders", lambda: [])()
    for folder in empty:
        notes.append(f"empty folder {folder!r} has no images")
    if not locations:
        raise LayoutError(
            f"{source or storage!r}: no images in class folders (expected <root>/<class>/<image> "
            f"or <root>/train/<class>/<image>; found {sum(ignored.values())} other file(s))"
        )
    manifest = Manifest(
        locations=locations, labels=labels, storage=storage, splits=splits,
        layout="directory", source=source or base, ignored={k: v for k, v in ignored.items() if v}, notes=notes,
        skipped=skipped,
    )
    # Linux folders "Cat" and "cat" are two classes; say so, since on macOS or Windows they would be one
    by_case: dict[str, list[str]] = {}
    for name in manifest.classes:
        by_case.setdefault(name.casefold(), []).append(name)
    for names in by_case.values():
        if len(names) > 1:
            manifest.notes.append(f"classes {', '.join(map(repr, names))} differ only in letter case; they are "
                                  "kept apart (relabel with label_map= to merge them)")
    if manifest.num_classes == 1:
        manifest.notes.append(f"only one class ({manifest.classes[0]!r}): a classifier needs at least two")
    return manifest
