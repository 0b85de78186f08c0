"""Dataset audit: every rule of good training data checked, with HTML/JSON/console reports.

    from pixelforge.audit import run_audit, write_reports
    report = run_audit("data/", checks="quality,duplicates")
    write_reports(report, "audit-out")   # report.html + report.json
"""

from __future__ import annotations

from pixelforge.audit.checks import CHECKS
from pixelforge.audit.findings import Finding
from pixelforge.audit.runner import AuditReport, run_audit


def write_reports(report, out_dir, **kwargs):
    from pixelforge.audit.report import write_reports as write

    return write(report, out_dir, **kwargs)


__all__ = ["CHECKS", "AuditReport", "Finding", "run_audit", "write_reports"]
