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
    """A saved model's class probabilities for every row, computed in a worker process on first use
    and cached in ``RUN/browse/`` (keyed by the model's weights and the dataset's locations).
    Only model.json is read up front, so the server starts without waiting for torch and the weights."""

    def __init__(self, run, manifest: Manifest):
        path = Path(run)
        config = path / "model.json" if path.is_dir() else path
        try:
            doc = json.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PixelforgeError(f"{config}: no model here (--run takes a run folder written by pixelforge train)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PixelforgeError(f"{config}: not a pixelforge model.json ({exc})") from None
        classes = doc.get("classes") if isinstance(doc, dict) else None
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
            raise PixelforgeError(f"{config}: not a pixelforge model.json (no list of classes)")
        self.run = config.parent
        self.classes = list(classes)
        self.manifest = manifest
        self.probs: np.ndarray | None = None  # rows x classes, NaN where an image could not be decoded
        self.done = 0
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        digest = hashlib.sha1(json.dumps(doc.get("weights"), sort_keys=True).encode())
        digest.update("\n".join(manifest.locations).encode("utf-8", "surrogateescape"))
        self.cache = self.run / "browse" / f"predictions-{digest.hexdigest()[:16]}.npz"

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

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the predictions are computed (or failed, or ``timeout`` passed); whether they are ready."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.ready

    def stop(self) -> None:
        """Stop predicting (the server is closing): pending chunks are dropped, the worker ends."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _compute(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        n = len(self.manifest)
        probs = np.full((n, len(self.classes)), np.nan, np.float32)
        # one worker process: torch and the decoding never take the server's GIL or memory
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_leave_ctrl_c_to_the_server)
        try:
            jobs = [self._pool.submit(_predict_rows, str(self.run), self.manifest.subset(np.arange(i, min(n, i + CHUNK))))
                    for i in range(0, n, CHUNK)]
            for start, job in zip(range(0, n, CHUNK), jobs, strict=True):
                p, rows = job.result()
                if p is not None:
                    probs[start + rows] = p
                self.done = min(n, start + CHUNK)
        except Exception as exc:  # shown on the page; the browser keeps working without predictions
            self.error = f"{type(exc).__name__}: {exc}"
            return
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
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


_MODELS: dict = {}  # in the worker process: run folder → its loaded model


def _leave_ctrl_c_to_the_server() -> None:
    """Ctrl-C reaches the whole process group: the worker ignores it and the server stops it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _predict_rows(run: str, part: Manifest):
    """(probabilities, rows of ``part`` decoded), or (None, None) when none decodes; runs in the worker."""
    from pixelforge.train import load_model
    from pixelforge.train.evaluation import predict_manifest

    if run not in _MODELS:
        import torch

        torch.set_num_threads(1)  # the other core serves pages
        _MODELS[run] = load_model(run)
    model = _MODELS[run]
    try:
        # labels the model does not know are fine here: only its probabilities are wanted
        p, _truth, rows = predict_manifest(model, _with_known_labels(part, model.classes), skipped=[])
    except PixelforgeError:
        return None, None
    return p, rows


def _with_known_labels(part: Manifest, classes: list[str]) -> Manifest:
    from dataclasses import replace

    known = set(classes)
    if all(label in known for label in part.labels):
        return replace(part, classes=classes) if part.classes != classes else part
    labels = [label if label in known else classes[0] for label in part.labels]
    return replace(part, labels=labels, classes=classes)
