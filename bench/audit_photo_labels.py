"""Label errors on real photos: the audit's label check with a backbone's features vs without, on
clothing5 with labels flipped at several rates and seeds.

    flock /tmp/pixelforge-heavy.lock python -m bench.audit_photo_labels --backbone runs/cifar-resnet18 \
        [--rates 0.02 0.04 0.06] [--seeds 0 1 2]

Each run flips ``rate`` of clothing5's 1,116 labels (uniformly to another class, seeded) and audits the
labels (``run_audit(checks="labels")``) twice: the default label model (a dense net on image features)
and ``options={"backbone": …}`` (logistic regression on the backbone's features, 5-fold). Recall and
precision of the "likely mislabelled" list against the flipped rows; the clean run counts false alarms.
Writes bench/results/audit_photo_labels.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from pixelforge.audit.runner import run_audit
from pixelforge.data.manifest import Manifest
from pixelforge.data.read import read_dataset

ROOT = Path(__file__).resolve().parents[1]
CLOTHING = ROOT.parent / "shared" / "datasets" / "clothing5"
RESULTS = ROOT / "bench" / "results"


def flipped(manifest: Manifest, rate: float, seed: int) -> tuple[Manifest, set[int]]:
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(manifest), int(round(rate * len(manifest))), replace=False)
    labels = list(manifest.labels)
    for r in rows:
        labels[r] = rng.choice([c for c in manifest.classes if c != labels[r]])
    out = Manifest(manifest.locations, labels, manifest.storage, manifest.splits, classes=manifest.classes,
                   layout=manifest.layout, source=manifest.source)
    return out, {int(r) for r in rows}


def audit_labels(manifest: Manifest, options: dict) -> dict:
    started = time.perf_counter()
    report = run_audit(manifest, checks="labels", options=options)
    flagged = set()
    summary = {}
    for finding in report.findings:
        if finding.code == "likely_mislabelled":
            flagged = set(finding.images)
        if finding.code in ("error_rate", "inconclusive"):
            summary = {"verdict": finding.code, "oof_accuracy": finding.values.get("oof_accuracy")}
    return {"flagged": flagged, "seconds": time.perf_counter() - started, **summary}


def mean_or_dash(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.2f}" if values else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.02, 0.04, 0.06])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    manifest = read_dataset(CLOTHING)
    models = {"default (dense net on image features)": {}, f"backbone {args.backbone}": {"backbone": args.backbone}}
    rows = []
    for rate in [0.0, *args.rates]:
        for seed in args.seeds if rate else args.seeds[:1]:
            data, truth = flipped(manifest, rate, seed) if rate else (manifest, set())
            for name, options in models.items():
                result = audit_labels(data, options)
                hits = len(result["flagged"] & truth)
                row = {"model": name, "rate": rate, "seed": seed, "flipped": len(truth),
                       "flagged": len(result["flagged"]), "recall": hits / len(truth) if truth else None,
                       "precision": hits / len(result["flagged"]) if result["flagged"] else None,
                       "verdict": result.get("verdict"), "oof_accuracy": result.get("oof_accuracy"),
                       "seconds": round(result["seconds"], 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = ["# Label errors on clothing5 photos: the audit with and without a backbone's features", "",
             f"`python -m bench.audit_photo_labels --backbone {args.backbone}`; labels flipped uniformly to another "
             f"class at each rate, seeds {' '.join(map(str, args.seeds))}; mean over seeds (precision over runs "
             "that flagged anything).", "",
             "| label model | flipped | out-of-fold accuracy | verdict | flagged | recall | precision | seconds |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for name in models:
        for rate in [0.0, *args.rates]:
            items = [r for r in rows if r["model"] == name and r["rate"] == rate]
            recall = mean_or_dash([r["recall"] for r in items])
            precision = mean_or_dash([r["precision"] for r in items])
            accuracy = statistics.mean(r["oof_accuracy"] or 0 for r in items)
            verdicts = ", ".join(sorted({str(r["verdict"]) for r in items}))
            flagged = statistics.mean(r["flagged"] for r in items)
            seconds = statistics.mean(r["seconds"] for r in items)
            lines.append(f"| {name} | {rate:.0%} | {accuracy:.1%} | {verdicts} | {flagged:.1f} | {recall} | "
                         f"{precision} | {seconds:.0f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audit_photo_labels.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    (RESULTS / "audit_photo_labels.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
