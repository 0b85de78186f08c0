"""What the browser shows beside the images: an audit's findings (from its report.json) and a trained
model's predictions (computed once in the background, cached beside the run), both as Manifest rows."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelforge.data.manifest import Manifest
from pixelforge.errors import PixelforgeError


# ---- the audit -----------------------------------------------------------------------------------
@dataclass
class FindingRows:
    """One audit finding, its images as Manifest rows."""

    id: int
    check: str
    code: str
    severity: str
    title: str
    message: str
    recommendation: str
    rows: np.ndarray
    groups: list[np.ndarray] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.title} ({self.check}.{self.code}, {len(self.rows):,})"


@dataclass
class AuditRows:
    source: str
    images: int
    severity_counts: dict
    findings: list[FindingRows]
    unmatched: int  # images the report names that this dataset does not have (another dataset's report?)
    by_row: dict[int, list[int]] = field(default_factory=dict)  # row → ids of the findings naming it
    groups_of: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # row → (finding, group)


def read_audit(path, manifest: Manifest) -> AuditRows:
    """An audit's report.json (or the folder holding it), its images matched to ``manifest``'s rows by
    location (groups by the path the report shows)."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PixelforgeError(f"{path}: no audit report here (write one with: pixelforge audit DATA --out DIR)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PixelforgeError(f"{path}: not an audit report.json ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("findings"), list):
        raise PixelforgeError(f"{path}: not an audit report.json (no findings list)")
    rows_of = {loc: i for i, loc in enumerate(manifest.locations)}
    described = None
    unmatched = 0
    findings = []
    for n, f in enumerate(report["findings"]):
        rows, notes = [], {}
        for entry in f.get("images") or []:
            row = rows_of.get(entry.get("location"))
            if row is None:
                unmatched += 1
                continue
            rows.append(row)
            if entry.get("note"):
                notes[row] = str(entry["note"])
        groups = []
        for group in f.get("groups") or []:
            if described is None:  # groups name images by their shown path; built once, when needed
                described = {manifest.describe(i): i for i in range(len(manifest))}
            found = [described[p] for p in group if p in described]
            if len(found) > 1:
                groups.append(np.asarray(found, np.int64))
        findings.append(FindingRows(
            id=n, check=str(f.get("check", "")), code=str(f.get("code", "")), severity=str(f.get("severity", "info")),
            title=str(f.get("title", "")), message=str(f.get("message", "")),
            recommendation=str(f.get("recommendation", "")), rows=np.unique(np.asarray(rows, np.int64)),
            groups=groups, notes=notes, classes=[str(c) for c in f.get("classes") or []]))
    audit = AuditRows(source=str(report.get("source", "")), images=int(report.get("images") or 0),
                      severity_counts=dict(report.get("severity_counts") or {}), findings=findings,
                      unmatched=unmatched)
    for f in findings:
        for row in f.rows.tolist():
            audit.by_row.setdefault(row, []).append(f.id)
        for g, group in enumerate(f.groups):
            for row in group.tolist():
                audit.groups_of.setdefault(row, []).append((f.id, g))
    return audit


# ---- a run's predictions -------------------------------------------------------------------------
CHUNK = 4096  # rows predicted per step: progress to show, and memory stays flat


class Predictions:
    """A saved model's class probabilities for every row, computed in a background thread on first
    use and cached in ``RUN/browse/`` (keyed by the model's weights and the dataset's locations)."""

    def __init__(self, run, manifest: Manifest):
        from pixelforge.train import load_model

        self.model = load_model(run)
        self.manifest = manifest
        self.classes = list(self.model.classes)
        self.probs: np.ndarray | None = None  # rows x classes, NaN where an image could not be decoded
        self.done = 0
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self.cache = Path(self.model.path) / "browse" / f"predictions-{self._key()}.npz"

    def _key(self) -> str:
        digest = hashlib.sha1()
        weights = Path(self.model.path) / "model.safetensors"
        stat = weights.stat() if weights.exists() else None
        digest.update(f"{weights}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}".encode())
        digest.update("\n".join(self.manifest.locations).encode("utf-8", "surrogateescape"))
        return digest.hexdigest()[:16]

    @property
    def ready(self) -> bool:
        return self.probs is not None

    @property
    def progress(self) -> float:
        return 1.0 if self.ready else self.done / max(1, len(self.manifest))

    def start(self) -> None:
        if self.cache.exists():
            try:
                with np.load(self.cache) as data:
                    probs = data["probs"].astype(np.float32)
                if probs.shape == (len(self.manifest), len(self.classes)):
                    self.probs = probs
                    return
            except (OSError, ValueError, KeyError):
                pass  # an unreadable cache is computed again
        self._thread = threading.Thread(target=self._compute, name="pixelforge-predictions", daemon=True)
        self._thread.start()

    def _compute(self) -> None:
        from pixelforge.train.evaluation import predict_manifest

        n = len(self.manifest)
        probs = np.full((n, len(self.classes)), np.nan, np.float32)
        try:
            for start in range(0, n, CHUNK):
                part = self.manifest.subset(np.arange(start, min(n, start + CHUNK)))
                # labels the model does not know are fine here: we only want its probabilities
                part = _with_known_labels(part, self.classes)
                try:
                    p, _truth, rows = predict_manifest(self.model, part, skipped=[])
                    probs[start + rows] = p
                except PixelforgeError:
                    pass  # a chunk with no decodable image stays NaN
                self.done = min(n, start + CHUNK)
        except Exception as exc:  # shown on the page; the browser keeps working without predictions
            self.error = f"{type(exc).__name__}: {exc}"
            return
        self.probs = probs
        self._save(probs)

    def _save(self, probs: np.ndarray) -> None:
        from pixelforge.atomic import atomic_path

        try:
            with atomic_path(self.cache) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, probs=probs.astype(np.float16))
        except OSError:
            pass  # a read-only run folder: predictions are computed again next time

    def predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class index in the model's classes, -1 where none; its probability, NaN where none)."""
        probs = self.probs
        ok = ~np.isnan(probs[:, 0])
        pred = np.where(ok, np.nan_to_num(probs, nan=-1).argmax(1), -1)
        conf = np.where(ok, np.nan_to_num(probs, nan=0).max(1), np.nan)
        return pred.astype(np.int64), conf.astype(np.float32)


def _with_known_labels(part: Manifest, classes: list[str]) -> Manifest:
    from dataclasses import replace

    known = set(classes)
    if all(label in known for label in part.labels):
        return replace(part, classes=classes) if part.classes != classes else part
    labels = [label if label in known else classes[0] for label in part.labels]
    return replace(part, labels=labels, classes=classes)
