"""Audit evidence harness: inject known defects into real datasets, audit the defective copy, score.

    flock /tmp/pixelforge-heavy.lock .venv/bin/python -m bench.audit            # the full sweep
    .venv/bin/python -m bench.audit --quick --datasets fashion --kinds dark     # one cell, fast

For each dataset (Fashion-MNIST, CIFAR-10: a seeded class-stratified subset of the train split plus a
fifth as many test images; clothing5: all 1,116 photos, longest side at most 256 px) the images are
decoded once into arrays and written as PNG files in class-folder layout ``root/<split>/<class>/<id>.png``
(lossless, so the files hold exactly the injected pixels; unchanged rows of a defective copy are hard
links to the clean copy). Then, per defect kind x strength x seed, one fresh defective copy:

  dark            x * f, f in 0.02-0.2                       pixelforge quality/dark       cleanvision dark
  bright          255 - (255 - x) * f, f in 0.05-0.2         pixelforge quality/bright     cleanvision light
  blur            Gaussian, sigma 1-3 px (native size)       pixelforge quality/blurry     cleanvision blurry
  near_duplicate  edited copies added as new rows            pixelforge duplicates/near+exact groups, cleanvision
                                                             near+exact duplicate sets (pair found = same group)
  label_flip      2/4/6% of train labels to another class    pixelforge labels/likely_mislabelled, cleanlab
                                                             find_label_issues on 5-fold LogisticRegression probs
  minority        one class cut to 7% of the largest (train) pixelforge imbalance finding naming the class
  leak            ~1% of test copied into train, light edit  pixelforge duplicates/cross_split, cleanvision
                                                             duplicate sets spanning splits

Recall = injected items found by the right finding; precision = flagged items (images, or classes for
minority) that are injected / all items that finding flags. Each audit runs only the checks its kind
needs; one clean run per dataset (all checks; plus CIFAR-10's test split alone) counts false alarms.
Injection lives in ``bench/audit_inject.py`` (pure functions of arrays and a rng).

Writes bench/results/audit.json (every number, per seed) and bench/results/audit.md (tables).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import os
import platform
import shutil
import sys
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.audit_inject import KINDS, LEAK_EDITS, NEAR_EDITS, QUICK_STRENGTHS, STRENGTHS, ImageSet, inject

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results"
CACHE = Path(os.environ.get("PIXELFORGE_BENCH_CACHE", "/tmp/pixelforge-bench"))

DATASETS = ("fashion", "cifar10", "clothing5")
ARCHIVES = {"fashion": ("fashion-mnist.tar.gz", "fashion-mnist"), "cifar10": ("cifar10.tar.gz", "cifar10")}

# what pixelforge finding and which cleanvision issue score each kind
PIXELFORGE_CHECK = {"dark": "quality", "bright": "quality", "blur": "quality", "near_duplicate": "duplicates",
                    "label_flip": "labels", "minority": "imbalance", "leak": "duplicates"}
PIXELFORGE_CODES = {"dark": ("dark",), "bright": ("bright",), "blur": ("blurry",),
                    "near_duplicate": ("near", "exact"), "label_flip": ("likely_mislabelled",),
                    "minority": ("minority_classes",), "leak": ("cross_split",)}
CLEANVISION_ISSUES = {"dark": ("dark",), "bright": ("light",), "blur": ("blurry",),
                      "near_duplicate": ("exact_duplicates", "near_duplicates"),
                      "leak": ("exact_duplicates", "near_duplicates")}
CLEAN_TARGET_SHARE = 0.02  # on clean data: no error finding, no warning flagging more than 2% of the images


# ------------------------------------------------------------------------------------------------ data


def extracted(name: str) -> Path:
    """The extracted tree of a shared archive, extracted once into CACHE (never into ../shared)."""
    archive, folder = ARCHIVES[name]
    target = CACHE / folder
    if (target / "train").is_dir() and (target / ".complete").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            tmp = CACHE / f".{folder}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            with tarfile.open(SHARED / archive) as tar:
                tar.extractall(tmp, filter="data")
            shutil.rmtree(target, ignore_errors=True)
            (tmp / folder).rename(target)
            shutil.rmtree(tmp, ignore_errors=True)
            (target / ".complete").touch()
    return target


def _class_dirs(split_dir: Path) -> list[Path]:
    dirs = [d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return sorted(dirs, key=lambda d: (int(d.name), d.name) if d.name.isdigit() else (1 << 30, d.name))


def _decode(path: Path, max_side: int | None) -> np.ndarray:
    with Image.open(path) as img:
        if max_side and max(img.size) > max_side and img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))  # decode at a reduced scale (>= max_side)
        img = ImageOps.exif_transpose(img)
        img = img.convert("L" if img.mode in ("L", "1", "I;16", "I") else "RGB")
        if max_side and max(img.size) > max_side:
            scale = max_side / max(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.LANCZOS)
        return np.asarray(img).copy()


def load_dataset(name: str, n_train: int, n_test: int, seed: int, max_side: int = 256) -> ImageSet:
    """A seeded class-stratified subset (fashion, cifar10) or all of clothing5, decoded to arrays."""
    if name == "clothing5":
        root, splits, per_split = SHARED / "clothing5", ("train", "validation", "test"), None
    else:
        root, splits = extracted(name), ("train", "test")
        per_split = {"train": n_train, "test": n_test}
    classes = [d.name for d in _class_dirs(root / splits[0])]
    rng = np.random.default_rng([seed, DATASETS.index(name)])
    paths, labels, split_of = [], [], []
    for split in splits:
        for c, cname in enumerate(classes):
            files = sorted(p for p in (root / split / cname).iterdir() if not p.name.startswith("."))
            if per_split is not None:
                k = min(len(files), per_split[split] // len(classes))
                files = [files[i] for i in np.sort(rng.choice(len(files), k, replace=False))]
            paths += files
            labels += [c] * len(files)
            split_of += [split] * len(files)
    images = [_decode(p, max_side if name == "clothing5" else None) for p in paths]
    return ImageSet(images, labels, split_of, classes)


# --------------------------------------------------------------------------------------------- folders


def _file_name(row_id: int) -> str:
    return f"{row_id:06d}.png"


def _row_id(location: str) -> int:
    return int(os.path.basename(location).split(".")[0])


def write_tree(data: ImageSet, root: Path, base: ImageSet | None = None, base_root: Path | None = None) -> None:
    """Write ``data`` as ``root/<split>/<class>/<id>.png``; rows whose array is the very array of
    ``base`` (same id) become hard links to ``base_root``'s file (copies where links fail)."""
    shutil.rmtree(root, ignore_errors=True)
    base_rows = {} if base is None else {int(i): r for r, i in enumerate(base.ids)}
    made = set()
    for img, label, split, rid in zip(data.images, data.labels, data.splits, data.ids, strict=True):
        folder = root / split / data.classes[label]
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        path = folder / _file_name(int(rid))
        b = base_rows.get(int(rid))
        if b is not None and base.images[b] is img:
            src = base_root / base.splits[b] / base.classes[base.labels[b]] / _file_name(int(rid))
            try:
                os.link(src, path)
            except OSError:
                shutil.copyfile(src, path)
            continue
        Image.fromarray(img).save(path, compress_level=1)


# ------------------------------------------------------------------------------------------- contenders


def run_pixelforge(root: Path, checks: str, seed: int, workers: int, rows_of: dict[int, int]):
    """The audit on the folder; returns (report, seconds, manifest row -> data row)."""
    from pixelforge.audit import run_audit

    start = time.perf_counter()
    report = run_audit(str(root), checks=checks, seed=seed, workers=workers)
    seconds = time.perf_counter() - start
    to_row = np.array([rows_of[_row_id(loc)] for loc in report.manifest.locations], np.int64)
    return report, seconds, to_row


def pixelforge_flags(report, to_row: np.ndarray, check: str, codes) -> tuple[set[int], list[list[int]], list]:
    """Data rows flagged by the findings of ``check`` with one of ``codes``, their groups, the findings."""
    findings = [f for f in report.by_check(check) if codes is None or f.code in codes]
    rows = {int(to_row[i]) for f in findings for i in f.images}
    groups = [[int(to_row[i]) for i in g] for f in findings for g in f.groups]
    rows |= {i for g in groups for i in g}
    return rows, groups, findings


def run_cleanvision(root: Path, issue_types, rows_of: dict[int, int], n_jobs: int):
    """cleanvision's Imagelab on the folder; returns (rows per issue type, duplicate sets as rows, seconds)."""
    from cleanvision import Imagelab

    start = time.perf_counter()
    quiet = io.StringIO()  # cleanvision prints and draws tqdm bars even with verbose=False
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lab = Imagelab(data_path=str(root), verbose=False)
        lab.find_issues({t: {} for t in issue_types} if issue_types is not None else None, n_jobs=n_jobs,
                        verbose=False)
    seconds = time.perf_counter() - start
    issues = lab.issues
    flagged = {}
    for column in issues.columns:
        if column.startswith("is_") and column.endswith("_issue"):
            t = column[3:-6]
            flagged[t] = {rows_of[_row_id(p)] for p in issues.index[issues[column].to_numpy(bool)]}
    sets = []
    for t in ("exact_duplicates", "near_duplicates"):
        for s in lab.info.get(t, {}).get("sets", []):
            sets.append([rows_of[_row_id(p)] for p in s])
    return flagged, sets, seconds


def raw_pixel_features(data: ImageSet, side: int = 32) -> np.ndarray:
    """Flattened pixels / 255; images of different sizes are resized to side x side first."""
    import cv2

    shapes = {im.shape for im in data.images}
    if len(shapes) == 1:
        x = np.stack(data.images)
    else:
        rgb = any(im.ndim == 3 for im in data.images)
        fixed = []
        for im in data.images:
            if rgb and im.ndim == 2:
                im = np.repeat(im[:, :, None], 3, 2)
            fixed.append(cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA))
        x = np.stack(fixed)
    return x.reshape(len(x), -1).astype(np.float32) / 255.0


def run_cleanlab(data: ImageSet, seed: int) -> tuple[set[int], float]:
    """The plain baseline: 5-fold out-of-fold probabilities of a LogisticRegression on raw pixels, then
    ``cleanlab.filter.find_label_issues``; returns (flagged rows, seconds)."""
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    x = raw_pixel_features(data)
    _, y = np.unique(data.labels, return_inverse=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200, C=0.1))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    # one BLAS thread: on this shared 2-core machine two OpenBLAS threads spin and make the fit 20x slower
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
        probs = cross_val_predict(model, x, y, cv=folds, method="predict_proba")
    issues = find_label_issues(y, probs)
    return set(np.flatnonzero(issues).tolist()), time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- scoring


def score_rows(truth: set[int], flagged: set[int]) -> dict:
    hit = len(truth & flagged)
    return {"recall": hit / len(truth) if truth else None, "precision": hit / len(flagged) if flagged else None,
            "found": hit, "injected": len(truth), "flagged": len(flagged)}


def score_pairs(pairs: list[list[int]], groups: list[list[int]], flagged: set[int]) -> tuple[dict, list[bool]]:
    """A pair is found when both rows sit in one group; precision over flagged images (those in an
    injected pair / all flagged). Returns (scores, found per pair)."""
    from pixelforge.audit.checks.duplicates import connected_groups

    # groups that share rows (a 'near' and an 'exact' group) are one component
    comp = {r: k for k, g in enumerate(connected_groups([(g[0], r) for g in groups for r in g[1:]])) for r in g}
    found = [a in comp and b in comp and comp[a] == comp[b] for a, b in pairs]
    members = {r for p in pairs for r in p}
    hit = len(members & flagged)
    return {"recall": sum(found) / len(pairs) if pairs else None,
            "precision": hit / len(flagged) if flagged else None,
            "found": int(sum(found)), "injected": len(pairs), "flagged": len(flagged),
            "flagged_groups": len(groups)}, found


def per_edit(truth: dict, found: list[bool]) -> dict:
    out: dict[str, list[int]] = {}
    for e, ok in zip(truth["edits"], found, strict=True):
        out.setdefault(e, [0, 0])
        out[e][0] += int(ok)
        out[e][1] += 1
    return {e: {"found": a, "of": b} for e, (a, b) in out.items()}


def cross_split_sets(sets: list[list[int]], splits: np.ndarray) -> list[list[int]]:
    return [s for s in sets if len({splits[r] for r in s}) > 1]


# ------------------------------------------------------------------------------------------------ cells


def run_cell(name: str, base: ImageSet, base_root: Path, kind: str, strength, seed: int, args) -> dict:
    rng = np.random.default_rng([seed, KINDS.index(kind), DATASETS.index(name)])
    data, truth = inject(base, kind, strength, rng)
    rows_of = {int(i): r for r, i in enumerate(data.ids)}
    root = CACHE / "audit" / "runs" / f"{name}-{kind}-{strength}-s{seed}"
    start = time.perf_counter()
    write_tree(data, root, base, base_root)
    cell = {"dataset": name, "kind": kind, "strength": strength, "seed": seed, "images": len(data),
            "write_seconds": round(time.perf_counter() - start, 2)}
    try:
        check, codes = PIXELFORGE_CHECK[kind], PIXELFORGE_CODES[kind]
        pf = {"checks": check}
        try:
            report, seconds, to_row = run_pixelforge(root, check, seed, args.workers, rows_of)
        except Exception as exc:  # noqa: BLE001 - a crash of the audit is a result to report
            pf.update(error=f"{type(exc).__name__}: {exc}")
            report = None
        if report is not None:
            pf["seconds"] = round(seconds, 2)
            if len(report.manifest) != len(data):
                pf["rows_read"] = len(report.manifest)
            flagged, groups, findings = pixelforge_flags(report, to_row, check, codes)
            pf["findings"] = [{"code": f.code, "severity": f.severity, "title": f.title} for f in findings]
            if kind == "minority":
                classes = sorted({c for f in findings for c in f.classes})
                ok = truth["class"] in classes
                pf.update(recall=float(ok), precision=(1 / len(classes) if ok else 0.0) if classes else None,
                          found=int(ok), injected=1, flagged=len(classes), flagged_classes=classes)
            elif "pairs" in truth:
                scores, found = score_pairs(truth["pairs"], groups, flagged)
                pf.update(scores)
                pf["per_edit"] = per_edit(truth, found)
                pf["missed"] = [f"{_file_name(int(data.ids[b]))} (copy of {_file_name(int(data.ids[a]))}): {d}"
                                for (a, b), d, ok in zip(truth["pairs"], truth["details"], found, strict=True)
                                if not ok]
            else:
                pf.update(score_rows(set(truth["rows"]), flagged))
        cell["truth"] = {k: v for k, v in truth.items() if k not in ("rows", "pairs", "from", "to", "details")}
        cell["truth"]["count"] = len(truth.get("rows", truth.get("pairs", [1])))
        cell["pixelforge"] = pf
        cell["cleanvision"] = None
        if kind in CLEANVISION_ISSUES and not args.no_cleanvision:
            cv = {}
            try:
                flagged_by, sets, seconds = run_cleanvision(root, CLEANVISION_ISSUES[kind], rows_of, args.cv_jobs)
                cv["seconds"] = round(seconds, 2)
                if kind in ("near_duplicate", "leak"):
                    if kind == "leak":
                        sets = cross_split_sets(sets, data.splits)
                    flagged = {r for s in sets for r in s}
                    scores, found = score_pairs(truth["pairs"], sets, flagged)
                    cv.update(scores)
                    cv["per_edit"] = per_edit(truth, found)
                else:
                    cv.update(score_rows(set(truth["rows"]), flagged_by.get(CLEANVISION_ISSUES[kind][0], set())))
            except Exception as exc:  # noqa: BLE001
                cv["error"] = f"{type(exc).__name__}: {exc}"
            cell["cleanvision"] = cv
        cell["cleanlab"] = None
        if kind == "label_flip" and not args.no_cleanlab:
            try:
                flagged, seconds = run_cleanlab(data, seed)
                cell["cleanlab"] = {"seconds": round(seconds, 2), **score_rows(set(truth["rows"]), flagged)}
            except Exception as exc:  # noqa: BLE001
                cell["cleanlab"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return cell


def finding_rows(report, n: int) -> list[dict]:
    out = []
    for f in report.findings:
        rows = set(f.images) | {i for g in f.groups for i in g}
        out.append({"check": f.check, "code": f.code, "severity": f.severity, "images": len(rows),
                    "share": len(rows) / n if n else 0.0, "classes": list(f.classes), "title": f.title})
    return out


def run_clean(name: str, label: str, root: Path, data: ImageSet, seed: int, args) -> dict:
    rows_of = {int(i): r for r, i in enumerate(data.ids)}
    rec = {"dataset": label, "images": len(data)}
    try:
        report, seconds, _ = run_pixelforge(root, "all", seed, args.workers, rows_of)
        pf = {"seconds": round(seconds, 2), "findings": finding_rows(report, len(data)),
              "timings": {k: round(v, 2) for k, v in report.timings.items()}}
    except Exception as exc:  # noqa: BLE001 - then one audit per check, to keep what the others find
        from pixelforge.audit import CHECKS

        pf = {"error": f"{type(exc).__name__}: {exc}", "findings": [], "crashed_checks": {}, "seconds": 0.0,
              "note": "the all-checks audit crashed; findings come from one audit per check"}
        for check in CHECKS:
            try:
                report, seconds, _ = run_pixelforge(root, check, seed, args.workers, rows_of)
                pf["findings"] += finding_rows(report, len(data))
                pf["seconds"] = round(pf["seconds"] + seconds, 2)
            except Exception as exc:  # noqa: BLE001
                pf["crashed_checks"][check] = f"{type(exc).__name__}: {exc}"
    bad = [f for f in pf["findings"]
           if f["severity"] == "error" or (f["severity"] == "warning" and f["share"] > CLEAN_TARGET_SHARE)]
    pf["target_met"] = None if pf.get("crashed_checks") or ("error" in pf and not pf["findings"]) else not bad
    pf["target_misses"] = [f"{f['check']}/{f['code']}" for f in bad]
    rec["pixelforge"] = pf
    if not args.no_cleanvision:
        try:
            flagged_by, sets, seconds = run_cleanvision(root, None, rows_of, args.cv_jobs)
            counts = {t: len(v) for t, v in flagged_by.items()}
            rec["cleanvision"] = {"seconds": round(seconds, 2), "flagged": counts,
                                  "cross_split_sets": len(cross_split_sets(sets, data.splits))}
        except Exception as exc:  # noqa: BLE001
            rec["cleanvision"] = {"error": f"{type(exc).__name__}: {exc}"}
    if not args.no_cleanlab and len(set(data.labels.tolist())) > 1:
        try:
            flagged, seconds = run_cleanlab(data, seed)
            rec["cleanlab"] = {"seconds": round(seconds, 2), "flagged": len(flagged)}
        except Exception as exc:  # noqa: BLE001
            rec["cleanlab"] = {"error": f"{type(exc).__name__}: {exc}"}
    return rec


# ---------------------------------------------------------------------------------------------- output


def _f(v, digits=2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def describe_cell(cell: dict) -> str:
    def part(name, d):
        if d is None:
            return ""
        if "error" in d:
            return f" | {name} ERROR {d['error'][:120]}"
        return (f" | {name} R {_f(d.get('recall'))} P {_f(d.get('precision'))} "
                f"({d.get('found')}/{d.get('injected')} found, {d.get('flagged')} flagged, {d.get('seconds', 0):.1f} s)")

    head = (f"{cell['dataset']:<9} {cell['kind']:<14} {str(cell['strength']):<16} seed {cell['seed']} "
            f"n={cell['images']}")
    return head + part("pixelforge", cell["pixelforge"]) + part("cleanvision", cell["cleanvision"]) + \
        part("cleanlab", cell["cleanlab"])


def aggregate(cells: list[dict]) -> list[dict]:
    rows: dict[tuple, list[dict]] = {}
    for c in cells:
        rows.setdefault((c["dataset"], c["kind"], str(c["strength"])), []).append(c)
    out = []
    for (ds, kind, strength), group in rows.items():
        row = {"dataset": ds, "kind": kind, "strength": strength, "seeds": len(group),
               "injected": _mean([c["truth"]["count"] for c in group])}
        for peer in ("pixelforge", "cleanvision", "cleanlab"):
            parts = [c[peer] for c in group if c.get(peer) is not None]
            if not parts:
                row[peer] = None
                continue
            errors = [p["error"] for p in parts if "error" in p]
            row[peer] = {"recall": _mean([p.get("recall") for p in parts]),
                         "precision": _mean([p.get("precision") for p in parts]),
                         "seconds": _mean([p.get("seconds") for p in parts]),
                         "flagged": _mean([p.get("flagged") for p in parts]),
                         "error": errors[0] if errors else None}
        for peer in ("pixelforge", "cleanvision"):
            edits: dict[str, list[int]] = {}
            for c in group:
                for e, v in ((c.get(peer) or {}).get("per_edit") or {}).items():
                    edits.setdefault(e, [0, 0])
                    edits[e][0] += v["found"]
                    edits[e][1] += v["of"]
            if len(edits) > 1 and row[peer] is not None:
                row[peer]["per_edit"] = edits
        out.append(row)
    return out


def markdown(meta: dict, cells: list[dict], clean: list[dict]) -> str:
    lines = ["# Audit evidence: injected defects, pixelforge vs cleanvision and cleanlab", "",
             f"`{meta['command']}` — {meta['date']}, {meta['machine']}; pixelforge {meta['pixelforge']} "
             f"({meta['commit']}), "
             f"cleanvision {meta['cleanvision']}, cleanlab {meta['cleanlab']}. Seeds {meta['seeds']}; "
             f"images per dataset: {meta['images']}. Recall/precision are means over seeds; "
             "'—' = nothing flagged (precision) or not applicable; 'n/a' = the peer has no such check.", "",
             "Scoring: dark → quality/dark (cleanvision `dark`); bright → quality/bright (`light`); blur → "
             "quality/blurry (`blurry`); near_duplicate → a pair counts when both images are in one "
             "duplicates/near or /exact group (cleanvision near/exact duplicate sets); label_flip → "
             "labels/likely_mislabelled (cleanlab: `find_label_issues` on 5-fold LogisticRegression "
             "probabilities from raw pixels); minority → the imbalance finding names the class (precision "
             "over classes flagged); leak → duplicates/cross_split (cleanvision duplicate sets spanning "
             "splits). Precision counts every image the finding flags, natural defects of the real data "
             "included.", "",
             "| dataset | kind | strength | injected | pixelforge R | pixelforge P | cleanvision R | cleanvision P "
             "| cleanlab R | cleanlab P | pixelforge s | cleanvision s | cleanlab s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = aggregate(cells)
    for r in rows:
        def rp(peer, r=r):
            d = r[peer]
            if d is None:
                return "n/a", "n/a", "—"
            if d["error"] and d["recall"] is None:
                return "crash", "crash", "—"
            return _f(d["recall"]), _f(d["precision"]), _f(d["seconds"], 1)

        pr, pp, ps = rp("pixelforge")
        cr, cp, cs = rp("cleanvision")
        lr, lp, ls = rp("cleanlab")
        lines.append(f"| {r['dataset']} | {r['kind']} | {r['strength']} | {r['injected']:.0f} | {pr} | {pp} | {cr} "
                     f"| {cp} | {lr} | {lp} | {ps} | {cs} | {ls} |")
    edits = [r for r in rows if (r["pixelforge"] or {}).get("per_edit")]
    if edits:
        lines += ["", "Per edit of the mixed runs (pairs found / injected):", ""]
        for r in edits:
            for peer in ("pixelforge", "cleanvision"):
                if (r[peer] or {}).get("per_edit"):
                    text = ", ".join(f"{e} {a}/{b}" for e, (a, b) in r[peer]["per_edit"].items())
                    lines.append(f"- {r['dataset']} {r['kind']} {r['strength']}, {peer}: {text}")
    peers = ("pixelforge", "cleanvision", "cleanlab")
    errors = [c for c in cells if any(c.get(p) and c[p].get("error") for p in peers)]
    if errors:
        lines += ["", "Crashes:", ""]
        for c in errors:
            for p in peers:
                if c.get(p) and c[p].get("error"):
                    lines.append(f"- {c['dataset']} {c['kind']} {c['strength']} seed {c['seed']}, {p}: "
                                 f"`{c[p]['error'][:300]}`")
    if clean:
        lines += ["", "## Clean data (no injection): what each finding flags", "",
                  f"Target (clean CIFAR-10 test split and clothing5): no error-level finding and no warning "
                  f"flagging more than {CLEAN_TARGET_SHARE:.0%} of the images.", "",
                  "| dataset | images | pixelforge finding | severity | images flagged | share |",
                  "|---|---:|---|---|---:|---:|"]
        for rec in clean:
            pf = rec.get("pixelforge", {})
            for check, error in (pf.get("crashed_checks") or {}).items():
                lines.append(f"| {rec['dataset']} | {rec['images']} | {check}: crash `{error[:200]}` | | | |")
            for f in pf.get("findings", []):
                if f["check"] == "stats":
                    continue
                flagged = (f"{f['images']}" if f["images"] else
                           f"0 ({len(f['classes'])} class(es))" if f["classes"] else "0")
                lines.append(f"| {rec['dataset']} | {rec['images']} | {f['check']}/{f['code']} | {f['severity']} "
                             f"| {flagged} | {f['share']:.1%} |")
        lines += ["", "Target verdicts (the target is set for 'cifar10 test' and 'clothing5'; other rows for reference):",
                  "", "| dataset | pixelforge target met | misses | pixelforge s | cleanvision flagged (clean) "
                  "| cleanvision cross-split sets | cleanvision s | cleanlab flagged (clean) | cleanlab s |",
                  "|---|---|---|---:|---|---:|---:|---:|---:|"]
        for rec in clean:
            pf, cv, cl = rec.get("pixelforge", {}), rec.get("cleanvision") or {}, rec.get("cleanlab") or {}
            cv_text = ", ".join(f"{t} {n}" for t, n in sorted(cv.get("flagged", {}).items()) if n) or "none"
            if "error" in cv:
                cv_text = f"crash: `{cv['error'][:100]}`"
            met = {True: "yes", False: "no", None: "unknown (crash)"}[pf.get("target_met")]
            lines.append(f"| {rec['dataset']} | {met} | "
                         f"{', '.join(pf.get('target_misses', [])) or '—'} | {_f(pf.get('seconds'), 1)} | {cv_text} "
                         f"| {cv.get('cross_split_sets', '—')} | {_f(cv.get('seconds'), 1)} | "
                         f"{cl.get('flagged', '—')} | {_f(cl.get('seconds'), 1)} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- main


def _versions() -> dict:
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        out["commit"] = rev + ("+uncommitted src changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        out["commit"] = "unknown"
    for pkg in ("pixelforge", "cleanvision", "cleanlab"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    p.add_argument("--strengths", action="append", default=[], metavar="[KIND=]V1,V2",
                   help="strengths to run instead of the defaults: 'blur=1,2' for one kind, '0.05,0.1' for "
                        "every selected kind; repeatable. near_duplicate takes edits "
                        f"({', '.join(NEAR_EDITS)}, mixed), leak takes {', '.join(LEAK_EDITS)}, mixed")
    p.add_argument("--images", type=int, default=None,
                   help="training images per dataset for fashion and cifar10 (plus a fifth as many test "
                        "images); default 5000, --quick 1000; clothing5 always uses all of its photos")
    p.add_argument("--seeds", default=None, help="comma-separated injection seeds (default 0,1; --quick 0)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the subset drawn from each dataset")
    p.add_argument("--max-side", type=int, default=256, help="clothing5 photos are resized to this longest side")
    p.add_argument("--quick", action="store_true", help="one strength, one seed, 1000 (+200 test) images")
    p.add_argument("--no-clean", action="store_true", help="skip the clean-data (false alarm) runs")
    p.add_argument("--no-cleanvision", action="store_true", help="skip the cleanvision runs")
    p.add_argument("--no-cleanlab", action="store_true", help="skip the cleanlab baseline")
    p.add_argument("--workers", type=int, default=2, help="pixelforge audit workers")
    p.add_argument("--cv-jobs", type=int, default=2, help="cleanvision n_jobs")
    p.add_argument("--keep", action="store_true", help="keep the defective copies under the cache folder")
    p.add_argument("--out", default=str(RESULTS / "audit"), help="results prefix (.md and .json are added)")
    args = p.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for d in args.datasets:
        if d not in DATASETS:
            p.error(f"unknown dataset {d!r}; expected some of {', '.join(DATASETS)}")
    for k in args.kinds:
        if k not in KINDS:
            p.error(f"unknown kind {k!r}; expected some of {', '.join(KINDS)}")
    overrides = {}
    for item in args.strengths:
        kind, _, values = item.rpartition("=")
        for k in ([kind] if kind else args.kinds):
            if k not in KINDS:
                p.error(f"--strengths {item!r}: unknown kind {k!r}")
            try:
                overrides[k] = parse_strengths(k, values)
            except ValueError as exc:
                p.error(f"--strengths {item!r}: {exc}")
    args.strengths = overrides
    args.images = args.images or (1000 if args.quick else 5000)
    args.seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1")).split(",")]
    return args


def parse_strengths(kind: str, text: str) -> tuple:
    """Strength values of ``kind`` from '0.05,0.1' (numbers) or 'jpeg,hflip' (edits)."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise ValueError("no values")
    allowed = {"near_duplicate": NEAR_EDITS + ("mixed",), "leak": LEAK_EDITS + ("mixed",)}.get(kind)
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{kind} takes {', '.join(allowed)}, not {', '.join(bad)}")
        return tuple(values)
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise ValueError(f"{kind} takes numbers, got {text!r}") from None


def strengths_for(kind: str, args) -> tuple:
    if kind in args.strengths:
        return args.strengths[kind]
    return (QUICK_STRENGTHS if args.quick else STRENGTHS)[kind]


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    versions = _versions()
    meta = {"command": "python -m bench.audit " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "seeds": args.seeds, "images": {}, "data_seed": args.data_seed, **versions}
    cells, clean = [], []
    for name in args.datasets:
        start = time.perf_counter()
        base = load_dataset(name, args.images, args.images // 5, args.data_seed, args.max_side)
        base_root = CACHE / "audit" / f"{name}-clean"
        write_tree(base, base_root)
        counts = {s: int((base.splits == s).sum()) for s in dict.fromkeys(base.splits.tolist())}
        meta["images"][name] = counts
        print(f"== {name}: {len(base)} images {counts}, {len(base.classes)} classes "
              f"(loaded and written in {time.perf_counter() - start:.1f} s)", flush=True)
        if not args.no_clean:
            targets = [(name, base_root, base)]
            if name == "cifar10":
                test = base.take(np.flatnonzero(base.splits == "test"))
                targets.append(("cifar10 test", base_root / "test", test))
            for label, root, data in targets:
                rec = run_clean(name, label, root, data, args.seeds[0], args)
                clean.append(rec)
                pf = rec["pixelforge"]
                for check, error in (pf.get("crashed_checks") or {}).items():
                    print(f"   clean {label}: pixelforge check {check} CRASHED: {error}", flush=True)
                shown = [f"{f['check']}/{f['code']}({f['severity'][0]}) {f['images']}" for f in pf["findings"]
                         if f["check"] != "stats"]
                verdict = {True: "met", False: "MISSED " + ", ".join(pf["target_misses"]),
                           None: "unknown (crash)"}[pf["target_met"]]
                print(f"   clean {label}: pixelforge {pf['seconds']:.1f} s, target {verdict}; {'; '.join(shown)}",
                      flush=True)
                if rec.get("cleanvision") and "flagged" in rec["cleanvision"]:
                    print(f"   clean {label}: cleanvision {rec['cleanvision']['flagged']} "
                          f"({rec['cleanvision']['seconds']:.1f} s)", flush=True)
                if rec.get("cleanlab"):
                    print(f"   clean {label}: cleanlab flags {rec['cleanlab']['flagged']} "
                          f"({rec['cleanlab']['seconds']:.1f} s)", flush=True)
        for kind in args.kinds:
            for strength in strengths_for(kind, args):
                for seed in args.seeds:
                    cell = run_cell(name, base, base_root, kind, strength, seed, args)
                    cells.append(cell)
                    print(describe_cell(cell), flush=True)
                    write_results(args.out, meta, cells, clean)  # after every cell: a crash loses nothing
        del base
    meta["seconds"] = round(time.perf_counter() - started, 1)
    write_results(args.out, meta, cells, clean)
    print(f"wrote {Path(args.out).with_suffix('.md')} and .json ({meta['seconds']:.0f} s in all)", flush=True)


def write_results(prefix: str, meta: dict, cells: list[dict], clean: list[dict]) -> None:
    out = Path(prefix)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "cells": cells, "clean": clean,
                                                    "summary": aggregate(cells)}, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(meta, cells, clean))


if __name__ == "__main__":
    main()
