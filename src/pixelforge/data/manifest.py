"""The Manifest: one row per image (where it is, its label, its split), the meeting point of the data layer.

Every layout reader produces a Manifest and everything downstream (decode, audit, convert, split,
train) consumes one. Class indices are assigned once, from the sorted class names (integer names sort
numerically, "2" before "10", whatever the layout), and travel with the data. A Manifest is a plain
table, so it can be sliced into shards for workers or other machines.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from pixelforge.data.locations import Storage
from pixelforge.errors import ParameterError

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
}

_INTEGER = re.compile(r"^[+-]?\d+$")


def class_order(labels) -> list[str]:
    """Sorted class names; when every name is an integer they sort numerically (2 before 10), so a
    dataset gets the same class indices from a folder tree, a CSV, JSON or arrays."""
    names = set(labels)
    if names and all(_INTEGER.match(name) for name in names):
        return sorted(names, key=int)
    return sorted(names)


@dataclass(frozen=True)
class Skip:
    """An item a reader or decoder left out, and why; skips are counted and reported, never silent."""

    item: str
    reason: str


def index_dtype(n_classes: int) -> np.dtype:
    """The smallest unsigned integer type that holds every class index."""
    if n_classes <= 256:
        return np.dtype(np.uint8)
    if n_classes <= 65536:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def one_hot(indices: np.ndarray, n_classes: int, dtype=np.float32) -> np.ndarray:
    out = np.zeros((len(indices), n_classes), dtype=dtype)
    out[np.arange(len(indices)), np.asarray(indices, dtype=np.int64)] = 1
    return out


@dataclass
class Manifest:
    """A table of images: ``locations[i]`` in ``storage``, with ``labels[i]`` and ``splits[i]``.

    ``splits[i]`` is "train", "validation", "test" or "" when the source fixed no split.
    ``metadata`` holds the table's other columns, per image: ``{column: [one string per row]}`` ("" when
    missing), e.g. the photographer or patient id that group-aware splits keep together.
    ``classes`` defaults to the sorted distinct labels; subsets keep their parent's classes so indices
    never shift. ``skipped`` lists items the reader left out and why; ``ignored`` counts files that
    were not images at all (hidden files, other extensions), ``notes`` carries reader remarks.
    """

    locations: list[str]
    labels: list[str]
    storage: Storage
    splits: list[str] | None = None
    classes: list[str] | None = None
    layout: str = ""
    source: str = ""
    skipped: list[Skip] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        self.locations = list(self.locations)
        self.labels = [str(label) for label in self.labels]
        if len(self.labels) != len(self.locations):
            raise ParameterError(f"{len(self.locations)} locations but {len(self.labels)} labels")
        if self.splits is None:
            self.splits = [""] * len(self.locations)
        else:
            self.splits = [SPLIT_ALIASES.get(str(s).lower(), str(s)) if s else "" for s in self.splits]
            if len(self.splits) != len(self.locations):
                raise ParameterError(f"{len(self.locations)} locations but {len(self.splits)} splits")
        if self.classes is None:
            self.classes = class_order(self.labels)
        else:
            self.classes = list(self.classes)
            unknown = set(self.labels) - set(self.classes)
            if unknown:
                raise ParameterError(f"labels not among the classes: {sorted(unknown)[:5]}")
        self.metadata = {str(name): [str(v) for v in values] for name, values in self.metadata.items()}
        for name, values in self.metadata.items():
            if len(values) != len(self.locations):
                raise ParameterError(f"{len(self.locations)} locations but {len(values)} values of metadata {name!r}")
        self._class_index = {name: i for i, name in enumerate(self.classes)}

    # ---- size and labels -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.locations)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def label_indices(self) -> np.ndarray:
        """Class index per row, as the smallest unsigned dtype that fits the class count."""
        idx = np.fromiter((self._class_index[label] for label in self.labels), dtype=np.int64, count=len(self))
        return idx.astype(index_dtype(self.num_classes))

    def one_hot(self) -> np.ndarray:
        return one_hot(self.label_indices(), self.num_classes)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {name: counts.get(name, 0) for name in self.classes}

    @property
    def split_names(self) -> list[str]:
        order = ["train", "validation", "test"]
        present = set(self.splits) - {""}
        return [s for s in order if s in present] + sorted(present - set(order))

    @property
    def is_split(self) -> bool:
        return bool(self.split_names)

    def counts_by_split(self) -> dict[str, dict[str, int]]:
        """``{split: {class: count}}``; rows without a split are under "all"."""
        table: dict[str, dict[str, int]] = {}
        for split, label in zip(self.splits, self.labels, strict=True):
            row = table.setdefault(split or "all", dict.fromkeys(self.classes, 0))
            row[label] += 1
        order = {name: i for i, name in enumerate(["all", *self.split_names])}
        return dict(sorted(table.items(), key=lambda item: order.get(item[0], len(order))))

    # ---- slicing ---------------------------------------------------------------------------
    def subset(self, indices) -> Manifest:
        """Rows at ``indices`` (ints or a boolean mask), keeping classes, storage and provenance."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        return Manifest(
            locations=[self.locations[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            storage=self.storage,
            splits=[self.splits[i] for i in idx],
            classes=self.classes,
            layout=self.layout,
            source=self.source,
            ignored=dict(self.ignored),
            notes=list(self.notes),
            metadata={name: [values[i] for i in idx] for name, values in self.metadata.items()},
        )

    def split(self, name: str) -> Manifest:
        """The rows of one split ("train", "validation", "test"; aliases like "val" accepted)."""
        name = SPLIT_ALIASES.get(name.lower(), name)
        return self.subset([s == name for s in self.splits])

    def shard(self, index: int, count: int) -> Manifest:
        """Contiguous shard ``index`` of ``count`` (for workers, DDP ranks or cluster jobs)."""
        if not 0 <= index < count:
            raise ParameterError(f"shard index must be in [0, {count}), got {index}")
        bounds = np.linspace(0, len(self), count + 1).astype(int)
        return self.subset(np.arange(bounds[index], bounds[index + 1]))

    def with_splits(self, splits: list[str]) -> Manifest:
        out = self.subset(np.arange(len(self)))
        out.splits = list(splits)
        out.skipped = list(self.skipped)  # the same rows: the reader's skips still hold
        return out

    # ---- reading ---------------------------------------------------------------------------
    def read(self, i: int) -> bytes | np.ndarray:
        """The raw item: encoded bytes, or an array for array-backed storages."""
        return self.storage.read(self.locations[i])

    def describe(self, i: int) -> str:
        return self.storage.describe(self.locations[i])

    def load(self, i: int, **decode_options) -> np.ndarray:
        """Decode row ``i`` to a uint8 (or uint16) HWC RGB/grayscale array."""
        from pixelforge.data.decode import decode_image

        return decode_image(self.read(i), name=self.describe(i), **decode_options)

    # ---- summary ---------------------------------------------------------------------------
    def summary(self) -> dict:
        """Plain-dict summary used by ``pixelforge info --json``."""
        return {
            "source": self.source,
            "layout": self.layout,
            "images": len(self),
            "classes": list(self.classes),
            "class_counts": self.class_counts(),
            "splits": {
                split: sum(counts.values()) for split, counts in self.counts_by_split().items()
            },
            "counts_by_split": self.counts_by_split(),
            "skipped": [{"item": s.item, "reason": s.reason} for s in self.skipped],
            "ignored": dict(self.ignored),
            "notes": list(self.notes),
            "metadata": self.metadata_summary(),
        }

    def metadata_summary(self, examples: int = 3) -> dict[str, dict]:
        """Per metadata column: distinct values, missing ("") count and the first few distinct values."""
        out = {}
        for name, values in self.metadata.items():
            distinct = dict.fromkeys(v for v in values if v)  # first-seen order
            out[name] = {"distinct": len(distinct), "missing": values.count(""),
                         "examples": list(distinct)[:examples]}
        return out

    def __repr__(self) -> str:
        return (
            f"Manifest({len(self)} images, {self.num_classes} classes, layout={self.layout!r}, "
            f"splits={self.split_names or 'none'}, storage={self.storage!r})"
        )
