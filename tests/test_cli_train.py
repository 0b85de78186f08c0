"""The train / cv / evaluate / predict / export / demo commands, end to end on tiny data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pixelforge.cli import app
from tests.conftest import write_png
from tests.train_helpers import one_thread, toy_images, toy_names  # noqa: F401 (autouse fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """root/{train,test}/<alpha|beta|gamma>/*.png — 12x12 grayscale toy images."""
    root = tmp_path_factory.mktemp("toy") / "toy"
    for split, seed, n in (("train", 0, 24), ("test", 1, 6)):
        x, y = toy_images(n_per_class=n, seed=seed)
        for i, (img, name) in enumerate(zip(x, toy_names(y), strict=True)):
            write_png(root / split / name / f"{i:03d}.png", img[:, :, 0])
    return root


@pytest.fixture(scope="module")
def trained(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "toy"
    result = runner.invoke(app, ["train", str(tree), "--out", str(out), "--epochs", "3", "--batch-size", "16",
                                 "--seed", "1", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_the_run_folder(trained):
    for name in ("model.json", "model.safetensors", "metrics.json", "history.json", "curves.png", "log.csv",
                 "checkpoint/last.json", "checkpoint/last.safetensors"):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["metrics"]["test_accuracy"] > 0.9
    assert metrics["train_images"] == 57 and metrics["validation_images"] == 15  # 20% hold-out of train
    assert metrics["metrics"]["test_images"] == 18  # the test split is only scored, never used to choose
    assert json.loads((trained / "model.json").read_text())["metrics"]["test_accuracy"] > 0.9


def test_train_refuses_to_overwrite_a_run_and_resumes_with_resume(trained, tree):
    again = runner.invoke(app, ["train", str(tree), "--out", str(trained), "--epochs", "3"])
    assert again.exit_code == 2 and "--resume" in again.output
    more = runner.invoke(app, ["train", str(tree), "--out", str(trained), "--epochs", "4", "--batch-size", "16",
                               "--seed", "1", "--resume", "--json"])
    assert more.exit_code == 0, more.output
    assert json.loads((trained / "checkpoint" / "last.json").read_text())["epochs_done"] == 4


@pytest.mark.parametrize("args,message", [
    (["--model", "nope"], "valid models"),
    (["--optimizer", "adagrad"], "valid optimizers"),
    (["--schedule", "sometimes"], "valid schedules"),
    (["--size", "2", "--model", "cnn"], "small"),
])
def test_bad_training_options_are_one_line_errors(tree, tmp_path, args, message):
    result = runner.invoke(app, ["train", str(tree), "--out", str(tmp_path / "r"), "--epochs", "1", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_evaluate_writes_metrics_confusion_and_mistakes(trained, tree, tmp_path):
    result = runner.invoke(app, ["evaluate", str(trained), str(tree), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 18 and report["accuracy"] > 0.9
    assert set(report["per_class"]) == {"alpha", "beta", "gamma"}
    assert np.asarray(report["confusion_matrix"]).sum() == 18
    for name in ("metrics.json", "confusion.png", "confusion.txt", "mistakes.png"):
        assert (tmp_path / name).is_file()
    assert "true \\ predicted" in (tmp_path / "confusion.txt").read_text()


def test_evaluate_refuses_a_dataset_with_classes_the_model_lacks(trained, tmp_path):
    write_png(tmp_path / "data" / "zebra" / "a.png", np.zeros((12, 12), np.uint8))
    result = runner.invoke(app, ["evaluate", str(trained), str(tmp_path / "data")])
    assert result.exit_code == 2 and "does not know: zebra" in result.output


def test_predict_png_and_a_large_colour_jpeg(trained, tree, tmp_path):
    png = next((tree / "test" / "beta").glob("*.png"))
    gray = np.asarray(Image.open(png))
    colour = Image.fromarray(np.repeat(np.kron(gray, np.ones((20, 20), np.uint8))[:, :, None], 3, axis=2))
    jpeg = tmp_path / "big colour.jpg"
    colour.save(jpeg, quality=95)  # 240x240 RGB: the model's preprocessing must make it 12x12 gray
    result = runner.invoke(app, ["predict", str(trained), str(png), str(jpeg), "--json"])
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)
    assert first["prediction"] == "beta" and second["prediction"] == "beta"
    assert any("grayscale" in note for note in second["notes"])
    text = runner.invoke(app, ["predict", str(trained), str(tree / "test" / "alpha"), "-k", "2"])
    assert text.exit_code == 0 and text.output.count("alpha") >= 6


def test_predict_reports_unreadable_and_missing_inputs(trained, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    result = runner.invoke(app, ["predict", str(trained), str(bad)])
    assert result.exit_code == 2 and "broken.png" in result.output
    missing = runner.invoke(app, ["predict", str(trained), str(tmp_path / "nope.jpg")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_export_onnx_matches_torch(trained, tmp_path):
    import onnxruntime

    from pixelforge.train import load_model

    path = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(trained), "--onnx", str(path)])
    assert result.exit_code == 0, result.output
    model = load_model(trained)
    x = torch.rand(5, *model.input_shape)
    expected = model.network(x).detach().numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": x.numpy()})[0], expected, rtol=1e-4, atol=1e-4)


def test_cv_reports_mean_and_std_with_curves_and_box_plot(tree, tmp_path):
    result = runner.invoke(app, ["cv", str(tree), "--folds", "3", "--epochs", "2", "--batch-size", "16",
                                 "--out", str(tmp_path), "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["per_fold"]) == 3 and report["images"] == 72
    assert report["summary"].startswith("accuracy: ") and "±" in report["summary"]
    assert report["accuracy_mean"] == pytest.approx(np.mean([f["accuracy"] for f in report["per_fold"]]))
    for name in ("cv.json", "curves.png", "boxplot.png", "fold1/curves.png", "fold3/history.json"):
        assert (tmp_path / name).is_file(), name


def test_train_lr_find_suggests_a_rate(tree, tmp_path):
    result = runner.invoke(app, ["train", str(tree), "--out", str(tmp_path), "--lr-find", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["suggested_lr"] > 0
    assert (tmp_path / "lr_find.png").is_file()


def test_demo_short_run_trains_evaluates_and_predicts(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["evaluation"]["accuracy"] > 0.5
    assert len(report["predictions"]) == 6 and all("prediction" in p for p in report["predictions"])
    assert (tmp_path / "demo" / "evaluation" / "confusion.png").is_file()


@pytest.mark.slow
def test_demo_command_as_shipped(tmp_path):
    """The real `pixelforge demo` (default settings) in a fresh process, as a new user runs it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-m", "pixelforge.cli", "demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout
    assert (tmp_path / "runs" / "demo" / "model.json").is_file()


def test_train_from_an_hdf5_store_reads_it_in_blocks(tree, tmp_path):
    store = tmp_path / "toy.h5"
    converted = runner.invoke(app, ["convert", str(tree), str(store), "--size", "12", "--channels", "1"])
    assert converted.exit_code == 0, converted.output
    result = runner.invoke(app, ["train", str(store), "--out", str(tmp_path / "run"), "--epochs", "2",
                                 "--batch-size", "16", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["train_images"] == 57 and summary["metrics"]["test_accuracy"] > 0.8


def test_predict_fetches_http_urls(trained, tree, tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path / "cache"))
    png = next((tree / "test" / "gamma").glob("*.png"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(png.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{png.name}"
        result = runner.invoke(app, ["predict", str(trained), url, "--json"])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(result.stdout)
    assert prediction["source"] == url and prediction["prediction"] == "gamma"


def test_evaluate_notes_colour_images_converted_for_a_grayscale_model(trained, tree, tmp_path):
    (tmp_path / "colour" / "alpha").mkdir(parents=True)
    for png in sorted((tree / "test" / "alpha").glob("*.png"))[:3]:
        gray = np.asarray(Image.open(png))
        Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2)).save(tmp_path / "colour" / "alpha" / png.name)
    result = runner.invoke(app, ["evaluate", str(trained), str(tmp_path / "colour"), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    assert "converted to grayscale" in result.output


def test_train_with_progress_bar_prints_the_metrics_and_run_folder(tree, tmp_path):
    result = runner.invoke(app, ["train", str(tree), "--out", str(tmp_path / "run"), "--epochs", "2",
                                 "--batch-size", "16", "--threads", "1", "--schedule", "onecycle",
                                 "--early-stopping", "5", "--monitor", "val_accuracy"])
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.output and "test_accuracy" in result.output
    assert f"run folder: {tmp_path / 'run'}" in result.output.replace("\n", "")


def test_fixed_threads_reaches_the_trainer(tree, tmp_path, monkeypatch):
    from pixelforge.train import trainer as trainer_module

    seen = []
    original = trainer_module.Trainer.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("adaptive_threads"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.Trainer, "__init__", spy)
    for flag, expected in (([], True), (["--fixed-threads"], False)):
        out = tmp_path / f"run{len(seen)}"
        result = runner.invoke(app, ["train", str(tree), "--out", str(out), "--epochs", "1", "--batch-size", "16",
                                     "--threads", "2", *flag])
        assert result.exit_code == 0, result.output
        assert seen[-1] is expected
