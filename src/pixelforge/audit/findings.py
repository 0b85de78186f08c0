"""What an audit produces: findings (severity, evidence, recommendation) gathered in a report."""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelforge.errors import ParameterError

SEVERITIES = ("error", "warning", "info")
SEVERITY_RANK = {"error": 2, "warning": 1, "info": 0}


@dataclass
class Finding:
    """One thing the audit noticed.

    ``images`` are row indices into the audited Manifest (turned into paths in the reports);
    ``groups`` holds sets of rows that belong together (duplicates); ``values`` the measured numbers.
    """

    check: str
    code: str
    severity: str
    title: str
    message: str
    recommendation: str
    images: list[int] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)
    groups: list[list[int]] = field(default_factory=list)
    # per-image notes shown next to thumbnails, e.g. "suggested: circle" (row index -> text)
    notes: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ParameterError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        self.images = [int(i) for i in self.images]


def at_or_above(findings: list[Finding], level: str) -> list[Finding]:
    if level not in SEVERITY_RANK:
        raise ParameterError(f"--fail-on must be one of {SEVERITIES[:2]}, got {level!r}")
    return [f for f in findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK[level]]


def flagged_locations(findings: list[Finding], manifest, *, check: str | None = None, code: str | None = None) -> set[str]:
    """Manifest locations of every image flagged by the findings matching ``check``/``code``."""
    out: set[str] = set()
    for f in findings:
        if (check is None or f.check == check) and (code is None or f.code == code):
            out.update(manifest.locations[i] for i in f.images)
    return out
