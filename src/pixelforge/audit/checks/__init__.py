"""The audit's checks, one module per family; each is ``check_<name>(ctx) -> list[Finding]``."""

from __future__ import annotations

import importlib

# name -> (module, function); run in this order (stats first so reports always have it)
CHECKS = {
    "stats": ("pixelforge.audit.checks.stats", "check_stats"),
    "size": ("pixelforge.audit.checks.size", "check_size"),
    "imbalance": ("pixelforge.audit.checks.size", "check_imbalance"),
    "integrity": ("pixelforge.audit.checks.integrity", "check_integrity"),
    "quality": ("pixelforge.audit.checks.quality", "check_quality"),
    "duplicates": ("pixelforge.audit.checks.duplicates", "check_duplicates"),
    "variation": ("pixelforge.audit.checks.variation", "check_variation"),
    "shortcut": ("pixelforge.audit.checks.shortcut", "check_shortcut"),
    "labels": ("pixelforge.audit.checks.labels", "check_labels"),
}


def get_check(name: str):
    module, func = CHECKS[name]
    return getattr(importlib.import_module(module), func)
