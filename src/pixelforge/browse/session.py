"""A browsing session: the dataset, its curation file, the audit and the run, and the grid's filters.

Filters work on numpy arrays over every row, so a page of a 70,000-image dataset is picked in
milliseconds; labels are the curated ones (the dataset's own, with this session's relabels applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelforge.browse.curation import CurationFile, Decision
from pixelforge.browse.evidence import AuditRows, Predictions, read_audit
from pixelforge.data.manifest import Manifest
from pixelforge.errors import ParameterError

PAGE_SIZES = (60, 120, 240, 480)
SORTS = {"row": "dataset order", "confidence": "most confident first", "-confidence": "least confident first"}
DECIDED = ("relabelled", "excluded", "checked", "undecided", "decided")
ACTIONS = ("relabel", "exclude", "include", "check", "uncheck", "restore", "keep")


@dataclass
class Filters:
    """The grid's query: which rows, in which order, which page."""

    label: str | None = None
    split: str | None = None
    finding: int | None = None
    group: tuple[int, int] | None = None
    decided: str | None = None
    outcome: str | None = None  # right / wrong (with a run)
    predicted: str | None = None
    min_conf: float | None = None
    max_conf: float | None = None
    q: str | None = None
    sort: str = "row"
    page: int = 1
    per: int = 120

    def query(self, **changes) -> str:
        """This query as a URL query string, with ``changes`` (None drops a key); page 1 unless given."""
        from urllib.parse import urlencode

        values = {**self.__dict__, "page": 1, **changes}
        if values.get("group") is not None and isinstance(values["group"], tuple):
            values["group"] = f"{values['group'][0]}-{values['group'][1]}"
        defaults = Filters().__dict__
        return urlencode({k: v for k, v in values.items() if v is not None and v != "" and v != defaults.get(k)})


class Session:
    def __init__(self, manifest: Manifest, curation, *, audit=None, run=None, source: str = ""):
        if len(manifest) == 0:
            raise ParameterError(f"{source or 'data'}: no images to browse")
        self.manifest = manifest
        self.source = source or manifest.source
        self.curation = CurationFile(curation)
        self.rows_of: dict[str, list[int]] = {}
        for i, key in enumerate(manifest.locations):
            self.rows_of.setdefault(key, []).append(i)
        self.audit: AuditRows | None = read_audit(audit, manifest) if audit else None
        self.predictions: Predictions | None = Predictions(run, manifest) if run else None
        # every class a relabel may choose: the dataset's, and the model's when it knows more
        extra = [c for c in (self.predictions.classes if self.predictions else []) if c not in manifest.classes]
        self.classes = list(manifest.classes) + extra
        self._class_index = {name: i for i, name in enumerate(self.classes)}
        self.base_labels = np.fromiter((self._class_index[x] for x in manifest.labels), np.int64, len(manifest))
        self.split_names = manifest.split_names
        splits = {name: i for i, name in enumerate(["", *self.split_names])}
        self.splits = np.fromiter((splits[s] for s in manifest.splits), np.int64, len(manifest))
        self.curation_path = Path(curation)

    def start(self) -> None:
        if self.predictions:
            self.predictions.start()

    def stop(self) -> None:
        if self.predictions:
            self.predictions.stop()

    # ---- the curated state -----------------------------------------------------------------------
    def labels(self) -> np.ndarray:
        """Each row's class index in ``self.classes``, relabels applied."""
        labels = self.base_labels.copy()
        for key, d in self.curation.decisions().items():
            if d.label is not None and d.label in self._class_index:
                labels[self.rows_of.get(key, [])] = self._class_index[d.label]
        return labels

    def decision_rows(self, what: str) -> np.ndarray:
        mask = np.zeros(len(self.manifest), bool)
        for key, d in self.curation.decisions().items():
            rows = self.rows_of.get(key)
            if not rows:
                continue
            if (what == "relabelled" and d.label is not None and d.label != self.manifest.labels[rows[0]]) \
                    or (what == "excluded" and d.excluded) or (what == "checked" and d.checked) \
                    or what in ("decided", "undecided"):
                mask[rows] = True
        return ~mask if what == "undecided" else mask

    def state(self, row: int) -> dict:
        """What the page shows about a row's decision."""
        key = self.manifest.locations[row]
        d: Decision = self.curation.decision(key)
        original = self.manifest.labels[row]
        label = d.label if d.label is not None else original
        return {"key": key, "row": row, "label": label, "original": original, "relabelled": label != original,
                "excluded": d.excluded, "checked": d.checked}

    # ---- filtering -------------------------------------------------------------------------------
    def parse(self, params) -> Filters:
        """Filters from a request's query parameters; a value that names nothing is a ParameterError."""
        f = Filters()

        def number(name, kind, low=None, high=None):
            raw = params.get(name)
            if raw in (None, ""):
                return None
            try:
                value = kind(raw)
            except ValueError:
                raise ParameterError(f"{name} must be a number, got {raw!r}") from None
            if (low is not None and value < low) or (high is not None and value > high):
                raise ParameterError(f"{name} must be between {low} and {high}, got {raw!r}")
            return value

        f.label = params.get("label") or None
        if f.label is not None and f.label not in self._class_index:
            raise ParameterError(f"no class {f.label!r}")
        f.split = params.get("split") or None
        if f.split is not None and f.split not in (*self.split_names, "none"):
            raise ParameterError(f"no split {f.split!r}")
        if self.audit is None and (params.get("finding") or params.get("group")):
            raise ParameterError("no audit to filter by: start browse with --audit REPORT_DIR")
        f.finding = number("finding", int, 0, len(self.audit.findings) - 1 if self.audit else -1)
        if params.get("group"):
            try:
                fid, g = (int(x) for x in params["group"].split("-", 1))
                self.audit.findings[fid].groups[g]
            except (ValueError, IndexError, AttributeError):
                raise ParameterError(f"no duplicate group {params['group']!r}") from None
            f.group = (fid, g)
        f.decided = params.get("decided") or None
        if f.decided is not None and f.decided not in DECIDED:
            raise ParameterError(f"decided must be one of {', '.join(DECIDED)}")
        f.outcome = params.get("outcome") or None
        if f.outcome is not None and f.outcome not in ("right", "wrong"):
            raise ParameterError("outcome must be right or wrong")
        f.predicted = params.get("predicted") or None
        if f.predicted is not None and (not self.predictions or f.predicted not in self.predictions.classes):
            raise ParameterError(f"no predicted class {f.predicted!r}")
        f.min_conf = number("min_conf", float, 0.0, 1.0)
        f.max_conf = number("max_conf", float, 0.0, 1.0)
        f.q = (params.get("q") or "").strip() or None
        f.sort = params.get("sort") or "row"
        if f.sort not in SORTS:
            raise ParameterError(f"sort must be one of {', '.join(SORTS)}")
        f.page = number("page", int, 1) or 1
        f.per = number("per", int) or 120
        if f.per not in PAGE_SIZES:
            raise ParameterError(f"per must be one of {', '.join(map(str, PAGE_SIZES))}")
        return f

    def uses_predictions(self, f: Filters) -> bool:
        return bool(f.outcome or f.predicted or f.min_conf is not None or f.max_conf is not None
                    or f.sort != "row")

    def select(self, f: Filters) -> np.ndarray:
        """The rows a query shows, in order (all pages)."""
        n = len(self.manifest)
        mask = np.ones(n, bool)
        if f.label is not None:
            mask &= self.labels() == self._class_index[f.label]
        if f.split is not None:
            mask &= self.splits == (0 if f.split == "none" else 1 + self.split_names.index(f.split))
        if f.finding is not None:
            part = np.zeros(n, bool)
            part[self.audit.findings[f.finding].rows] = True
            mask &= part
        if f.group is not None:
            part = np.zeros(n, bool)
            part[self.audit.findings[f.group[0]].groups[f.group[1]]] = True
            mask &= part
        if f.decided is not None:
            mask &= self.decision_rows(f.decided)
        if f.q:
            needle = f.q.lower()
            mask &= np.fromiter((needle in loc.lower() for loc in self.manifest.locations), bool, n)
        conf = None
        p = self.predictions
        if self.uses_predictions(f) and p is not None and p.ready:
            pred, conf = p.predicted()
            mask &= pred >= 0
            if f.outcome is not None:
                right = self._model_index(self.labels()) == pred
                mask &= right if f.outcome == "right" else ~right
            if f.predicted is not None:
                mask &= pred == p.classes.index(f.predicted)
            if f.min_conf is not None:
                mask &= conf >= f.min_conf
            if f.max_conf is not None:
                mask &= conf <= f.max_conf
        rows = np.flatnonzero(mask)
        if conf is not None and f.sort != "row":
            order = np.argsort(-conf[rows] if f.sort == "confidence" else conf[rows], kind="stable")
            rows = rows[order]
        return rows

    def _model_index(self, labels: np.ndarray) -> np.ndarray:
        """Session class indices → the model's class indices (-1 for a class the model lacks)."""
        lookup = np.array([self.predictions.classes.index(c) if c in self.predictions.classes else -1
                           for c in self.classes], np.int64)
        return lookup[labels]

    def top(self, row: int, k: int = 5) -> list[tuple[str, float]]:
        p = self.predictions
        if p is None or not p.ready or np.isnan(p.probs[row, 0]):
            return []
        probs = p.probs[row]
        return [(p.classes[i], float(probs[i])) for i in np.argsort(-probs)[:k]]

    def confusion(self, split: str | None) -> dict:
        """Confusion matrix of the curated labels against the model's predictions (excluded images out)."""
        p = self.predictions
        pred, _ = p.predicted()
        truth = self.labels()
        mask = (pred >= 0) & ~self.decision_rows("excluded")
        if split is not None:
            mask &= self.splits == (0 if split == "none" else 1 + self.split_names.index(split))
        matrix = np.zeros((len(self.classes), len(p.classes)), np.int64)
        np.add.at(matrix, (truth[mask], pred[mask]), 1)
        keep = matrix.sum(1) > 0  # rows of classes with no image (a model's extra class) are left out
        return {"rows": [c for c, k in zip(self.classes, keep, strict=True) if k], "columns": list(p.classes),
                "matrix": matrix[keep].tolist(), "images": int(mask.sum()),
                "accuracy": float((self._model_index(truth) == pred)[mask].mean()) if mask.any() else 0.0}

    # ---- decisions -------------------------------------------------------------------------------
    def decide(self, keys: list[str], action: str, value=None) -> tuple[str, list[str]]:
        """Write one action for ``keys`` to the curation file; returns (message, keys changed)."""
        unknown = [k for k in keys if k not in self.rows_of]
        if unknown:
            raise ParameterError(f"no image {unknown[0]!r} in this dataset")
        if action not in ACTIONS:
            raise ParameterError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        if not keys:
            raise ParameterError("no image selected")
        changes = []
        if action == "relabel":
            if value not in self._class_index:
                raise ParameterError(f"no class {value!r}; classes are {', '.join(self.classes)}")
            for key in keys:
                original = self.manifest.labels[self.rows_of[key][0]]
                changes.append((key, "label", None if value == original else value))
            message = f"relabelled {len(keys)} image(s) as {value}"
        elif action in ("exclude", "include"):
            changes = [(key, "excluded", action == "exclude") for key in keys]
            message = f"{action}d {len(keys)} image(s)"
        elif action in ("check", "uncheck"):
            changes = [(key, "checked", action == "check") for key in keys]
            message = f"marked {len(keys)} image(s) as {'checked, fine' if action == 'check' else 'not checked'}"
        elif action == "restore":
            changes = [(key, name, value) for key in keys for name, value in
                       (("label", None), ("excluded", False), ("checked", False))]
            message = f"cleared the decisions on {len(keys)} image(s)"
        else:  # keep: this one of every duplicate group it belongs to; the others are excluded
            if len(keys) != 1:
                raise ParameterError("keep names one image: the one to keep of its duplicate group")
            key = keys[0]
            row = self.rows_of[key][0]
            groups = (self.audit.groups_of.get(row, []) if self.audit else [])
            others = {self.manifest.locations[r] for fid, g in groups
                      for r in self.audit.findings[fid].groups[g].tolist()} - {key}
            if not others:
                raise ParameterError(f"{key} is in no duplicate group")
            changes = [(key, "excluded", False), (key, "checked", True)]
            changes += [(other, "excluded", True) for other in sorted(others)]
            message = f"kept {key}, excluded {len(others)} duplicate(s)"
        self.curation.set(changes)
        return message, sorted({c[0] for c in changes})

    def undo(self) -> tuple[str, list[str]]:
        keys = self.curation.undo()
        return (f"undid the last action ({len(keys)} image(s))" if keys else "nothing to undo"), keys

    def counts(self) -> dict:
        return {what: int(self.decision_rows(what).sum()) for what in ("relabelled", "excluded", "checked")}

