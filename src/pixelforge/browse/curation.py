"""The curation file: decisions about single images (relabel, exclude, checked) kept beside a dataset.

One JSON object per line, append-only, so that the history stays readable and nothing is lost when
the browser and a training run use the file at the same time::

    {"time": "2026-12-02T14:50:01Z", "key": "train/Shirt/0042.png", "field": "label", "value": "Coat",
     "previous": null, "batch": "3f2a…"}

``key`` is the image's Manifest location (unique within a dataset, unlike a row number it survives
re-reading and new files). ``field`` is one of ``label`` (value: a class name, or null for the
dataset's own label), ``excluded`` or ``checked`` (true / false). ``previous`` is the field's value
before the line, so the file reads as a history. The lines of one action share a ``batch``; undo
appends lines that set the previous values again, with ``"undo": BATCH``. The last line about a
(key, field) wins.

The dataset itself is never modified: ``apply_curation`` turns a Manifest into the curated one
(relabelled, excluded images left out), and ``read_dataset(source, curation=FILE)`` does it on read.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from pixelforge.data.manifest import Manifest, class_order
from pixelforge.errors import LayoutError, ParameterError, PixelforgeError

FIELDS = ("label", "excluded", "checked")


@dataclass
class Decision:
    """What the curation file says about one image (the latest value of each field)."""

    label: str | None = None  # the label it should have; None keeps the dataset's own
    excluded: bool = False
    checked: bool = False

    def get(self, name: str):
        return getattr(self, name)

    @property
    def empty(self) -> bool:
        return self.label is None and not self.excluded and not self.checked


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _check_value(name: str, value, where: str):
    if name not in FIELDS:
        raise ParameterError(f"{where}: unknown field {name!r}; expected one of {', '.join(FIELDS)}")
    if name == "label":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ParameterError(f"{where}: a label must be a non-empty class name or null, got {value!r}")
        return value.strip() if isinstance(value, str) else None
    if not isinstance(value, bool):
        raise ParameterError(f"{where}: {name} must be true or false, got {value!r}")
    return value


def read_records(path) -> list[dict]:
    """Every line of a curation file, checked (a missing file has none)."""
    path = Path(path)
    if path.is_dir():
        raise PixelforgeError(f"{path}: is a folder; --curation names a file (e.g. curation.jsonl)")
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {n}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith("\n"):
                    break  # a last line cut off by a crash: the lines before it stand
                raise LayoutError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("key"), str):
                raise LayoutError(f"{where}: expected an object with a string \"key\"")
            record["value"] = _check_value(record.get("field"), record.get("value"), where)
            records.append(record)
    return records


def decisions_from(records) -> dict[str, Decision]:
    """Replay the records: image key → its latest decision (images whose decisions cancel out are dropped)."""
    out: dict[str, Decision] = {}
    for record in records:
        decision = out.setdefault(record["key"], Decision())
        setattr(decision, record["field"], record["value"])
    return {key: d for key, d in out.items() if not d.empty}


class CurationFile:
    """An append-only curation file and the decisions it holds (thread-safe: the web app writes from
    several request threads)."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.records = read_records(self.path)
        self._state: dict[str, Decision] = {}
        for record in self.records:
            setattr(self._state.setdefault(record["key"], Decision()), record["field"], record["value"])

    def decision(self, key: str) -> Decision:
        return self._state.get(key) or Decision()

    def decisions(self) -> dict[str, Decision]:
        return {key: d for key, d in self._state.items() if not d.empty}

    def set(self, changes, *, undo: str | None = None) -> str:
        """Append ``(key, field, value)`` changes as one batch (lines whose value is already set are
        skipped); returns the batch id."""
        batch = secrets.token_hex(6)
        lines = []
        with self._lock:
            for key, name, value in changes:
                value = _check_value(name, value, "decision")
                decision = self._state.setdefault(key, Decision())
                previous = decision.get(name)
                if previous == value:
                    continue
                record = {"time": _now(), "key": key, "field": name, "value": value, "previous": previous,
                          "batch": batch}
                if undo:
                    record["undo"] = undo
                setattr(decision, name, value)
                self.records.append(record)
                lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            if lines:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # append mode: a line is added, nothing before it is ever rewritten
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write("".join(lines))
                    handle.flush()
                    os.fsync(handle.fileno())
        return batch

    def undo(self) -> list[str]:
        """Undo the latest batch not undone yet (by appending its previous values); returns the keys."""
        with self._lock:
            undone = {r["undo"] for r in self.records if "undo" in r}
            batch = next((r["batch"] for r in reversed(self.records)
                          if "undo" not in r and r["batch"] not in undone), None)
            if batch is None:
                return []
            lines = [r for r in self.records if r["batch"] == batch]
        self.set([(r["key"], r["field"], r["previous"]) for r in reversed(lines)], undo=batch)
        return sorted({r["key"] for r in lines})


def _counts(counter: Counter) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counter.most_common())


def apply_curation(manifest: Manifest, curation) -> Manifest:
    """The manifest with the curation file's relabels applied and its excluded images left out; what
    was done is counted in ``notes`` (``pixelforge info`` shows them)."""
    path = Path(curation)
    if not path.is_file():
        raise PixelforgeError(f"{path}: no such curation file (pixelforge browse --curation writes one)")
    decisions = decisions_from(read_records(path))
    labels = list(manifest.labels)
    keep = [True] * len(labels)
    relabelled: Counter = Counter()
    excluded = checked = 0
    found = set()
    for i, key in enumerate(manifest.locations):
        decision = decisions.get(key)
        if decision is None:
            continue
        found.add(key)
        if decision.excluded:
            keep[i] = False
            excluded += 1
            continue
        checked += decision.checked
        if decision.label is not None and decision.label != labels[i]:
            relabelled[f"{labels[i]} → {decision.label}"] += 1
            labels[i] = decision.label
    parts = []
    if relabelled:
        parts.append(f"{sum(relabelled.values()):,} relabelled ({_counts(relabelled)})")
    if excluded:
        parts.append(f"{excluded:,} excluded")
    if checked:
        parts.append(f"{checked:,} checked as fine")
    notes = [f"curation {path.name}: " + ("; ".join(parts) if parts else "no decision changes these images")]
    missing = len(set(decisions) - found)
    if missing:
        notes.append(f"curation {path.name}: {missing:,} decision(s) name images not in this dataset")
    rows = [i for i, k in enumerate(keep) if k]
    if not rows:
        raise LayoutError(f"{manifest.source or 'data'}: the curation file {path} excludes every image")
    kept = [labels[i] for i in rows]
    part = manifest.subset(rows)
    classes = class_order(kept) if relabelled or excluded else list(manifest.classes)
    return replace(part, labels=kept, classes=classes, skipped=list(manifest.skipped),
                   notes=list(manifest.notes) + notes)


def mark_decided(findings, manifest: Manifest, curation) -> int:
    """Note on each audit finding which of its images a curation file already decided (relabelled,
    checked as fine): ``values["decided"]`` counts them and each gets a per-image note. Returns the
    number of findings touched."""
    decisions = decisions_from(read_records(curation))
    touched = 0
    for finding in findings:
        decided = 0
        for i in finding.images:
            decision = decisions.get(manifest.locations[i])
            if decision is None:
                continue
            what = ", ".join(w for w in (f"relabelled {decision.label}" if decision.label else "",
                                         "checked, fine" if decision.checked else "") if w)
            if what:
                decided += 1
                note = finding.notes.get(i)
                finding.notes[i] = f"{note}; decided: {what}" if note else f"decided: {what}"
        if decided:
            touched += 1
            finding.values = {**finding.values, "decided": decided}
            finding.message = f"{finding.message} ({decided:,} of these already decided in {Path(curation).name})"
    return touched


def default_curation_path(source) -> Path:
    """``NAME.curation.jsonl`` in the current folder, named after the dataset (never inside it: the
    dataset is not modified, and a folder reader would see one more file)."""
    text = str(source).rstrip("/\\")
    name = text.rsplit("/", 1)[-1].split("?", 1)[0] if "://" in text else Path(text).name
    for ext in (".tar.gz", ".tgz", ".zip", ".tar", ".csv", ".json", ".h5", ".hdf5", ".npz"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return Path(f"{name or 'dataset'}.curation.jsonl")
