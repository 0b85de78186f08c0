"""Audit reports: ``report.json`` (every finding with image paths), a self-contained ``report.html``
(images inline as base64 PNG, every value HTML-escaped) and a rich console summary."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.audit.checks import CHECKS
from pixelforge.audit.findings import Finding

MAX_THUMBS = 24  # thumbnails shown per finding (the JSON lists every image)
MAX_GROUPS = 8
MONTAGE = 16  # images per class montage
CHECK_TITLES = {
    "stats": "Summary statistics", "size": "Dataset size", "imbalance": "Class balance",
    "integrity": "File integrity", "quality": "Image quality", "duplicates": "Duplicates and leakage",
    "variation": "Variation within classes", "shortcut": "Background shortcut", "labels": "Label errors",
}


def _plain(value):
    """numpy scalars/arrays → JSON-able Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _image_entry(report, i: int, finding: Finding) -> dict:
    m = report.manifest
    entry = {"path": m.describe(i), "location": m.locations[i], "label": m.labels[i], "split": m.splits[i]}
    if i in finding.notes:
        entry["note"] = finding.notes[i]
    return entry


def report_dict(report) -> dict:
    """Everything in report.json: summary, every finding with its images' paths, statistics."""
    m = report.manifest
    extras = {k: v for k, v in report.extras.items() if k != "stats"}
    stats = {k: v for k, v in report.extras.get("stats", {}).items() if k != "mean_std_images"}
    return _plain({
        "source": m.source,
        "layout": m.layout,
        "images": len(m),
        "decoded": int(report.scan.ok.sum()),
        "classes": list(m.classes),
        "counts_by_split": m.counts_by_split(),
        "sample": report.sample,
        "checks": report.checks,
        "severity_counts": report.counts(),
        "findings": [
            {
                "check": f.check, "code": f.code, "severity": f.severity, "title": f.title,
                "message": f.message, "recommendation": f.recommendation, "classes": f.classes,
                "values": f.values, "count": len(f.images),
                "images": [_image_entry(report, i, f) for i in f.images],
                "groups": [[m.describe(i) for i in g] for g in f.groups],
            }
            for f in report.findings
        ],
        "stats": stats,
        "details": extras,
        "timings_s": {k: round(v, 3) for k, v in report.timings.items()},
    })


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(report, out_dir, *, html_report: bool = True) -> dict[str, Path]:
    """Write report.json (and report.html) into ``out_dir``, each atomically (temp file, rename)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json"}
    _atomic_write(paths["json"], json.dumps(report_dict(report), indent=2).encode())
    if html_report:
        paths["html"] = out / "report.html"
        _atomic_write(paths["html"], render_html(report).encode("utf-8"))
    return paths


# ---- HTML ------------------------------------------------------------------------------------
def _png(arr: np.ndarray) -> str:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _thumb(report, i: int, caption: str) -> str:
    scan = report.scan
    title = _esc(report.manifest.describe(i))
    if scan.ok[i]:
        img = f'<img class="thumb" src="{_png(scan.thumbs[i])}" alt="{title}">'
    else:
        img = '<div class="thumb broken">unreadable</div>'
    return f'<figure title="{title}">{img}<figcaption>{_esc(caption)}</figcaption></figure>'


def _finding_html(report, f: Finding) -> str:
    m = report.manifest
    parts = [
        f'<div class="finding {f.severity}"><h3><span class="badge {f.severity}">{_esc(f.severity)}</span> '
        f"{_esc(f.title)} <code>{_esc(f.check)}.{_esc(f.code)}</code></h3>",
        f"<p>{_esc(f.message)}</p>",
        f'<p class="rec">&#8594; {_esc(f.recommendation)}</p>',
    ]
    if f.classes:
        parts.append("<p>classes: " + ", ".join(f"<b>{_esc(c)}</b>" for c in f.classes) + "</p>")
    if f.groups:
        for g in f.groups[:MAX_GROUPS]:
            figs = "".join(_thumb(report, i, f"{m.labels[i]} · {m.splits[i] or '-'} · {m.locations[i]}") for i in g[:8])
            parts.append(f'<div class="group">{figs}</div>')
        if len(f.groups) > MAX_GROUPS:
            parts.append(f"<p class='more'>… {len(f.groups) - MAX_GROUPS} more group(s) in report.json</p>")
    elif f.images:
        figs = "".join(
            _thumb(report, i, f.notes.get(i) or f"{m.labels[i]} · {m.locations[i]}") for i in f.images[:MAX_THUMBS]
        )
        parts.append(f'<div class="thumbs">{figs}</div>')
        if len(f.images) > MAX_THUMBS:
            parts.append(f"<p class='more'>… {len(f.images) - MAX_THUMBS} more image(s) in report.json</p>")
    if f.values:
        shown = json.dumps(_plain(f.values), default=str)
        if len(shown) > 1500:
            shown = shown[:1500] + " …"
        parts.append(f"<details><summary>values</summary><pre>{_esc(shown)}</pre></details>")
    parts.append("</div>")
    return "".join(parts)


def _montages(report, seed: int = 0) -> str:
    m, scan = report.manifest, report.scan
    labels = m.label_indices()
    rng = np.random.default_rng(seed)
    figs = []
    for k, name in enumerate(m.classes):
        rows = np.flatnonzero(scan.ok & (labels == k))
        if not len(rows):
            continue
        pick = np.sort(rng.choice(rows, min(MONTAGE, len(rows)), replace=False))
        t, c = scan.thumb, scan.channels
        grid = np.full((4 * t, 4 * t, c), 255, np.uint8)
        for j, r in enumerate(pick):
            y, x = divmod(j, 4)
            grid[y * t : (y + 1) * t, x * t : (x + 1) * t] = scan.thumbs[r]
        figs.append(
            f'<figure class="montage"><img src="{_png(grid)}" alt="montage of {_esc(name)}">'
            f"<figcaption>{_esc(name)} ({len(rows):,})</figcaption></figure>"
        )
    return "".join(figs)


def _mean_std(report) -> str:
    images = report.extras.get("stats", {}).get("mean_std_images", {})
    out = []
    for name, (mean, std) in images.items():
        scale = 255.0 / max(float(std.max()), 1e-6)
        std_img = np.clip(std * scale, 0, 255).astype(np.uint8)
        out.append(
            f'<figure class="stat"><img src="{_png(np.clip(mean, 0, 255).astype(np.uint8))}" alt="mean {_esc(name)}">'
            f'<img src="{_png(std_img)}" alt="std {_esc(name)}"><figcaption>{_esc(name)}: mean · std</figcaption></figure>'
        )
    return "".join(out)


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{margin-bottom:.2em} section{margin:2em 0;border-top:2px solid #ddd}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th:first-child,td:first-child,#summary td,#summary th{text-align:left}
.finding{border-left:6px solid #999;padding:.3em 1em;margin:1em 0;background:#fafafa}
.finding.error{border-color:#c62828}.finding.warning{border-color:#f9a825}.finding.info{border-color:#1565c0}
.badge{color:#fff;padding:1px 6px;border-radius:4px;font-size:.8em;text-transform:uppercase}
.badge.error{background:#c62828}.badge.warning{background:#f9a825;color:#222}.badge.info{background:#1565c0}
.rec{font-style:italic} code{color:#555;font-size:.8em}
.thumbs,.group,.montages,.stats{display:flex;flex-wrap:wrap;gap:6px}
.group{border:1px dashed #aaa;padding:4px;margin:4px 0}
figure{margin:0;text-align:center;font-size:10px;max-width:110px;overflow-wrap:anywhere}
img.thumb{width:64px;height:64px;image-rendering:pixelated;border:1px solid #ccc}
.thumb.broken{width:64px;height:64px;background:#fdd;display:flex;align-items:center;justify-content:center}
figure.montage{max-width:none} figure.montage img{width:256px;image-rendering:pixelated}
figure.stat{max-width:none} figure.stat img{width:96px;image-rendering:pixelated;margin:2px}
"""


def render_html(report) -> str:
    m = report.manifest
    counts = report.counts()
    by_split = m.counts_by_split()
    head = "".join(f"<th>{_esc(s)}</th>" for s in by_split)
    rows = "".join(
        f"<tr><td>{_esc(c)}</td>" + "".join(f"<td>{by_split[s][c]:,}</td>" for s in by_split) + "</tr>"
        for c in m.classes
    )
    summary_rows = "".join(
        f'<tr><td><span class="badge {f.severity}">{_esc(f.severity)}</span></td>'
        f'<td><a href="#check-{_esc(f.check)}">{_esc(f.check)}</a></td><td>{_esc(f.title)}</td></tr>'
        for f in report.findings
    )
    sections = []
    for name in report.checks:
        found = [f for f in report.findings if f.check == name]
        body = "".join(_finding_html(report, f) for f in found) or "<p>No findings.</p>"
        if name == "stats":
            body += f'<h3>Mean and standard-deviation images</h3><div class="stats">{_mean_std(report)}</div>'
        sections.append(
            f'<section id="check-{_esc(name)}" class="check"><h2>{_esc(CHECK_TITLES.get(name, name))}</h2>{body}</section>'
        )
    sample = f" (seeded sample of {report.sample['size']:,} of {report.sample['of']:,})" if report.sample else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pixelforge audit: {_esc(m.source)}</title>
<style>{CSS}</style></head><body>
<h1>Dataset audit</h1>
<p><b>{_esc(m.source)}</b> · layout {_esc(m.layout)} · {len(m):,} images{_esc(sample)} · {m.num_classes} classes ·
{int(report.scan.ok.sum()):,} decoded</p>
<p id="severity-counts">{counts['error']} error(s) · {counts['warning']} warning(s) · {counts['info']} info</p>
<section id="overview"><h2>Images per class and split</h2><table><tr><th>class</th>{head}</tr>{rows}</table>
<h2>Findings</h2><table id="summary"><tr><th>severity</th><th>check</th><th>finding</th></tr>{summary_rows}</table></section>
<section id="montages"><h2>Class montages</h2><div class="montages">{_montages(report)}</div></section>
{''.join(sections)}
<footer><p>checks run: {_esc(', '.join(report.checks))} · available: {_esc(', '.join(CHECKS))}</p></footer>
</body></html>
"""


# ---- console ---------------------------------------------------------------------------------
def print_console(report, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    m = report.manifest
    c = report.counts()
    console.print(
        f"[bold]audit[/] {escape(m.source)}: {len(m):,} images, {m.num_classes} classes — "
        f"[red]{c['error']} error(s)[/], [yellow]{c['warning']} warning(s)[/], [blue]{c['info']} info[/]"
    )
    table = Table(show_lines=False)
    for col in ("severity", "check", "finding", "images"):
        table.add_column(col, overflow="fold")
    colour = {"error": "red", "warning": "yellow", "info": "blue"}
    for f in report.findings:
        table.add_row(
            f"[{colour[f.severity]}]{f.severity}[/]", escape(f.check), escape(f.title),
            f"{len(f.images):,}" if f.images else "",
        )
    console.print(table)
    for f in report.findings:
        if f.severity == "error":
            console.print(f"[red]{escape(f.title)}[/]: {escape(f.recommendation)}")
