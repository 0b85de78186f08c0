"""Thread count for CPU training.

``auto_threads``: torch's OpenMP threads wait for each other at every operation; when another
  process holds a core, a 2-thread step can take 10-30x longer than a 1-thread one. So the CLI uses
only the cores that are idle now (by the 1-minute load average), at least one.
"""

from __future__ import annotations

import os


def auto_threads() -> int:
    cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (OSError, AttributeError):
        return cpus
    return max(1, min(cpus, int(cpus - busy + 0.5)))
