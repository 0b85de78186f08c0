"""Dataset audit: every rule of good training data checked, with HTML/JSON/console reports.

    from pixelforge import audit
    report = audit("data/", out="audit-out", checks="quality,duplicates")   # report.html + report.json

    from pixelforge.audit import run_audit, write_reports                   # the same, in two steps
    write_reports(run_audit("data/"), "audit-out")

The package itself is callable (``audit(...)`` is ``run_audit`` plus ``write_reports``), so the façade
name and the package are one object and ``pixelforge.audit.run_audit`` keeps working.
"""

from __future__ import annotations

import sys
import types

from pixelforge.audit.checks import CHECKS
from pixelforge.audit.findings import Finding
from pixelforge.audit.runner import AuditReport, run_audit


def write_reports(report, out_dir, **kwargs):
    from pixelforge.audit.report import write_reports as write

    return write(report, out_dir, **kwargs)


def audit(source, out=None, **options) -> AuditReport:
    """Audit ``source`` (any dataset source or a Manifest; options as ``run_audit``); with ``out``,
    also write report.html and report.json there."""
    report = run_audit(source, **options)
    if out is not None:
        write_reports(report, out)
    return report


class _CallableModule(types.ModuleType):
    def __call__(self, source, out=None, **options) -> AuditReport:
        return audit(source, out, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["CHECKS", "audit", "AuditReport", "Finding", "run_audit", "write_reports"]
