"""What every check receives: the Manifest, the shared scan, options, and a place to leave extras."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pixelforge.audit.scan import Scan
from pixelforge.data.manifest import Manifest
from pixelforge.errors import ParameterError


@dataclass
class AuditContext:
    manifest: Manifest
    scan: Scan
    options: dict = field(default_factory=dict)
    seed: int = 0
    progress: object = None  # a rich Progress, or None
    extras: dict = field(default_factory=dict)  # per-check data for the reports (tables, images)
    group_column: str | None = None  # a metadata column whose groups (e.g. senders) must not span splits
    groups: np.ndarray | None = None  # its group id per row (see pixelforge.data.split.group_ids)
    _backbone: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        self.labels = self.manifest.label_indices().astype(np.int64)
        self.classes = list(self.manifest.classes)
        self.splits = np.asarray(self.manifest.splits, dtype=object)

    def option(self, key: str, default):
        """An option (``--option key=value``) cast to the default's type."""
        value = self.options.get(key, default)
        if default is None or value is None:
            return value
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            raise ParameterError(f"option {key}={value!r}: expected a {type(default).__name__}") from None

    def backbone_features(self) -> np.ndarray | None:
        """Features of the pre-trained backbone named by the ``backbone`` option (a pixelforge model
        folder, or a zoo backbone with ``backbone_weights``), one row per Manifest row (zeros where the
        scan could not read the image), computed once for every check; None without the option."""
        backbone = self.option("backbone", None)
        if not backbone:
            return None
        if self._backbone is None:
            from pixelforge.train.features import iterate_features, load_extractor

            extractor = load_extractor(str(backbone), self.option("backbone_weights", None))
            rows = np.flatnonzero(self.scan.ok)
            out = np.zeros((len(self.manifest), extractor.feature_dim), np.float32)
            task = self.task(f"backbone features ({extractor.name})", len(rows))
            for feats, at in iterate_features(self.manifest.subset(rows), extractor, skipped=[]):
                out[rows[at]] = feats
                self.advance(task, len(at))
            self._backbone = out
        return self._backbone

    def task(self, description: str, total: float):
        return self.progress.add_task(description, total=total) if self.progress else None

    def advance(self, task, amount: float = 1) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, advance=amount)
