"""Beyond one process: the local engine vs Ray for convert and audit, one process vs DDP for training,
and the per-image costs behind the README's cluster projections — all on Fashion-MNIST, one run.

    flock /tmp/pixelforge-heavy.lock python -m bench.cluster [--images 70000] [--epochs 3] [--skip audit,…]

Each command runs as the CLI a user would type, in its own process; wall time from start to exit,
peak memory as the largest sum of the resident sizes of that process and all its descendants (Ray's
GCS, raylet and workers, or torchrun's ranks), sampled every 0.2 s. The two engines' outputs are
compared: the stores dataset by dataset, the audits finding by finding.
Writes bench/results/cluster.json and bench/results/cluster.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(stat[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(stat[21]) * PAGE
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def measured(command: list[str], env: dict | None = None) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            done.wait(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    done.set()
    watcher.join()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{err[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_mb": round(peak[0] / 2**20), "stdout": out}


def pixelforge(*args) -> list[str]:
    return [sys.executable, "-m", "pixelforge", *map(str, args)]


def fashion(cache: Path) -> Path:
    root = cache / "fashion-mnist"
    if not (root / "train").is_dir():
        with tarfile.open(SHARED / "fashion-mnist.tar.gz") as tar:
            tar.extractall(cache, filter="data")
    return root


def stores_equal(a: Path, b: Path) -> bool:
    import h5py
    import numpy as np

    def contents(path):
        out = {}
        with h5py.File(path) as f:
            f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
            out.update({f"@{k}": v for k, v in f.attrs.items()})
        return out

    ca, cb = contents(a), contents(b)
    return ca.keys() == cb.keys() and all(np.array_equal(np.asarray(ca[k]), np.asarray(cb[k])) for k in ca)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=os.environ.get("PIXELFORGE_BENCH_CACHE", "/tmp/ds"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--skip", default="", help="comma-separated: convert, audit, train (a rerun of the others "
                                                   "keeps the skipped parts' figures from the last run)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    data = fashion(cache)
    work = Path(tempfile.mkdtemp(prefix="pixelforge-cluster-"))
    results: dict = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
                     "data": str(data), "images": 70000}

    if "convert" not in skip:
        local = measured(pixelforge("convert", data, work / "local.h5", "--json"))
        on_ray = measured(pixelforge("convert", data, work / "ray.h5", "--json", "--engine", "ray"))
        sharded = measured(pixelforge("convert", data, work / "shards", "--shards", "4", "--json"))
        results["convert"] = {
            "local": {k: v for k, v in local.items() if k != "stdout"},
            "ray": {k: v for k, v in on_ray.items() if k != "stdout"},
            "shards_4": {k: v for k, v in sharded.items() if k != "stdout"},
            "same_store": stores_equal(work / "local.h5", work / "ray.h5"),
            "store_bytes": (work / "local.h5").stat().st_size,
        }
        print("convert", json.dumps({k: v for k, v in results["convert"].items()}, default=str))

    if "audit" not in skip:
        audits = {}
        for engine in ("local", "ray"):
            run = measured(pixelforge("audit", data, "--out", work / f"audit-{engine}", "--json", "--fail-on", "none",
                                      "--engine", engine))
            report = json.loads(run["stdout"])
            audits[engine] = {"seconds": run["seconds"], "peak_mb": run["peak_mb"], "report": report,
                              "timings_s": report.get("timings_s")}
        same = json.dumps(audits["local"]["report"]["findings"], sort_keys=True) == \
            json.dumps(audits["ray"]["report"]["findings"], sort_keys=True)
        results["audit"] = {e: {k: v for k, v in a.items() if k != "report"} for e, a in audits.items()}
        results["audit"]["same_findings"] = same
        results["audit"]["findings"] = len(audits["local"]["report"]["findings"])
        print("audit", json.dumps(results["audit"], default=str))

    if "train" not in skip:
        runs = {}
        for nproc in (1, 2):
            out = work / f"train-{nproc}"
            run = measured(pixelforge("train", data, "--out", out, "--model", args.model, "--epochs", args.epochs,
                                      "--batch-size", 128, "--json", "--nproc", nproc, "--seed", 0),
                           env={"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))})
            summary = json.loads(run["stdout"])
            runs[f"nproc_{nproc}"] = {
                "seconds": run["seconds"], "peak_mb": run["peak_mb"],
                "train_images": summary["train_images"], "epochs": summary["epochs_run"],
                "test_accuracy": summary["metrics"].get("test_accuracy"),
                "val_accuracy": summary["metrics"].get("val_accuracy"),
                "epoch_seconds": json.loads((out / "history.json").read_text()).get("seconds"),
            }
        results["train"] = {"model": args.model, "batch_size": 128, **runs}
        print("train", json.dumps(results["train"]))

    out_dir = ROOT / "bench" / "results"
    if skip and (out_dir / "cluster.json").exists():  # a partial rerun keeps the other parts' figures
        results = {**json.loads((out_dir / "cluster.json").read_text()), **results}
    (out_dir / "cluster.json").write_text(json.dumps(results, indent=2, default=str))
    (out_dir / "cluster.md").write_text(render(results))
    print((out_dir / "cluster.md").read_text())


def render(r: dict) -> str:
    lines = ["# Beyond one process on Fashion-MNIST (70,000 PNGs, 28x28)", "",
             f"Machine: {r['machine']['cpus']} CPUs ({r['machine']['processor']}). `python -m bench.cluster`; "
             "peak memory is the whole process tree's (Ray's services and workers, torchrun's ranks).", ""]
    if "convert" in r:
        c = r["convert"]
        lines += ["## convert", "", "| engine | seconds | peak MB |", "|---|---:|---:|",
                  f"| local | {c['local']['seconds']} | {c['local']['peak_mb']} |",
                  f"| ray (local, {r['machine']['cpus']} CPUs, start included) | {c['ray']['seconds']} | {c['ray']['peak_mb']} |",
                  f"| local, --shards 4 | {c['shards_4']['seconds']} | {c['shards_4']['peak_mb']} |", "",
                  f"Same store from both engines, dataset by dataset: **{c['same_store']}**; "
                  f"{c['store_bytes'] / 1e6:.1f} MB.", ""]
    if "audit" in r:
        a = r["audit"]
        lines += ["## audit (all checks)", "", "| engine | seconds | peak MB | scan s |", "|---|---:|---:|---:|"]
        for engine in ("local", "ray"):
            lines.append(f"| {engine} | {a[engine]['seconds']} | {a[engine]['peak_mb']} | "
                         f"{(a[engine]['timings_s'] or {}).get('scan', '')} |")
        lines += ["", f"Same findings from both engines: **{a['same_findings']}** ({a['findings']} findings).", ""]
    if "train" in r:
        t = r["train"]
        lines += [f"## train {t['model']}, global batch {t['batch_size']}", "",
                  "| processes | seconds (start to exit) | peak MB | test accuracy | val accuracy |", "|---|---:|---:|---:|---:|"]
        for key in ("nproc_1", "nproc_2"):
            x = t[key]
            lines.append(f"| {key[-1]} | {x['seconds']} | {x['peak_mb']} | {x['test_accuracy']:.4f} | {x['val_accuracy']:.4f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
