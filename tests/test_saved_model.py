"""Saved models: round trip, own preprocessing on any image, and refusal of damaged or tampered files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from pixelforge.train import Trainer, load_model
from pixelforge.train.saved import sha256_file
from tests.train_helpers import toy_images, toy_names


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    x, y = toy_images(size=12)
    trainer = Trainer("fmnist_baseline", Preprocess(standardize="global"), seed=0, verbose=False)
    trainer.fit((x, toy_names(y)), epochs=2, batch_size=16)
    folder = tmp_path_factory.mktemp("run")
    trainer.save(folder, metrics={"note": "test"})
    return folder, trainer, x


@pytest.fixture
def copy(run, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("model.json", "model.safetensors"):
        (folder / name).write_bytes((run[0] / name).read_bytes())
    return folder


def test_round_trip_gives_identical_predictions_and_metadata(run):
    folder, trainer, x = run
    model = load_model(folder)
    np.testing.assert_array_equal(model.predict_arrays(x), trainer.predict(x))
    doc = json.loads((folder / "model.json").read_text())
    assert doc["architecture"]["name"] == "fmnist_baseline"
    assert doc["input_shape"] == [1, 12, 12]
    assert doc["classes"] == ["alpha", "beta", "gamma"]
    assert doc["preprocess"]["standardize"] == "global" and doc["preprocess"]["mean"] is not None
    assert doc["pixelforge_version"] and doc["metrics"] == {"note": "test"}
    assert load_model(folder / "model.json").classes == model.classes


def test_predict_arrays_applies_the_models_own_resize_and_channels(run):
    folder, trainer, x = run
    model = load_model(folder)
    big_colour = np.repeat(np.kron(x[:4], np.ones((3, 3, 1), dtype=np.uint8)), 3, axis=3)  # 36x36 RGB
    probs = model.predict_arrays(big_colour)
    assert probs.shape == (4, 3)
    assert any("converted to grayscale" in note for note in model.notes)
    np.testing.assert_array_equal(probs.argmax(1), trainer.predict(x[:4]).argmax(1))
    mixed = [big_colour[0], x[1], big_colour[2, :20, :30]]  # a list of different sizes works too
    assert model.predict_arrays(mixed).shape == (3, 3)


def test_missing_files_are_named(copy):
    (copy / "model.safetensors").unlink()
    with pytest.raises(PixelforgeError, match="weights file is missing"):
        load_model(copy)
    with pytest.raises(PixelforgeError, match="not found"):
        load_model(copy / "elsewhere")


def test_modified_weights_are_refused(copy):
    path = copy / "model.safetensors"
    tensors = load_file(str(path))
    key = next(iter(tensors))
    tensors[key] = tensors[key] + 1
    save_file(tensors, str(path))
    with pytest.raises(PixelforgeError, match="SHA-256 differs"):
        load_model(copy)


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.update(format="pickle"), "not a pixelforge model"),
    (lambda d: d["architecture"].update(name="__import__('os')"), "unknown model"),
    (lambda d: d.update(input_shape="1x12x12"), "input_shape"),
    (lambda d: d.update(classes=["a", "b"]), "num_classes"),
    (lambda d: d["architecture"].update(params={"filters": {"__class__": [1]}}), "filters"),
    (lambda d: d.update(weights={"file": "../../etc/passwd", "sha256": "0"}), "weights must name"),
    (lambda d: d["preprocess"].update(resize="explode"), "invalid preprocess"),
])
def test_tampered_model_json_is_refused(copy, edit, message):
    doc = json.loads((copy / "model.json").read_text())
    edit(doc)
    (copy / "model.json").write_text(json.dumps(doc))
    with pytest.raises(PixelforgeError, match=message):
        load_model(copy)


def test_not_json_is_refused(copy):
    (copy / "model.json").write_text("{not json")
    with pytest.raises(PixelforgeError, match="not valid JSON"):
        load_model(copy)


def test_class_count_mismatch_between_json_and_weights_is_explained(copy):
    doc = json.loads((copy / "model.json").read_text())
    doc["classes"] = ["a", "b", "c", "d"]
    doc["num_classes"] = 4
    (copy / "model.json").write_text(json.dumps(doc))
    assert sha256_file(copy / "model.safetensors") == doc["weights"]["sha256"]
    with pytest.raises(PixelforgeError, match="class count"):
        load_model(copy)


def test_knn_run_saved_before_byte_codes_loads_through_load_model(tmp_path):
    """A knn run folder written before the uint8 codes (train_x float32 only) still loads and predicts."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (30, 6, 6, 1), dtype=np.uint8), np.arange(30) % 3
    trainer = Trainer("knn", model_params={"k": 1}, seed=0, verbose=False)
    trainer.fit((x, y), epochs=1, batch_size=8)
    folder = tmp_path / "run"
    trainer.save(folder)
    tensors = load_file(str(folder / "model.safetensors"))
    assert tensors["train_codes"].dtype == torch.uint8 and len(tensors["train_x"]) == 0
    old = {"train_x": tensors["train_values"][tensors["train_codes"].long()], "train_sq": tensors["train_sq"],
           "train_y": tensors["train_y"]}
    save_file(old, str(folder / "model.safetensors"))
    doc = json.loads((folder / "model.json").read_text())
    doc["weights"]["sha256"] = sha256_file(folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps(doc))
    np.testing.assert_array_equal(load_model(folder).predict_arrays(x).argmax(1), y)
