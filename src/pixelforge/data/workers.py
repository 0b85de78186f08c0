"""Worker pools, in one place: how many workers, which executor, ordered results, one-ahead prefetch.

Every parallel loop over images (decoding a Manifest, the audit's scan, the Keras drop-in's file
batches, streamed training data) goes through here:

- ``default_workers(cap)``: the CPUs this process may use, capped;
- ``make_executor(kind, workers, ...)``: threads (Pillow and OpenCV release the GIL; nothing is
  copied) or processes (forked when no other thread runs, else from a forkserver);
- ``ordered_map(fn, items, ...)``: ``fn(*context, item)`` for every item, results in item order, with
  at most ``ahead`` items in flight (memory stays bounded however many items there are); inline,
  without any pool, for one worker;
- ``prefetch(source, depth)``: run an iterator in a background thread, ``depth`` items ahead.

Worker processes end with their parent, however it ends (``die_with_parent``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from pixelforge.errors import ParameterError

KINDS = ("thread", "process", "ray")
MAX_WORKERS = 8
_STATE: dict = {}  # (fn, context) inside a worker process, set once by its initializer


def default_workers(cap: int = MAX_WORKERS) -> int:
    """The CPUs this process may run on (its affinity, else the CPU count), at most ``cap``."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cap, cpus))


def fork_is_safe() -> bool:
    """True when this is the only Python thread, so no other thread can be inside OpenCV (or hold any
    other lock) at the moment of the fork. Measured: a child forked while another thread resizes
    hangs in its first cv2.resize; forked from an idle process, it works."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def process_context(preload: Sequence[str] = ()):
    """fork when safe (fast, nothing to re-import); otherwise a forkserver, whose workers fork from a
    clean single-threaded server that has imported ``preload`` (the caller's script then needs an
    ``if __name__ == "__main__"`` guard)."""
    if fork_is_safe():
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *preload])
    return context


def make_executor(kind: str, workers: int, *, initializer=None, initargs=(), preload: Sequence[str] = ()) -> Executor:
    """A pool of ``workers`` threads or processes (``kind``: "thread" or "process")."""
    if kind == "process":
        return ProcessPoolExecutor(workers, mp_context=process_context(preload), initializer=initializer,
                                   initargs=initargs)
    if kind == "thread":
        return ThreadPoolExecutor(workers)
    raise ParameterError(f"worker kind must be one of {KINDS}, got {kind!r}")


def die_with_parent(owner: int) -> None:
    """Make this worker process end when its parent does, even on kill -9 of the parent (which runs no
    clean-up): otherwise it sleeps forever on a queue it shares with its siblings. Linux: the kernel
    sends SIGKILL when the parent goes (prctl PR_SET_PDEATHSIG); elsewhere a thread polls the parent."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # 1 = PR_SET_PDEATHSIG
                if not _running(owner):  # the owner went before the prctl: nobody would send the signal
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    parent = os.getppid()

    def watch():
        while os.getppid() == parent and _running(owner):
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="pixelforge-parent-watch").start()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _init_process(owner, fn, context) -> None:
    # no cv2.setNumThreads here: in a forked child it waits forever on the parent's pool (measured)
    die_with_parent(owner)
    _STATE["job"] = (fn, context)


def _call_in_process(item):
    fn, context = _STATE["job"]
    return fn(*context, item)


def ordered_map(fn: Callable, items: Iterable, *, workers: int = 1, kind: str = "thread", context: tuple = (),
                ahead: int | None = None, preload: Sequence[str] = (), group: int = 1) -> Iterator:
    """``fn(*context, item)`` for every item, yielded in item order, at most ``ahead`` (default
    ``4 * workers``) submitted and not yet yielded. One worker runs inline, without a pool.

    With processes, ``fn`` (a module-level function) and ``context`` go to each worker once, when it
    starts (inherited when forked), and only the items and results travel per task; ``preload``
    names the modules a forkserver imports up front. The pool is shut down when the iteration ends,
    fails, or is abandoned (queued tasks are cancelled). ``kind="ray"`` runs ``group`` items per
    Ray task, wherever Ray runs them (``ray_engine``; ``workers`` is then Ray's business)."""
    if kind == "ray":
        from pixelforge.data.ray_engine import ray_map

        yield from ray_map(fn, items, context=context, ahead=ahead or 8, group=group)
        return
    if workers <= 1:
        for item in items:
            yield fn(*context, item)
        return
    ahead = max(1, 4 * workers if ahead is None else ahead)
    if kind == "process":
        pool = make_executor(kind, workers, initializer=_init_process,
                             initargs=(os.getpid(), fn, context), preload=preload)

        def submit(item):
            return pool.submit(_call_in_process, item)
    else:
        pool = make_executor(kind, workers)

        def submit(item):
            return pool.submit(fn, *context, item)
    try:
        pending: deque = deque()
        todo = iter(items)
        for item in todo:
            pending.append(submit(item))
            if len(pending) >= ahead:
                break
        while pending:
            done = pending.popleft().result()
            for item in todo:  # refill one
                pending.append(submit(item))
                break
            yield done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def prefetch(source: Iterator, depth: int = 2) -> Iterator:
    """Run ``source`` in a background thread, at most ``depth`` items ahead of the consumer.

    Errors reach the consumer where the item would have been. When the consumer stops early, the
    thread stops too and closes ``source`` (so a generator's pools shut down)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in source:
                if not put(item):
                    break
            else:
                put(done)
        except BaseException as exc:  # hand the error to the consumer
            put(exc)
        finally:
            close = getattr(source, "close", None)
            if stop.is_set() and close is not None:
                close()

    thread = threading.Thread(target=produce, daemon=True, name="pixelforge-prefetch")
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
