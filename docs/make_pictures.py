"""Regenerate the README's pictures from the embedded Fashion-MNIST sample (offline, about a minute on 2 cores).

    .venv/bin/python docs/make_pictures.py            # writes docs/audit.png, curves.png, confusion.png, wild.png
    .venv/bin/python docs/make_pictures.py --quick    # 1 epoch, fewer checks: a smoke test (tests/test_readme.py)

It writes the sample as a class-folder tree and runs the README's own commands on it, so every
picture is what a user gets from those commands:

    pixelforge audit    fashion --out audit             → audit.png (a screenshot of report.html with
                                                          chromium; else a figure drawn from report.json)
    pixelforge train    fashion --epochs 10 --out run   → curves.png
    pixelforge evaluate run fashion --wild              → confusion.png, wild.png (the suite's accuracy.png)
    pixelforge browse   fashion --audit audit --run run → browse.png, browse-image.png, browse-confusion.png
                                                          (Playwright and chromium, after a few decisions)

Each PNG is quantized to a 256-colour palette so that it stays small (≤ 150 KB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

DOCS = Path(__file__).resolve().parent
MAX_BYTES = 150_000
SEVERITY_COLOUR = {"error": "#c62828", "warning": "#f9a825", "info": "#1565c0"}


def folder_name(label: str) -> str:
    return label.replace("/", "-")  # "T-shirt/top" cannot be a folder name


def write_sample_tree(root: Path) -> Path:
    """The embedded sample as ``root/{train,test}/<class>/<index>.png``."""
    from pixelforge.datasets import load_fashion_sample

    manifest = load_fashion_sample()
    for i, (label, split) in enumerate(zip(manifest.labels, manifest.splits, strict=True)):
        path = root / split / folder_name(label) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(manifest.load(i)[:, :, 0]).save(path)
    return root


def pixelforge(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "pixelforge.cli", *args]
    print("$ pixelforge " + " ".join(args), flush=True)
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def save_small(source: Path | Image.Image, target: Path, max_width: int = 1000) -> Path:
    """Copy a PNG, scaled down to ``max_width`` and quantized to 256 colours, under MAX_BYTES."""
    img = source if isinstance(source, Image.Image) else Image.open(source)
    img = img.convert("RGB")
    while True:
        if img.width > max_width:
            img = img.resize((max_width, round(img.height * max_width / img.width)), Image.Resampling.LANCZOS)
        small = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        target.parent.mkdir(parents=True, exist_ok=True)
        small.save(target, optimize=True)
        if target.stat().st_size <= MAX_BYTES or max_width < 400:
            return target
        max_width = int(max_width * 0.85)


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def screenshot(html: Path, target: Path, work: Path) -> Path | None:
    browser = chromium()
    if browser is None:
        return None
    shot = work / "audit-screenshot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={work / 'chrome'}"]
    subprocess.run([browser, *flags, "--window-size=1200,1500", f"--screenshot={shot}", html.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return save_small(shot, target)


def audit_figure(report_json: Path, dataset: Path, target: Path) -> Path:
    """The audit report drawn from report.json: the findings table and the images behind them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(report_json.read_text())
    counts = report["severity_counts"]
    shown = [f for f in report["findings"] if f["images"]][:4]
    per_row = 7
    fig = plt.figure(figsize=(11, 3.2 + 1.45 * len(shown)))
    grid = fig.add_gridspec(1 + len(shown), per_row, height_ratios=[2.3] + [1.2] * len(shown), hspace=0.55)
    fig.suptitle(
        f"pixelforge audit · {report['images']:,} images · {len(report['classes'])} classes · "
        f"{counts['error']} error · {counts['warning']} warnings · {counts['info']} info",
        fontsize=13, fontweight="bold", x=0.02, ha="left",
    )
    table = fig.add_subplot(grid[0, :])
    table.axis("off")
    for row, finding in enumerate(report["findings"]):
        y = 1 - (row + 0.5) / max(len(report["findings"]), 1)
        table.text(0.0, y, f" {finding['severity'].upper()} ", color="white", fontsize=8.5, va="center",
                   family="monospace", bbox={"facecolor": SEVERITY_COLOUR[finding["severity"]], "edgecolor": "none"})
        table.text(0.1, y, finding["check"], fontsize=9.5, va="center", color="#1565c0")
        table.text(0.21, y, finding["title"], fontsize=9.5, va="center")
        if finding["count"]:
            table.text(1.0, y, f"{finding['count']:,} images", fontsize=9, va="center", ha="right", color="#555")
    for r, finding in enumerate(shown, start=1):
        for c, entry in enumerate(finding["images"][:per_row]):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color(SEVERITY_COLOUR[finding["severity"]])
            path = Path(entry["path"])
            path = path if path.is_absolute() else dataset / path
            ax.imshow(np.asarray(Image.open(path).convert("L")), cmap="gray", vmin=0, vmax=255)
            ax.set_xlabel(textwrap.fill(entry.get("note") or entry["label"], 16), fontsize=6.5)
            if c == 0:
                ax.set_title(finding["title"], fontsize=9, loc="left", x=0, ha="left")
    target.parent.mkdir(parents=True, exist_ok=True)
    full = target.with_suffix(".full.png")
    fig.savefig(full, dpi=90, bbox_inches="tight")
    plt.close(fig)
    out = save_small(full, target)
    full.unlink()
    return out


def browse_screenshots(work: Path, data: Path, out: Path) -> dict[str, Path]:
    """`pixelforge browse fashion --audit audit --run run` in chromium (Playwright): the grid of the
    model's most confident mistakes, an image page and the confusion matrix, after a few decisions."""
    from playwright.sync_api import sync_playwright

    from pixelforge.browse.server import Background
    from pixelforge.browse.session import Session
    from pixelforge.data.read import read_dataset

    (work / "curation.jsonl").unlink(missing_ok=True)
    session = Session(read_dataset(data), work / "curation.jsonl", audit=work / "audit", run=work / "run",
                      source="fashion")
    with Background(session) as url, sync_playwright() as pw:
        session.predictions.wait()
        wrong = session.select(session.parse({"outcome": "wrong", "sort": "confidence"}))
        unsure = session.select(session.parse({"split": "test", "sort": "-confidence"}))
        # a few decisions, as a user makes them, so the pictures show what they look like
        key = session.manifest.locations
        for r in unsure[1:3]:
            session.decide([key[r]], "relabel", next(c for c, _ in session.top(r) if c != session.manifest.labels[r]))
        session.decide([key[unsure[4]]], "exclude")
        session.decide([key[unsure[6]]], "check")
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1180, "height": 760})
        shots = {}
        for name, path in (("browse", "?split=test&sort=-confidence&per=60"),
                           ("browse-image", f"image/{wrong[0]}?outcome=wrong&sort=confidence"),
                           ("browse-confusion", "confusion?split=test")):
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            raw = work / f"{name}-raw.png"
            page.screenshot(path=str(raw))
            shots[name] = save_small(raw, out / f"{name}.png")
        browser.close()
    return shots


def main(argv=None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="folder for the PNGs (default: docs/)")
    parser.add_argument("--work", type=Path, help="keep the dataset and runs here (default: a temporary folder)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 epoch, 2 severities, no label check: a smoke test")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pixelforge-pictures-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        for old in ("fashion", "audit", "run"):  # a reused --work starts over
            shutil.rmtree(work / old, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        data = write_sample_tree(work / "fashion")
        epochs = 1 if args.quick else args.epochs
        checks = ["--checks", "size,duplicates,quality"] if args.quick else []
        severities = ["--severities", "1,5", "--wild-limit", "100"] if args.quick else []
        pixelforge("audit", "fashion", "--out", "audit", *checks, cwd=work)
        pixelforge("train", "fashion", "--model", "fmnist_baseline", "--epochs", str(epochs), "--out", "run",
                   cwd=work)
        pixelforge("evaluate", "run", "fashion", "--wild", *severities, cwd=work)
        out = args.out.resolve()
        pictures = {
            "audit": screenshot(work / "audit" / "report.html", out / "audit.png", work)
            or audit_figure(work / "audit" / "report.json", data, out / "audit.png"),
            "curves": save_small(work / "run" / "curves.png", out / "curves.png"),
            "confusion": save_small(work / "run" / "evaluation" / "confusion.png", out / "confusion.png", 700),
            "wild": save_small(work / "run" / "evaluation" / "wild" / "accuracy.png", out / "wild.png"),
        }
        pictures.update(browse_screenshots(work, data, out))
    for name, path in pictures.items():
        print(f"{name}: {path} ({path.stat().st_size / 1000:.0f} KB)")
    return pictures


if __name__ == "__main__":
    main()
