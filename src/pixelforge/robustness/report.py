"""Outputs of the wild-test suite: JSON, accuracy-vs-severity plot, example grid, misclassified montage,
an HTML page that holds them all, and a rich console table.

Every file is written to a temporary name in the target folder and then moved into place, so an
interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np

from pixelforge.robustness.corruptions import CORRUPTIONS, corrupt


def _atomic_write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plot_accuracy(report: dict) -> bytes:
    """Accuracy against severity, one line per corruption, the clean accuracy at severity 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    clean = report["clean"]["accuracy"]
    cmap = plt.get_cmap("tab20")
    for i, (name, entry) in enumerate(report["corruptions"].items()):
        sev = sorted(int(s) for s in entry["severities"])
        xs = [0, *sev]
        ys = [clean, *[entry["severities"][str(s)]["accuracy"] for s in sev]]
        ax.plot(xs, ys, marker="o", ms=3, label=name, color=cmap(i % 20), linestyle="-" if i < 10 else "--")
    ax.axhline(clean, color="black", lw=0.8, ls=":", label=f"clean {clean:.1%}")
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"accuracy under corruption ({report['images']:,} test images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _figure_png(fig)


def _tile(img: np.ndarray) -> np.ndarray:
    return img[..., 0] if img.shape[-1] == 1 else img


def example_grid(image: np.ndarray, report: dict, seed: int = 0) -> bytes:
    """One test image under every corruption of the report (rows) at every severity (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["corruptions"])
    cols = 1 + max((len(CORRUPTIONS[n].levels) for n in names), default=0)
    fig, axes = plt.subplots(len(names) or 1, cols, figsize=(cols * 1.1, max(len(names), 1) * 1.15),
                             squeeze=False)
    gray = image.shape[-1] == 1
    for r, name in enumerate(names):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c > len(CORRUPTIONS[name].levels):
                ax.axis("off")
            else:
                out = corrupt(name, image[None], c, np.random.default_rng(seed))[0]
                ax.imshow(_tile(out), cmap="gray" if gray else None, vmin=0, vmax=255)
            if c == 0:
                ax.set_title(name, fontsize=7, loc="left")
    return _figure_png(fig)


def montage(images: list[np.ndarray], captions: list[str], columns: int = 8) -> bytes:
    """A grid of images with a caption under each (the misclassified wild images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.5, rows * 1.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, caption in zip(axes.flat, images, captions, strict=False):
        ax.axis("on")  # a frame, so that light images stand out from the page
        ax.set_xticks([])
        ax.set_yticks([])
        ax.imshow(_tile(img), cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255)
        ax.set_title(caption, fontsize=6)
    return _figure_png(fig)


def wild_montage(saved_model, report: dict, limit: int = 64) -> bytes | None:
    """Montage of the misclassified wild images, decoded at the model's input (true → predicted)."""
    wild = report.get("wild")
    if not wild or not wild["misclassified"]:
        return None
    from pixelforge.data.read import read_dataset
    from pixelforge.robustness.suite import input_spec

    manifest = read_dataset(wild["source"])
    spec = input_spec(saved_model)
    images, captions = [], []
    for item in wild["misclassified"][:limit]:
        images.append(spec.load(manifest, item["row"]))
        captions.append(f"{item['true']} → {item['predicted']}\n{item['confidence']:.0%}")
    return montage(images, captions)


# ---- writing ----------------------------------------------------------------------------------
def shift_montage(examples: dict) -> bytes | None:
    """Your images (top row) above training images (bottom row), as the model sees them."""
    wild, train = list(examples.get("wild") or []), list(examples.get("train") or [])
    if not wild or not train:
        return None
    columns = max(len(wild), len(train))
    images = wild + [np.full_like(train[0], 255)] * (columns - len(wild)) + train
    captions = ["your image"] * columns + ["training"] * len(train)
    return montage(images, captions, columns=columns)


def write_report(report: dict, out_dir, *, saved_model=None, example: np.ndarray | None = None,
                 shift_examples: dict | None = None) -> dict:
    """Write report.json, accuracy.png, examples.png, wild_misclassified.png, shift_examples.png and
    report.html into ``out_dir``; returns {kind: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    if report["corruptions"]:
        images["accuracy.png"] = plot_accuracy(report)
        if example is not None:
            images["examples.png"] = example_grid(example, report, seed=report.get("seed", 0))
    if saved_model is not None:
        mont = wild_montage(saved_model, report)
        if mont is not None:
            images["wild_misclassified.png"] = mont
    side_by_side = shift_montage(shift_examples) if shift_examples else None
    if side_by_side is not None:
        images["shift_examples.png"] = side_by_side
    paths = {}
    for name, data in images.items():
        paths[name] = str(_atomic_write(out / name, data))
    paths["report.json"] = str(_atomic_write(out / "report.json", json.dumps(report, indent=2).encode()))
    paths["report.html"] = str(_atomic_write(out / "report.html", render_html(report, images).encode()))
    return paths


def _pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.1%}"


def render_html(report: dict, images: dict[str, bytes]) -> str:
    e = html.escape
    sev = sorted({int(s) for entry in report["corruptions"].values() for s in entry["severities"]})
    head = "".join(f"<th>sev {s}</th>" for s in sev)
    rows = []
    for name, entry in report["corruptions"].items():
        cells = "".join(
            f"<td title='macro precision {_pct(entry['severities'][str(s)]['macro_precision'])}, "
            f"level {entry['severities'][str(s)]['level']}'>{_pct(entry['severities'][str(s)]['accuracy'])}</td>"
            if str(s) in entry["severities"] else "<td></td>" for s in sev
        )
        bad = " class='bad'" if entry["max_drop"] > report["threshold"] else ""
        rows.append(f"<tr{bad}><th>{e(name)}</th>{cells}<td>{_pct(entry['mean_accuracy'])}</td>"
                    f"<td>{_pct(entry['max_drop'])}</td><td class='desc'>{e(entry['description'])}</td></tr>")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>pixelforge wild test</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}"
        ".desc{text-align:left;color:#555}tr.bad th{color:#b00}code{background:#f3f3f3;padding:2px 4px}",
        "</style></head><body><h1>Testing in the wild</h1>",
        f"<p>{report['images']:,} test images ({e(str(report.get('split')))} split, seed {report['seed']}). "
        f"Clean accuracy <b>{_pct(report['clean']['accuracy'])}</b>, macro precision "
        f"{_pct(report['clean']['macro_precision'])}; mean accuracy over corruptions "
        f"<b>{_pct(report.get('mean_corrupted_accuracy'))}</b>.</p>",
        f"<h2>Accuracy per corruption and severity</h2><table><tr><th>corruption</th>{head}<th>mean</th>"
        f"<th>max drop</th><th>what it does</th></tr>{''.join(rows)}</table>",
    ]
    if report.get("not_applicable"):
        items = "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in report["not_applicable"].items())
        parts.append(f"<p>Not applicable to this data:</p><ul>{items}</ul>")
    for name, title in (("accuracy.png", "Accuracy against severity"), ("examples.png", "What the corruptions look like")):
        if name in images:
            data = base64.b64encode(images[name]).decode()
            parts.append(f"<h2>{title}</h2><img src='data:image/png;base64,{data}' style='max-width:100%'>")
    recs = report.get("recommendations") or []
    parts.append(f"<h2>Recommendations (accuracy drop above {report['threshold']:.0%})</h2>")
    if recs:
        from pixelforge.robustness.recommend import augment_spec

        items = "".join(
            f"<li><b>{e(r['corruption'])}</b> (drop {_pct(r['max_drop'])}): augment "
            f"<code>{e(augment_spec(r['augment']) or '—')}</code>; data: {e(r['data'])}</li>" for r in recs
        )
        parts.append(f"<ul>{items}</ul>")
        if report.get("train_command"):
            parts.append(f"<p>Retrain with:</p><pre><code>{e(report['train_command'])}</code></pre>")
        if report.get("train_command_gentle"):
            parts.append("<p>Many stacked augmentations can cost clean accuracy; the same at a quarter of the "
                         f"strength:</p><pre><code>{e(report['train_command_gentle'])}</code></pre>")
    else:
        parts.append("<p>None: no corruption costs more than the threshold.</p>")
    wild = report.get("wild")
    if wild:
        parts.append(
            f"<h2>Your own images: {e(wild['source'])}</h2><p>{wild['images']} images, accuracy "
            f"<b>{_pct(wild['accuracy'])}</b>, macro precision {_pct(wild['macro_precision'])}, "
            f"{len(wild['misclassified'])} misclassified.</p>"
        )
        if "wild_misclassified.png" in images:
            data = base64.b64encode(images["wild_misclassified.png"]).decode()
            parts.append(f"<img src='data:image/png;base64,{data}' style='max-width:100%'>")
    if report.get("shift"):
        parts.append(shift_html(report["shift"], images.get("shift_examples.png")))
    parts.append("</body></html>")
    return "\n".join(parts)


def _num(v: float) -> str:
    return f"{v:.3g}"


def _side(row: dict, side: str, spread: bool = True) -> str:
    """An axis on one side: median [p25, p75]; polarity, a yes/no per image, as the share of yeses."""
    v = row[side]
    if row["axis"] == "polarity":
        return f"{v['mean']:.0%} of images"
    return f"{_num(v['median'])} [{_num(v['p25'])}, {_num(v['p75'])}]" if spread else _num(v["median"])


def shift_html(shift: dict, examples_png: bytes | None) -> str:
    """The "how your images differ from the training data" section: axes, distances, examples."""
    e = html.escape
    rows = "".join(
        f"<tr{' class=bad' if r['differs'] else ''}><th>{e(r['axis'])}</th><td>{r['distance']:.2f}</td>"
        f"<td>{_side(r, 'train')}</td><td>{_side(r, 'wild')}</td>"
        f"<td>{_pct(r['outside'])}</td><td class='desc'>{e(r['description'])}</td>"
        f"<td class='desc'>{e(r['remedy']) if r['differs'] else ''}</td></tr>"
        for r in shift["axes"]
    )
    parts = [
        "<h2>How your images differ from the training data</h2>",
        f"<p><b>{e(shift['summary'])}</b>.</p>",
        f"<p>{shift['wild']['images']} of your images against {shift['train']['images']} training images, "
        f"measured at {shift['size'][0]}x{shift['size'][1]} (the model's input). <code>{e(shift['formula'])}</code>: "
        "W1 is the 1-Wasserstein distance of the two distributions, IQR the training set's interquartile "
        "range and unit the smallest difference that matters on the axis.</p>",
        "<table><tr><th>axis</th><th>distance</th><th>training median [p25, p75]</th>"
        "<th>yours median [p25, p75]</th><th>yours outside training's p1-p99</th><th>what it measures</th>"
        f"<th>what helps</th></tr>{rows}</table>",
    ]
    if examples_png:
        data = base64.b64encode(examples_png).decode()
        parts.append("<p>Your images (top) and training images (bottom), at the model's input size:</p>"
                     f"<img src='data:image/png;base64,{data}' style='max-width:100%'>")
    return "\n".join(parts)


def print_shift(shift: dict, console) -> None:
    """Rich table of the shift diagnosis, differing axes in red."""
    from rich.table import Table

    table = Table(title="how your images differ from the training data "
                        f"({shift['wild']['images']} yours vs {shift['train']['images']} training)")
    for column in ("axis", "distance", "training median", "yours median"):
        table.add_column(column, justify="left" if column == "axis" else "right", no_wrap=True)
    for r in shift["axes"]:
        colour = "red" if r["differs"] else "green"
        table.add_row(r["axis"], f"[{colour}]{r['distance']:.2f}[/]", _side(r, "train", False), _side(r, "wild", False))
    console.print(table)
    console.print(shift["summary"], highlight=False)
    for r in shift["axes"]:
        if r["differs"]:
            console.print(f"  [yellow]{r['axis']}[/]: {r['remedy']}", highlight=False)


def print_report(report: dict, console) -> None:
    """Rich console table: accuracy per corruption (rows) and severity (columns), drops in red."""
    from rich.table import Table

    from pixelforge.robustness.recommend import summarize

    clean = report["clean"]
    console.print(
        f"clean accuracy [bold]{clean['accuracy']:.1%}[/], macro precision {clean['macro_precision']:.1%} "
        f"on {report['images']:,} images; mean over corruptions "
        f"[bold]{_pct(report.get('mean_corrupted_accuracy'))}[/]"
    )
    sev = sorted({int(s) for entry in report["corruptions"].values() for s in entry["severities"]})
    table = Table(title="accuracy under corruption (macro precision at worst severity)")
    table.add_column("corruption", no_wrap=True)
    for s in sev:
        table.add_column(f"sev {s}", justify="right")
    table.add_column("max drop", justify="right")
    table.add_column("worst prec.", justify="right")
    for name, entry in report["corruptions"].items():
        cells = []
        for s in sev:
            v = entry["severities"].get(str(s))
            if v is None:
                cells.append("")
                continue
            colour = "red" if v["drop"] > report["threshold"] else "green"
            cells.append(f"[{colour}]{v['accuracy']:.1%}[/]")
        worst = min(entry["severities"].values(), key=lambda v: v["accuracy"])
        table.add_row(name, *cells, f"{entry['max_drop']:.1%}", f"{worst['macro_precision']:.1%}")
    console.print(table)
    for name, reason in report.get("not_applicable", {}).items():
        console.print(f"[dim]{name}: not applicable ({reason})[/]")
    if report.get("wild"):
        w = report["wild"]
        console.print(f"your images ({w['source']}): accuracy [bold]{w['accuracy']:.1%}[/], "
                      f"{len(w['misclassified'])} of {w['images']} misclassified")
    if report.get("shift"):
        print_shift(report["shift"], console)
    for line in summarize(report.get("recommendations") or []):
        console.print(f"[yellow]recommend[/] {line}")
    if report.get("train_command"):
        console.print(f"retrain: [cyan]{report['train_command']}[/]", soft_wrap=True, highlight=False)
    if report.get("train_command_gentle"):
        console.print("stacked augmentations can cost clean accuracy; a quarter-strength version: "
                      f"[cyan]{report['train_command_gentle']}[/]", soft_wrap=True, highlight=False)
