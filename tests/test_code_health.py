"""The review's bugs (issue 19), each shown on tiny data, and the façade API at the package root."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import pixelforge
from pixelforge.cli import app
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from tests.train_helpers import one_thread, toy_images, toy_names  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


# ---- Trainer.fit never changes the caller's Preprocess ---------------------------------------------
def test_two_trainers_sharing_one_spec_fit_their_own_statistics():
    spec = Preprocess(standardize="channel")
    dark, _ = toy_images(seed=1)
    bright = (255 - dark).astype(np.uint8)
    y = toy_names(toy_images(seed=1)[1])
    first = pixelforge.Trainer("dnn", spec, model_params={"nodes": [8]}, verbose=False)
    first.fit((dark, y), epochs=1)
    second = pixelforge.Trainer("dnn", spec, model_params={"nodes": [8]}, verbose=False)
    second.fit((bright, y), epochs=1)
    assert spec.mean is None and spec.std is None  # the caller's spec is a parameter, untouched
    assert first.preprocess.mean[0] == pytest.approx(dark.mean() / 255, rel=1e-4)
    assert second.preprocess.mean[0] == pytest.approx(bright.mean() / 255, rel=1e-4)


def test_trainer_config_round_trips_and_rejects_unknown_keys():
    trainer = pixelforge.Trainer("cnn", Preprocess(size=(12, 12), channels=1), optimizer="adam", lr=0.003,
                                 schedule="cosine", augment="horizontal_flip", seed=5, verbose=False)
    config = trainer.get_config()
    again = pixelforge.Trainer.from_config(config)
    assert again.get_config() == config
    with pytest.raises(PixelforgeError, match="did you mean 'seed'"):
        pixelforge.Trainer.from_config({**config, "sede": 1})


def test_class_weight_changes_the_loss_like_keras():
    x, y = toy_images()
    plain = pixelforge.Trainer("dnn", model_params={"nodes": [8]}, seed=0, verbose=False)
    weighted = pixelforge.Trainer("dnn", model_params={"nodes": [8]}, seed=0, verbose=False)
    a = plain.fit((x, y), epochs=1, shuffle=False).history["loss"][0]
    b = weighted.fit((x, y), epochs=1, shuffle=False, class_weight={0: 5.0}).history["loss"][0]
    assert a != pytest.approx(b)
    with pytest.raises(PixelforgeError, match="balanced"):
        pixelforge.Trainer("dnn", verbose=False).fit((x, y), epochs=1, class_weight="equal")


# ---- the CLI: user errors are one line (exit 2), bugs say so (exit 3) and --debug shows them --------
def _raise(exc):
    def boom(*_args, **_kwargs):
        raise exc

    return boom


def test_user_errors_are_one_line_with_exit_code_2(monkeypatch):
    monkeypatch.setattr("pixelforge.data.read.read_dataset", _raise(PixelforgeError("data.csv: no label column")))
    result = CliRunner().invoke(app, ["info", "x"])
    assert result.exit_code == 2 and "data.csv: no label column" in result.output
    assert "Traceback" not in result.output


def test_internal_errors_are_not_passed_off_as_user_errors(monkeypatch):
    monkeypatch.delenv("PIXELFORGE_DEBUG", raising=False)
    monkeypatch.setattr("pixelforge.data.read.read_dataset", _raise(ValueError("cannot reshape array")))
    result = CliRunner().invoke(app, ["info", "x"])
    assert result.exit_code == 3
    assert "internal error" in result.output and "--debug" in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setattr("pixelforge.data.read.read_dataset", _raise(KeyError("oops")))
    result = CliRunner().invoke(app, ["--debug", "info", "x"])
    assert isinstance(result.exception, KeyError)  # raised through, so the traceback prints
    monkeypatch.setenv("PIXELFORGE_DEBUG", "1")
    result = CliRunner().invoke(app, ["info", "x"])
    assert isinstance(result.exception, KeyError)


# ---- a backslash is part of a file name on POSIX ----------------------------------------------------
@pytest.mark.skipif(os.sep == "\\", reason="a backslash separates folders on Windows")
def test_file_names_with_a_backslash_are_read(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for name in ("plain.png", "odd\\name.png"):
            Image.fromarray(np.full((4, 4), 90, np.uint8)).save(tmp_path / cls / name)
    manifest = pixelforge.read_dataset(tmp_path)
    assert len(manifest) == 4 and not manifest.skipped
    assert manifest.load(manifest.locations.index("cat/odd\\name.png")).shape[:2] == (4, 4)


# ---- a killed convert's partial file is cleaned up by the next run ----------------------------------
def test_stale_partial_files_of_dead_processes_are_removed(tmp_path):
    from pixelforge.data.store import write_store
    from pixelforge.datasets import load_fashion_sample

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".store.h5.{dead.pid}.x1y2z3.partial"
    stale.write_bytes(b"half an HDF5 file")
    alive = tmp_path / f".store.h5.{os.getpid()}.other.partial"  # a write in progress: left alone
    alive.write_bytes(b"in progress")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_store(load_fashion_sample("test").subset(np.arange(20)), tmp_path / "store.h5")
    assert not stale.exists() and alive.exists()
    assert any("unfinished file" in str(w.message) and stale.name in str(w.message) for w in caught)
    assert (tmp_path / "store.h5").exists()


# ---- help texts and metadata say only what is true --------------------------------------------------
def test_help_texts_name_only_commands_that_exist():
    runner = CliRunner()
    texts = [runner.invoke(app, [*cmd, "--help"]).output for cmd in
             (["train"], ["cv"], ["demo"], ["models"], ["audit"], ["evaluate"])]
    assert not any("models list" in text for text in texts)


def test_the_demo_time_in_help_matches_the_readme():
    help_text = CliRunner().invoke(app, ["demo", "--help"]).output
    said = re.search(r"about (\d+) s", help_text)
    assert said, help_text
    assert f"~{said.group(1)} s" in (ROOT / "README.md").read_text()


def test_pyproject_cites_only_files_in_the_repository():
    text = (ROOT / "pyproject.toml").read_text()
    for name in re.findall(r"[\w./-]+\.(?:md|txt|rst)\b", text):
        assert (ROOT / name).exists(), f"pyproject.toml cites {name}, which is not in the repository"


# ---- the façade ---------------------------------------------------------------------------------------
def test_the_facade_names_resolve_to_the_library_objects():
    from pixelforge import Pipeline, Preprocess, Trainer, audit, load_model, read_dataset, train_test_split
    from pixelforge.audit import run_audit
    from pixelforge.augment.pipeline import Pipeline as PipelineClass
    from pixelforge.train.saved import load_model as load

    assert Pipeline is PipelineClass and load_model is load and Trainer.__name__ == "Trainer"
    assert callable(audit) and audit.run_audit is run_audit  # the audit package is callable
    assert callable(read_dataset) and callable(train_test_split) and Preprocess().size is None


def test_pipeline_config_round_trips():
    pipe = pixelforge.Pipeline.from_spec("rotation_range=15,horizontal_flip")
    assert pixelforge.Pipeline.from_config(pipe.get_config()).get_config() == pipe.get_config()


def test_audit_and_evaluate_through_the_facade(tmp_path):
    from pixelforge.datasets import load_fashion_sample

    data = load_fashion_sample()
    small = data.subset(np.arange(0, len(data), 12))
    report = pixelforge.audit(small, out=tmp_path / "audit", checks="size,integrity")
    assert (tmp_path / "audit" / "report.json").exists() and report.findings
    train, test = pixelforge.train_test_split(small, seed=0)
    trainer = pixelforge.Trainer("dnn", pixelforge.Preprocess(size=(28, 28), channels=1), verbose=False)
    trainer.fit(train, epochs=1)
    trainer.save(tmp_path / "run")
    metrics = pixelforge.load_model(tmp_path / "run").evaluate(small)
    assert metrics["images"] == len(test) and 0 <= metrics["accuracy"] <= 1
