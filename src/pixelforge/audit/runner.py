"""``run_audit``: read (or take) a Manifest, scan it once, run the selected checks, return a report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from pixelforge.audit.checks import CHECKS, get_check
from pixelforge.audit.context import AuditContext
from pixelforge.audit.findings import SEVERITY_RANK, Finding, at_or_above
from pixelforge.audit.scan import Scan, scan_manifest
from pixelforge.data.manifest import Manifest
from pixelforge.data.ray_engine import check_engine
from pixelforge.data.split import group_ids
from pixelforge.errors import ParameterError, PixelforgeError


@dataclass
class AuditReport:
    manifest: Manifest
    scan: Scan
    findings: list[Finding]
    checks: list[str]
    extras: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sample: dict | None = None

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITY_RANK, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out

    def failing(self, level: str | None) -> list[Finding]:
        return [] if level in (None, "", "none") else at_or_above(self.findings, level)

    def by_check(self, check: str, code: str | None = None) -> list[Finding]:
        return [f for f in self.findings if f.check == check and (code is None or f.code == code)]


def parse_checks(checks) -> list[str]:
    if checks is None or checks == "" or checks == "all":
        return list(CHECKS)
    names = [c.strip() for c in (checks.split(",") if isinstance(checks, str) else checks) if c.strip()]
    unknown = [c for c in names if c not in CHECKS]
    if unknown:
        raise PixelforgeError(f"unknown check(s) {unknown}; expected some of {', '.join(CHECKS)}")
    return [c for c in CHECKS if c in names]  # canonical order


def check_backbone_options(options: dict) -> None:
    """A zoo backbone without weights would give random features: refuse it before the long scan."""
    from pixelforge.train.transfer import source_model_config

    backbone = options.get("backbone")
    if backbone and source_model_config(str(backbone)) is None and not options.get("backbone_weights"):
        raise ParameterError(f"backbone={backbone}: a zoo backbone needs its pre-trained weights "
                             "(-o backbone_weights=FILE|URL|hf://…), or give a pixelforge model folder; "
                             "random features cannot judge images")


def run_audit(
    source,
    *,
    checks=None,
    sample: int | None = None,
    seed: int = 0,
    options: dict | None = None,
    layout: str = "auto",
    progress: bool | object = False,
    workers: int = 2,
    thumb: int | None = None,
    group_column: str | None = None,
    curation=None,
    engine: str = "local",
) -> AuditReport:
    """Audit a dataset (any source ``read_dataset`` takes, or a Manifest).

    checks: names or a comma-separated string (default: all of ``CHECKS``); sample: audit a seeded
    random sample of that many images; options: per-check settings (e.g. ``{"label_epochs": 10}``);
    progress: True for rich progress bars on stderr, or a rich Progress to add tasks to.
    group_column: a metadata column (e.g. the photographer); a group with images in two splits is leakage.
    curation: a ``pixelforge browse`` decisions file: applied to the data (unless the Manifest was read
    with it), and the findings say which of their images are already decided.
    engine: "ray" decodes and measures the images in Ray tasks (``data.ray_engine``); the checks run here
    on the merged scan, so the report is the one a local run gives.
    """
    names = parse_checks(checks)
    if isinstance(source, Manifest):
        manifest = source
        if curation is not None and not _curated(manifest, curation):
            from pixelforge.browse.curation import apply_curation

            manifest = apply_curation(manifest, curation)
    else:
        from pixelforge.data.read import read_dataset

        manifest = read_dataset(source, layout=layout, curation=curation)
    if len(manifest) == 0:
        raise PixelforgeError("the dataset has no images to audit")
    sample_info = None
    if sample and sample < len(manifest):
        rows = np.sort(np.random.default_rng(seed).choice(len(manifest), int(sample), replace=False))
        sample_info = {"of": len(manifest), "size": int(sample), "seed": seed}
        manifest = manifest.subset(rows)
    groups = group_ids(manifest, group_column)  # an unknown column fails here, before the long scan
    check_backbone_options(options or {})
    bar, owned = _progress(progress)
    timings: dict[str, float] = {}
    try:
        start = time.perf_counter()
        scan = scan_manifest(manifest, thumb=thumb, workers=workers, progress=bar,
                             kind="ray" if check_engine(engine) == "ray" else "thread")
        if engine == "ray":  # the checks run here, on the merged scan
            from pixelforge.data.ray_engine import release

            release()
        timings["scan"] = time.perf_counter() - start
        ctx = AuditContext(manifest, scan, options=dict(options or {}), seed=seed, progress=bar,
                           group_column=group_column, groups=groups)
        findings: list[Finding] = []
        overall = bar.add_task("checks", total=len(names)) if bar else None
        for name in names:
            start = time.perf_counter()
            findings += _run_check(name, ctx)
            timings[name] = time.perf_counter() - start
            if bar:
                bar.update(overall, advance=1, description=f"checks ({name} done)")
    finally:
        if owned:
            bar.stop()
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], names.index(f.check) if f.check in names else 99))
    if curation is not None:
        from pixelforge.browse.curation import mark_decided

        mark_decided(findings, manifest, curation)
    return AuditReport(manifest, scan, findings, names, ctx.extras, timings, sample_info)


def _curated(manifest: Manifest, curation) -> bool:
    """Whether the Manifest was read with this curation file already (its note says so)."""
    from pathlib import Path

    return any(note.startswith(f"curation {Path(curation).name}:") for note in manifest.notes)


def _run_check(name: str, ctx: AuditContext) -> list[Finding]:
    """One check's findings; a check that fails becomes an error finding, so the others still report
    (--debug or PIXELFORGE_DEBUG=1 raises instead, for the traceback)."""
    from pixelforge.errors import debugging

    try:
        return get_check(name)(ctx)
    except PixelforgeError as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug in one check must not hide every other finding
        if debugging():
            raise
        reason = f"internal error ({type(exc).__name__}: {exc}); this is a bug in pixelforge"
    return [Finding(name, "check_failed", "error", f"The {name} check could not run", reason,
                    "Run again with PIXELFORGE_DEBUG=1 for the traceback and report it, or skip the check "
                    "with --checks.")]


def _progress(progress):
    if progress is False or progress is None:
        return None, False
    if progress is True:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True))
        bar.start()
        return bar, True
    return progress, False
