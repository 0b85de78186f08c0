"""kill -9 at any moment: `convert`, `train` and `augment --out` are started as processes and killed at
random points. Afterwards the output either does not exist or is complete and valid, no worker process
outlives the killed command, the next run cleans the temporary files and ends complete, and
`train --resume` ends with the same weights as a run that was never interrupted.

The default suite kills convert and augment at two seeded moments each; ``-m slow`` adds train, and
kills every command at twenty moments (``TALLY`` is printed: what each kill left behind).
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pixelforge.data.decode import decode_image
from pixelforge.datasets.shapes import make_shapes
from tests.test_faults import processes_in_group

PIXELFORGE = str(Path(sys.executable).parent / "pixelforge")
QUICK_SEEDS = [0, 1]
SLOW_SEEDS = list(range(20))
TRAIN = ["--model", "dnn", "--size", "16", "--epochs", "3", "--threads", "1", "--fixed-threads", "--seed", "0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PIXELFORGE, *argv], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def kill_at(argv: list[str], cwd: Path, delay: float) -> int:
    """Start the command, SIGKILL it (the command alone, not its workers) after ``delay`` seconds, and
    check that none of its processes is left once it is gone; returns its exit status."""
    process = subprocess.Popen([PIXELFORGE, *argv], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        process.wait(timeout=delay)  # finished before the kill: fine, the output must then be complete
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 10
    while processes_in_group(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = processes_in_group(process.pid)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"{argv[0]}: worker processes outlived the killed command"
    return process.returncode


TALLY: dict[str, dict[str, int]] = {}


def tally(command: str, **seen: bool) -> None:
    counts = TALLY.setdefault(command, {})
    counts["runs"] = counts.get("runs", 0) + 1
    for name, value in seen.items():
        counts[name] = counts.get(name, 0) + int(value)


def partials(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.partial")) + sorted(folder.rglob("*.next.safetensors"))


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = run(argv, cwd)
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - start


# ---- convert ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many_images(tmp_path_factory) -> Path:
    """4,400 tiny PNGs: enough that convert decodes with worker processes."""
    root = tmp_path_factory.mktemp("many") / "shapes"
    make_shapes(1100, size=16, write_to=root)
    return root


def check_store(path: Path, images: int) -> None:
    with h5py.File(path, "r") as f:
        assert f.attrs["pixelforge_store"] == 1
        assert len(f["images"]) == len(f["labels"]) == len(f["sources"]) == images
        assert f["images"][-1].any()


def kill_convert(root: Path, work: Path, seed: int) -> None:
    out = work / "store.h5"
    full = timed(["convert", str(root), str(out)], work)
    out.unlink()
    delay = random.Random(seed).uniform(0, full * 1.1)
    status = kill_at(["convert", str(root), str(out)], work, delay)
    tally("convert", killed=status == -signal.SIGKILL, output_there=out.exists(), partial_left=bool(partials(work)))
    if out.exists():
        check_store(out, 4400)
    assert run(["convert", str(root), str(out)], work).returncode == 0
    check_store(out, 4400)
    assert partials(work) == []


@pytest.mark.parametrize("seed", QUICK_SEEDS)
def test_convert_killed_at_any_moment_leaves_no_half_store_and_no_workers(many_images, tmp_path, seed):
    kill_convert(many_images, tmp_path, seed)


# ---- augment ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def few_images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("few") / "shapes"
    make_shapes(12, size=16, write_to=root)
    return root


def augmented_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def kill_augment(root: Path, work: Path, seed: int, reference: tuple[dict[str, bytes], float]) -> None:
    reference, seconds = reference
    out = work / "aug"
    delay = random.Random(seed).uniform(0.2 * seconds, seconds)  # mostly while it writes
    status = kill_at(["augment", str(root), "--out", str(out), "--per-image", "3"], work, delay)
    tally("augment", killed=status == -signal.SIGKILL, csv_there=(out / "manifest.csv").exists(),
          partial_left=out.exists() and bool(partials(out)))
    if out.exists():
        for name, data in augmented_files(out).items():  # every file there is a whole image
            assert decode_image(data, name=name).size
        if (out / "manifest.csv").exists():
            with open(out / "manifest.csv", newline="") as handle:
                assert len(list(csv.reader(handle))) == len(reference) + 1
    assert run(["augment", str(root), "--out", str(out), "--per-image", "3"], work).returncode == 0
    assert augmented_files(out) == reference  # the same files, no second copies beside the first run's
    assert partials(out) == []


@pytest.fixture(scope="module")
def augment_reference(few_images, tmp_path_factory) -> tuple[dict[str, bytes], float]:
    out = tmp_path_factory.mktemp("aug-ref") / "aug"
    seconds = timed(["augment", str(few_images), "--out", str(out), "--per-image", "3"], out.parent)
    return augmented_files(out), seconds


@pytest.mark.parametrize("seed", QUICK_SEEDS)
def test_augment_killed_at_any_moment_leaves_whole_images_and_the_rerun_the_same_files(
        few_images, augment_reference, tmp_path, seed):
    kill_augment(few_images, tmp_path, seed, augment_reference)


# ---- train --------------------------------------------------------------------------------------------
def weights(run_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def train_reference(few_images, tmp_path_factory) -> tuple[dict, float]:
    work = tmp_path_factory.mktemp("train-ref")
    seconds = timed(["train", str(few_images), "--out", str(work / "run"), *TRAIN], work)
    return weights(work / "run"), seconds


def kill_train(root: Path, work: Path, seed: int, reference: tuple[dict, float]) -> None:
    expected, seconds = reference
    run_dir = work / "run"
    delay = random.Random(seed).uniform(0.3 * seconds, seconds)  # the first ~30% is Python starting
    status = kill_at(["train", str(root), "--out", str(run_dir), *TRAIN], work, delay)
    resumable = (run_dir / "checkpoint" / "last.json").exists()
    tally("train", killed=status == -signal.SIGKILL, resumed=resumable,
          partial_left=run_dir.exists() and bool(partials(run_dir)))
    result = run(["train", str(root), "--out", str(run_dir), *TRAIN, *(["--resume"] if resumable else [])], work)
    assert result.returncode == 0, result.stderr
    got = weights(run_dir)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert partials(run_dir) == []


@pytest.mark.slow  # ~20 s: a reference run, a killed run and its resumption, each starting torch
@pytest.mark.parametrize("seed", QUICK_SEEDS[:1])
def test_train_killed_at_any_moment_resumes_to_the_same_weights(few_images, train_reference, tmp_path, seed):
    kill_train(few_images, tmp_path, seed, train_reference)


# ---- the long version ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_command_killed_at_twenty_moments(many_images, few_images, augment_reference, train_reference,
                                                tmp_path):
    for seed in SLOW_SEEDS:
        for name in ("convert", "augment", "train"):
            work = tmp_path / f"{name}-{seed}"
            work.mkdir()
            if name == "convert":
                kill_convert(many_images, work, seed)
            elif name == "augment":
                kill_augment(few_images, work, seed, augment_reference)
            else:
                kill_train(few_images, work, seed, train_reference)
            shutil.rmtree(work)
    print("kill -9 tally:", TALLY)
