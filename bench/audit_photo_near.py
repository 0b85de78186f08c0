"""Near duplicates on real photos: the audit's duplicate check with and without a backbone's features as
extra candidates, on clothing5 with edited copies injected.

    flock /tmp/pixelforge-heavy.lock python -m bench.audit_photo_near --backbone runs/cifar-resnet18 \
        [--edits crop resize jpeg shift_brightness] [--copies 20] [--seeds 0 1]

Per edit and seed: clothing5's 1,116 photos (longest side 256, as the audit harness does) plus
``copies`` edited copies of random photos (``bench.audit_inject.near_edit``), written to a temporary
folder; ``run_audit(checks="duplicates")`` with the default candidates and with ``backbone=``.
Recall: injected pairs whose two images land in one reported group; precision: the share of
reported groups holding an injected pair. Writes bench/results/audit_photo_near.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.audit_inject import near_edit
from pixelforge.audit.runner import run_audit
from pixelforge.data.read import read_dataset

ROOT = Path(__file__).resolve().parents[1]
CLOTHING = ROOT.parent / "shared" / "datasets" / "clothing5"
RESULTS = ROOT / "bench" / "results"


def write_set(folder: Path, edit: str, copies: int, seed: int) -> list[tuple[str, str]]:
    """clothing5 at 256 px plus edited copies; the (original, copy) location pairs."""
    manifest = read_dataset(CLOTHING)
    rng = np.random.default_rng(seed)
    images = {}
    for i in range(len(manifest)):
        img = Image.fromarray(manifest.load(i))
        img.thumbnail((256, 256))
        path = folder / manifest.splits[i] / manifest.labels[i] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path)
        images[i] = (np.asarray(img), path)
    pairs = []
    for n, i in enumerate(rng.choice(len(manifest), copies, replace=False)):
        array, path = images[int(i)]
        edited, _ = near_edit(array, edit, rng)
        copy = path.with_name(f"copy{n:03d}.png")
        Image.fromarray(edited).save(copy)
        pairs.append((str(path.relative_to(folder)), str(copy.relative_to(folder))))
    return pairs


def score(report, manifest, truth) -> dict:
    """Recall of injected pairs (both images in one reported group) and the share of reported groups
    that hold an injected pair (clothing5 itself may hold a few real near duplicates)."""
    near = [f for f in report.findings if f.code == "near"]
    groups = [{manifest.locations[r] for r in g} for g in (near[0].groups if near else [])]
    found = sum(1 for a, b in truth if any(a in g and b in g for g in groups))
    true_groups = sum(1 for g in groups if any(a in g and b in g for a, b in truth))
    return {"recall": found / len(truth), "groups": len(groups),
            "precision": true_groups / len(groups) if groups else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--edits", nargs="+", default=["crop", "resize", "jpeg", "shift_brightness"])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    rows = []
    for edit in args.edits:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory(prefix="near-") as tmp:
                truth = write_set(Path(tmp), edit, args.copies, seed)
                manifest = read_dataset(tmp)
                for name, options in (("default", {}), ("with backbone", {"backbone": args.backbone})):
                    report = run_audit(manifest, checks="duplicates", options=options, seed=seed)
                    rows.append({"edit": edit, "seed": seed, "candidates": name,
                                 **score(report, manifest, truth)})
                    print(json.dumps(rows[-1]), flush=True)
    lines = ["# Near duplicates on clothing5 photos: default candidates vs + a backbone's features", "",
             f"`python -m bench.audit_photo_near --backbone {args.backbone}`; {args.copies} edited copies per run, "
             f"seeds {' '.join(map(str, args.seeds))}; mean over seeds.", "",
             "| edit | candidates | recall | precision |", "|---|---|---:|---:|"]
    for edit in args.edits:
        for name in ("default", "with backbone"):
            items = [r for r in rows if r["edit"] == edit and r["candidates"] == name]
            precisions = [r["precision"] for r in items if r["precision"] is not None]
            lines.append(f"| {edit} | {name} | {statistics.mean(r['recall'] for r in items):.2f} | "
                         f"{statistics.mean(precisions):.2f} |" if precisions else
                         f"| {edit} | {name} | {statistics.mean(r['recall'] for r in items):.2f} | – |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audit_photo_near.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    (RESULTS / "audit_photo_near.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
