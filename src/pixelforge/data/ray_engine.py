"""Ray as the engine for the parallel loops over images (``--engine ray`` on convert and audit).

The loops stay the same (``workers.ordered_map``): the items are grouped into tasks of ``group``
items, each task runs ``fn(*context, item)`` over its group on a Ray worker, and the driver takes
the results back in item order, with at most ``ahead`` tasks in flight so memory stays bounded. The
context (the Manifest and the Preprocess spec) goes into Ray's object store once, not with every
task. The driver does the merging it does for threads and processes (the HDF5 writes, the audit's
checks), so a Ray run writes the same store and the same report as a local one.

Ray is optional (``pip install pixelforge[ray]``). ``start(address)`` connects to a cluster
(``"auto"``: the one ``ray start`` runs on this machine; ``"ray://host:10001"``: a remote one) or,
without an address, starts Ray locally on ``num_cpus`` CPUs.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from pixelforge.errors import PixelforgeError

ENGINES = ("local", "ray")
_STARTED_HERE = [False]  # whether start() launched Ray in this process (rather than joining a cluster)


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise PixelforgeError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def _ray():
    try:
        import ray
    except ImportError:
        raise PixelforgeError("--engine ray needs Ray: pip install 'pixelforge[ray]'") from None
    return ray


def start(address: str | None = None, num_cpus: int | None = None) -> dict:
    """Connect to Ray (or start it here) once; returns what it runs on (for the report)."""
    ray = _ray()
    if not ray.is_initialized():
        options = {"address": address} if address else {
            "num_cpus": num_cpus or os.cpu_count() or 1,
            # a local start: a small object store (batches are consumed as they come) and no dashboard
            "object_store_memory": 512 << 20, "include_dashboard": False}
        try:
            ray.init(ignore_reinit_error=True, log_to_driver=False, configure_logging=False, **options)
            _STARTED_HERE[0] = not address
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise PixelforgeError(f"could not start {where}: {exc}") from None
    resources = ray.cluster_resources()
    return {"engine": "ray", "address": address or "local", "cpus": int(resources.get("CPU", 0)),
            "nodes": len([n for n in ray.nodes() if n.get("Alive")])}


def stop() -> None:
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()
    _STARTED_HERE[0] = False


def release() -> None:
    """After the parallel pass: stop a Ray this process started (its services and idle workers hold
    about 1 GB and some CPU that the driver's own work then gets); a cluster connection stays."""
    if _STARTED_HERE[0]:
        stop()


def _run_group(fn, context, items):
    return [fn(*context, item) for item in items]


def ray_map(fn: Callable, items: Iterable, *, context: tuple = (), ahead: int = 8, group: int = 1) -> Iterator:
    """``fn(*context, item)`` for every item on Ray, yielded in item order (see the module's docstring)."""
    ray = _ray()
    if not ray.is_initialized():
        start()
    remote = ray.remote(_run_group).options(max_retries=1)
    shared = ray.put(context)
    todo = iter(items)
    pending: deque = deque()

    def submit() -> bool:
        chunk = [item for _, item in zip(range(group), todo, strict=False)]
        if chunk:
            pending.append(remote.remote(fn, shared, chunk))
        return bool(chunk)

    try:
        while len(pending) < max(1, ahead) and submit():
            pass
        while pending:
            results = ray.get(pending.popleft())
            submit()
            yield from results
    finally:
        for ref in pending:  # abandoned or failed: do not leave work running
            ray.cancel(ref, force=True)
