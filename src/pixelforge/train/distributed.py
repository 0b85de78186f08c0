"""Data-parallel training with torch.distributed: the ranks, their part of the data, the reductions.

``torchrun --nproc-per-node N -m pixelforge train …`` (or ``pixelforge train --nproc N``, which
launches it) starts N processes with RANK / WORLD_SIZE / MASTER_ADDR in their environment; the
Trainer then joins the process group (gloo on CPU, NCCL on GPU) and wraps its network in
DistributedDataParallel.

What each rank does:
- its part of the data is fixed for the run: the rows sorted by class, shuffled within each class
  by the seed, dealt round-robin — so parts differ by at most one image and keep the class mix,
  every image belongs to exactly one rank, and a rank decodes (and caches) only its own part;
- each epoch shuffles that part with ``default_rng([seed, epoch, rank])``; ``--batch-size`` is the
  global batch, each rank taking ``ceil(batch / world)`` of it, so one process and N processes
  take about the same number of optimizer steps; DDP's ``join`` absorbs a last step that only
  some ranks have;
- loss and accuracy sums, standardization statistics and validation scores are summed over ranks,
  so every rank sees the same logs (and early stopping decides the same everywhere);
- only rank 0 writes the run folder (checkpoints, logs, curves, the model).
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
from dataclasses import dataclass

import numpy as np
import torch

from pixelforge.errors import PixelforgeError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def chief(self) -> bool:
        return self.rank == 0


def setup(device: str = "cpu") -> Ranks:
    """Join the process group torchrun describes in the environment (once); one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_available():
        raise PixelforgeError("this torch build has no torch.distributed; train with one process")
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        except (RuntimeError, ValueError) as exc:
            raise PixelforgeError(f"could not join the process group ({backend}): {exc}") from None
    return Ranks(dist.get_rank(), dist.get_world_size())


def teardown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_rows(labels: np.ndarray, ranks: Ranks, seed: int) -> np.ndarray:
    """The rows of rank ``ranks.rank``: stratified, seeded, disjoint, together all rows (sorted)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 7919])
    shuffled = rng.permutation(len(labels))
    order = shuffled[np.argsort(labels[shuffled], kind="stable")]  # by class, random within a class
    return np.sort(order[ranks.rank :: ranks.world])


def local_batch_size(batch_size: int, ranks: Ranks) -> int:
    return max(1, -(-int(batch_size) // ranks.world))


def all_sum(values, ranks: Ranks) -> np.ndarray:
    """Elementwise sum of a float64 array over the ranks (the array itself with one process)."""
    array = np.asarray(values, dtype=np.float64)
    if not ranks.active:
        return array
    import torch.distributed as dist

    tensor = torch.from_numpy(array.copy())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.numpy()


def all_max(value: int, ranks: Ranks) -> int:
    if not ranks.active:
        return int(value)
    import torch.distributed as dist

    tensor = torch.tensor([int(value)], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def barrier(ranks: Ranks) -> None:
    if ranks.active:
        import torch.distributed as dist

        dist.barrier()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(nproc: int, argv: list[str]) -> int:
    """``pixelforge train … --nproc N``: run the same command in N processes on this machine
    (what ``torchrun --nproc-per-node N --master-addr 127.0.0.1 -m pixelforge …`` does, on a free
    port) and return 0, or fail with one line naming the rank that failed (its error is above)."""
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise PixelforgeError(f"--nproc must be 1 or more, got {nproc}")
    # each rank gets an equal share of the cores unless the user chose
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # we say what failed
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="static", rdzv_endpoint=f"127.0.0.1:{free_port()}",
                          rdzv_configs={"rank": 0, "timeout": 900}, max_restarts=0, start_method="spawn")
    try:
        elastic_launch(config, sys.executable)("-m", "pixelforge", *argv)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()  # the root cause; the agent then stops the other ranks
        code = f"signal {-failure.exitcode}" if failure.exitcode < 0 else f"code {failure.exitcode}"
        raise PixelforgeError(f"data-parallel training failed: rank {rank} exited with {code} "
                              "(its error is printed above); after a kill, rerun the command with --resume") from None
    return 0


def strip_nproc(argv: list[str]) -> list[str]:
    """The command line without ``--nproc N`` / ``--nproc=N`` (what each rank runs)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out
