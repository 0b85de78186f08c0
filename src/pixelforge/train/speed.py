"""CPU training settings that matter for speed.

``auto_threads``: torch's OpenMP threads wait for each other at every operation; when another
  process holds a core, a 2-thread step can take 10-30x longer than a 1-thread one. So the CLI uses
only the cores that are idle now (by the 1-minute load average), at least one.

``ThreadTuner``: while training runs, times steps on all the threads and on one, and keeps the
  faster. On the 2-vCPU dev machine there are phases, minutes long, in which two busy threads run far
  slower than one (a 2-thread step at 0.6x the speed of a 1-thread step: 8,200 vs 14,000 images/s at
  batch 32, against 1.45x otherwise), while either vCPU alone stays fast — what the host does with two
  busy vCPUs (SMT siblings, a CPU quota) is not visible from inside. Phases come and go without
  notice, so the tuner probes again every few seconds.

``tune_malloc``: glibc serves allocations over 128 KiB-32 MiB with fresh ``mmap`` pages and returns
them on free, so every training step page-faults its activations in again. Raising the mmap and trim
thresholds keeps them in the heap for reuse (measured +15-60% images/s for fmnist_baseline).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import statistics
import time
from collections.abc import Callable

PRECISIONS = ("fp32", "bf16", "auto")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # CPU features that run bfloat16 matrix products natively


def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX-512 BF16): there bf16 autocast is
    2-3x the fp32 speed; elsewhere it is emulated and slower, so "auto" keeps fp32."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in BF16_FLAGS)


def resolve_precision(precision: str) -> str:
    """"fp32" or "bf16" for a requested precision ("auto": bf16 where the CPU has it natively)."""
    if precision not in PRECISIONS:
        from pixelforge.errors import ParameterError

        raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def auto_threads() -> int:
    cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (OSError, AttributeError):
        return cpus
    return max(1, min(cpus, int(cpus - busy + 0.5)))


_MALLOC_TUNED = False
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Raise glibc's mmap/trim thresholds once per process; False where glibc is not the allocator."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok


class ThreadTuner:
    """Chooses between ``threads`` and 1 thread from step times measured during training.

    Call ``step_done()`` after every training step and ``close()`` at the end (restores ``threads``).
    A probe times ``probe_steps`` steps on each setting (after ``settle_steps`` not timed, as the
    thread pool wakes) and keeps the faster by its median step; one thread must be at least ``margin``
    faster to be chosen (noise should not flip it), and the 1-thread half stops early once it is
    clearly slower. Probes cost at most about 1/``budget`` of the time: the next one comes
    ``every_s`` seconds later, or ``budget`` times the last probe's duration if that is longer, and the
    wait doubles (up to 8x) while the decision stays the same. ``every_s`` = 1 s catches a slow phase
    that starts mid-fit within seconds (at 4 s a short fit never saw a second probe); a probe's extra
    cost is its few 1-thread steps (~7 ms at batch 32), under 1% at that rate. ``pause()`` before work that is not a
    training step (validation): it abandons a probe under way and restores the chosen count. With
    ``threads`` <= 1 it does nothing. Float results can differ slightly between thread counts, so a
    run that switches is not bit-reproducible (single-threaded runs are).
    """

    def __init__(self, threads: int, *, probe_steps: int = 8, settle_steps: int = 2, every_s: float = 1.0,
                 margin: float = 0.05, budget: float = 20.0,
                 set_threads: Callable[[int], None] | None = None, clock: Callable[[], float] = time.perf_counter):
        import torch

        self.threads = int(threads)
        self.probe_steps, self.settle_steps, self.every_s, self.margin = probe_steps, settle_steps, every_s, margin
        self.budget = budget
        self._set = set_threads or torch.set_num_threads
        self._clock = clock
        self.current = self.chosen = self.threads
        self.decisions: list[int] = []  # the thread count each probe chose
        self._plan: list[int] = []  # thread counts still to time in this probe
        self._times: dict[int, list[float]] = {}
        self._skip = 0
        self._last: float | None = None
        self._probe_start = 0.0
        self._wait = every_s
        self._next_probe = clock()  # the first probe starts at once
        self.active = self.threads > 1

    def step_done(self) -> None:
        if not self.active:
            return
        now = self._clock()
        step_time, self._last = (None if self._last is None else now - self._last), now
        if not self._plan:
            if now >= self._next_probe:
                self._plan, self._times, self._probe_start = [self.threads, 1], {}, now
                self._use(self.threads)
            return
        if self._skip:
            self._skip -= 1
            return
        if step_time is None:
            return
        setting = self._plan[0]
        times = self._times.setdefault(setting, [])
        times.append(step_time)
        if setting == 1 and len(times) >= 3:
            many = statistics.median(self._times[self.threads])
            if statistics.median(times) > 1.5 * many:  # clearly slower: no need to finish timing it
                self._decide(now)
                return
        if len(times) >= self.probe_steps:
            self._plan.pop(0)
            if self._plan:
                self._use(self._plan[0])
            else:
                self._decide(now)

    def _use(self, threads: int, settle: bool = True) -> None:
        """Run on ``threads``; with ``settle`` the next steps are not timed (the pool wakes up)."""
        if threads != self.current:
            self._set(threads)
            self.current = threads
        self._skip = self.settle_steps if settle else 0

    def _decide(self, now: float) -> None:
        many, one = (statistics.median(self._times[t]) for t in (self.threads, 1))
        best = 1 if one < many * (1 - self.margin) else self.threads
        self._wait = min(self._wait * 2, self.every_s * 8) if best == self.chosen and self.decisions else self.every_s
        self.decisions.append(best)
        self.chosen = best
        self._plan = []
        self._use(best, settle=False)
        self._next_probe = now + max(self._wait, self.budget * (now - self._probe_start))

    def pause(self) -> None:
        """The next step follows other work: do not time the gap, and leave no probe half done."""
        self._last = None
        if self._plan:
            self._plan = []
            self._use(self.chosen, settle=False)
            self._next_probe = self._clock()  # probe again from the next step

    def close(self) -> None:
        if self.active and self.current != self.threads:
            self._set(self.threads)
            self.current = self.threads
        self._plan, self._last = [], None
