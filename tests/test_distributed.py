"""Data-parallel training (train.distributed): the ranks' parts, what each epoch shows them, who
writes the run folder, the launcher, and (slow) accuracy and resume-after-kill on the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pixelforge.train.distributed import Ranks, free_port, local_batch_size, rank_rows, strip_nproc

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "pixelforge" / "datasets" / "fashion_sample.npz"


def test_rank_rows_are_disjoint_stratified_and_cover_everything():
    labels = np.repeat(np.arange(5), [40, 31, 7, 3, 19])
    parts = [rank_rows(labels, Ranks(r, 3), seed=4) for r in range(3)]
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(labels)))  # each row in exactly one part
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    for k in range(5):  # each class split as evenly as it can be
        counts = [int((labels[p] == k).sum()) for p in parts]
        assert max(counts) - min(counts) <= 1, (k, counts)
    assert np.array_equal(parts[1], rank_rows(labels, Ranks(1, 3), seed=4))
    assert not np.array_equal(parts[1], rank_rows(labels, Ranks(1, 3), seed=5))


def test_local_batch_is_a_share_of_the_global_batch_and_nproc_is_stripped():
    assert local_batch_size(64, Ranks(0, 2)) == 32
    assert local_batch_size(65, Ranks(1, 2)) == 33
    assert local_batch_size(1, Ranks(1, 4)) == 1
    assert strip_nproc(["train", "d", "--nproc", "2", "--epochs", "3", "--nproc=4"]) == ["train", "d", "--epochs", "3"]


def _run_ranks(tmp_path, world, epochs=3, batch_size=16, run_dirs=None):
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        run_dir = (run_dirs or {}).get(rank, tmp_path / "run")
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.ddp_worker", str(tmp_path / f"rank{rank}.json"),
                                       str(run_dir), str(epochs), str(batch_size)], cwd=ROOT, env=env))
    for proc in procs:
        assert proc.wait(timeout=180) == 0
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]


def test_two_ranks_see_every_image_once_per_epoch_share_metrics_and_only_rank0_writes(tmp_path):
    results = _run_ranks(tmp_path, 2, run_dirs={0: tmp_path / "run", 1: tmp_path / "rank1-run"})
    assert [r["world"] for r in results] == [2, 2]
    for epoch in range(3):
        seen = results[0]["seen"][epoch] + results[1]["seen"][epoch]
        assert sorted(seen) == list(range(120)), f"epoch {epoch + 1}: not every image exactly once"
        assert len(set(results[0]["seen"][epoch])) == 60
    assert results[0]["seen"][0] != results[0]["seen"][1]  # reshuffled each epoch
    logs = [{k: v for k, v in r["history"].items() if k != "seconds"} for r in results]
    assert logs[0] == logs[1]  # loss and accuracy are reduced over the ranks
    assert results[0]["mean"] == results[1]["mean"]  # statistics of the whole training data
    (tmp_path / "single").mkdir()
    single = _run_ranks(tmp_path / "single", 1)
    assert np.allclose(results[0]["mean"], single[0]["mean"], rtol=0, atol=1e-6)
    assert (tmp_path / "run" / "checkpoint").is_dir() and (tmp_path / "run" / "log.csv").is_file()
    assert not (tmp_path / "rank1-run").exists(), "a rank other than 0 wrote to its run folder"
    assert results[0]["history"]["val_accuracy"][-1] > 0.6


def _train_cli(out, *extra, nproc=2, timeout=600):
    command = [sys.executable, "-m", "pixelforge", "train", str(SAMPLE), "--out", str(out), "--model", "cnn",
               "--batch-size", "64", "--seed", "1", "--json", *extra]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cli_nproc_2_matches_one_process_and_is_reproducible(tmp_path):
    one = _train_cli(tmp_path / "one", "--epochs", "4", nproc=1)
    two = _train_cli(tmp_path / "two", "--epochs", "4")
    again = _train_cli(tmp_path / "again", "--epochs", "4")
    for result in (one, two, again):
        assert result.returncode == 0, result.stderr[-2000:]
    acc_one = json.loads(one.stdout)["metrics"]["val_accuracy"]
    acc_two = json.loads(two.stdout)["metrics"]["val_accuracy"]
    assert abs(acc_one - acc_two) < 0.05, (acc_one, acc_two)
    assert (tmp_path / "two" / "model.safetensors").read_bytes() == (tmp_path / "again" / "model.safetensors").read_bytes()


def _rank_pids(parent: int) -> dict[int, int]:
    """Worker pids under a launcher, by their RANK."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) != parent:
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(entry.name)
    return found


@pytest.mark.slow
def test_resume_after_one_rank_is_killed(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "pixelforge", "train", str(SAMPLE), "--out", str(out), "--model", "cnn",
               "--epochs", "6", "--batch-size", "64", "--nproc", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    last = out / "checkpoint" / "last.json"
    while not last.exists() and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.2)
    ranks = _rank_pids(launcher.pid)
    assert 1 in ranks, "no rank 1 process found under the launcher"
    os.kill(ranks[1], signal.SIGKILL)
    _, stderr = launcher.communicate(timeout=300)
    assert launcher.returncode != 0
    assert "rank 1 exited with signal 9" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr.split("data-parallel training failed")[-1]
    done = json.loads(last.read_text())["epochs_done"]
    assert 1 <= done < 6
    resumed = subprocess.run(command + ["--resume", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["epochs_run"] == 6
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 6


def test_device_choice(tmp_path):
    import torch

    from pixelforge.errors import ParameterError
    from pixelforge.train.trainer import Trainer, resolve_device
    from tests.train_helpers import toy_images

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParameterError, match="must be cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="sees no CUDA GPU"):
            Trainer("dnn", device="cuda")
    x, y = toy_images(20)
    trainer = Trainer("dnn", device="auto", verbose=False, seed=1)
    trainer.fit((x, y), epochs=1, batch_size=16)
    trainer.save(tmp_path / "run")
    training = json.loads((tmp_path / "run" / "model.json").read_text())["training"]
    assert training["device"] == str(resolve_device("auto")) and training["processes"] == 1
    assert Trainer.from_config(trainer.get_config()).requested_device == "auto"
