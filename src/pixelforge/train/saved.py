"""Saved models: ``model.safetensors`` (weights) + ``model.json`` (everything needed to rebuild them).

Loading executes no code from the files: the JSON is validated field by field, the architecture is
looked up by name in the model zoo, the weights are plain tensors (safetensors), and their SHA-256 must
match the one recorded in the JSON, so a swapped or edited weights file is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pixelforge import __version__
from pixelforge.atomic import sha256_file
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from pixelforge.train.files import atomic_path, write_json

FORMAT = "pixelforge-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"



def save_model(run_dir, network: torch.nn.Module, *, classes, preprocess: Preprocess, augment=None,
               metrics: dict | None = None, training: dict | None = None) -> Path:
    """Write the model to ``run_dir`` (weights first, then the JSON that vouches for them)."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    config = getattr(network, "config", None)
    if not config or "name" not in config:
        raise PixelforgeError("only models built by pixelforge.models.build_model can be saved")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in network.state_dict().items()}
    with atomic_path(run_dir / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        digest = sha256_file(tmp)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pixelforge_version": __version__,
        "architecture": {"name": config["name"], "params": config.get("params", {})},
        "input_shape": [int(v) for v in config["input_shape"]],
        "num_classes": len(classes),
        "classes": [str(c) for c in classes],
        "preprocess": preprocess.to_dict(),
        "augment": augment,
        "metrics": metrics or {},
        "training": training or {},
        "weights": {"file": WEIGHTS_FILE, "sha256": digest},
    }
    write_json(run_dir / CONFIG_FILE, document)
    return run_dir


# ---- loading ----------------------------------------------------------------------------------

def _config_path(path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    elif path.suffix == ".safetensors":
        path = path.with_name(CONFIG_FILE)
    if not path.is_file():
        raise PixelforgeError(f"{path}: not found (a saved model is a run folder with {CONFIG_FILE} and {WEIGHTS_FILE})")
    return path


def _json_value(value) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def read_config(path) -> tuple[dict, Path]:
    """The validated model.json and its path; any malformed field is a PixelforgeError naming it."""
    path = _config_path(path)
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{path}: not valid JSON ({exc})") from None

    def bad(what: str):
        return PixelforgeError(f"{path}: {what}; the file is damaged or was edited by hand")

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f"not a pixelforge model file (format should be {FORMAT!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise bad(f"format_version {doc.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
    arch = doc.get("architecture")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str) or not isinstance(arch.get("params", {}), dict):
        raise bad("architecture must be {name: str, params: {...}}")
    if not _json_value(arch.get("params", {})):
        raise bad("architecture params must be plain JSON values")
    shape = doc.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise bad("input_shape must be [channels, height, width] positive integers")
    classes = doc.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise bad("classes must be a non-empty list of names")
    if doc.get("num_classes") != len(classes):
        raise bad(f"num_classes {doc.get('num_classes')!r} does not match the {len(classes)} class names")
    if not isinstance(doc.get("preprocess"), dict):
        raise bad("preprocess must be an object")
    weights = doc.get("weights")
    if not (isinstance(weights, dict) and weights.get("file") == WEIGHTS_FILE and isinstance(weights.get("sha256"), str)):
        raise bad(f"weights must name {WEIGHTS_FILE} with its sha256")
    return doc, path


def load_model(path) -> SavedModel:
    """Load a run folder (or its model.json) into a SavedModel ready to predict."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from pixelforge.models import build_model
    from pixelforge.train.normalize import BatchTransform

    doc, config_path = read_config(path)
    try:
        preprocess = Preprocess.from_dict(doc["preprocess"])
    except (TypeError, ValueError) as exc:
        raise PixelforgeError(f"{config_path}: invalid preprocess spec ({exc})") from None
    if preprocess.size is None or preprocess.channels is None:
        raise PixelforgeError(f"{config_path}: preprocess must fix size and channels")
    if [preprocess.channels, *preprocess.size] != doc["input_shape"]:
        raise PixelforgeError(f"{config_path}: preprocess size/channels disagree with input_shape {doc['input_shape']}")
    weights_path = config_path.with_name(WEIGHTS_FILE)
    if not weights_path.is_file():
        raise PixelforgeError(f"{weights_path}: weights file is missing")
    if sha256_file(weights_path) != doc["weights"]["sha256"]:
        raise PixelforgeError(
            f"{weights_path}: weights do not match model.json (SHA-256 differs): the file was replaced or modified"
        )
    arch = doc["architecture"]
    network = build_model(arch["name"], tuple(doc["input_shape"]), doc["num_classes"], **arch.get("params", {}))
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise PixelforgeError(f"{weights_path}: cannot read weights ({exc})") from None
    load_weights(network, tensors, str(weights_path))
    network.eval()
    return SavedModel(network, BatchTransform(preprocess).eval(), list(doc["classes"]), preprocess, doc, config_path.parent)


def load_weights(network: torch.nn.Module, tensors: dict, where: str) -> None:
    """Load ``tensors`` into ``network``, explaining missing, unexpected or mis-shaped entries."""
    if hasattr(network, "upgrade_state_dict"):  # weights saved by an earlier version of the model
        tensors = network.upgrade_state_dict(dict(tensors))
    expected = network.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise PixelforgeError(
            f"{where}: weights do not fit the architecture (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    resizable = getattr(network, "trainable_by_gradient", True) is False  # knn stores its training set
    for key, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[key].shape) and not resizable:
            raise PixelforgeError(
                f"{where}: weight {key} has shape {tuple(tensor.shape)} but the architecture expects "
                f"{tuple(expected[key].shape)} (a different class count or input size?)"
            )
    network.load_state_dict(tensors)


@dataclass
class SavedModel:
    """A loaded model with its own preprocessing; ``predict_arrays`` takes images of any size."""

    network: torch.nn.Module
    transform: torch.nn.Module
    classes: list[str]
    preprocess: Preprocess
    config: dict
    path: Path
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> torch.nn.Module:
        return self.network

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.config["input_shape"])

    def prepare_images(self, images, names=None) -> np.ndarray:
        """Decoded images (array or list, any size/channels) → uint8 NHWC at the model's input."""
        size, channels = self.preprocess.size, self.preprocess.channels
        if isinstance(images, np.ndarray) and images.ndim in (3, 4) and images.dtype in (np.uint8, np.uint16):
            batch = images if images.ndim == 4 else images[..., None]
            if batch.shape[1:] == (*size, channels) and not self.preprocess.canonical:
                return batch
            items = list(batch)
        else:
            items = list(images)
        out = []
        for i, img in enumerate(items):
            img = np.asarray(img)
            name = names[i] if names else f"image {i}"
            have = 1 if img.ndim == 2 else img.shape[2]
            if have in (3, 4) and channels == 1:
                self._note(f"{name}: colour image converted to grayscale for this 1-channel model")
            elif have == 1 and channels == 3:
                self._note(f"{name}: grayscale image repeated to 3 channels for this colour model")
            if min(img.shape[:2]) * 4 < min(size):
                self._note(f"{name}: {img.shape[1]}x{img.shape[0]} is much smaller than the model's "
                           f"{size[1]}x{size[0]} input; it is enlarged, expect poor predictions")
            out.append(self.preprocess.decode(img, name=name))
        if not out:
            raise PixelforgeError("no images to predict")
        batch = np.stack(out)
        return batch if batch.ndim == 4 else batch[..., None]

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @torch.inference_mode()
    def predict_arrays(self, images, batch_size: int = 256, names=None) -> np.ndarray:
        """Class probabilities (N, K) for decoded images of any size and channel count."""
        from pixelforge.train.normalize import to_tensor

        batch = self.prepare_images(images, names)
        self.network.eval()
        probs = []
        for start in range(0, len(batch), batch_size):
            logits = self.network(self.transform(to_tensor(batch[start : start + batch_size])))
            probs.append(torch.softmax(logits.float(), dim=1).numpy())
        return np.concatenate(probs)

    def evaluate(self, source, out=None, split: str | None = None, **read_options) -> dict:
        """Accuracy, loss, per-class precision/recall/F1 and the confusion matrix on a labelled source
        (any dataset source or a Manifest): on ``split``, or by the split policy its test split, else
        its validation split, else every image.
        With ``out``, also writes metrics.json, confusion.png/.txt and mistakes.png there."""
        from pixelforge.data.manifest import Manifest
        from pixelforge.train.evaluation import classification_metrics, evaluate_model, predict_manifest

        if isinstance(source, Manifest):
            manifest = source
        else:
            from pixelforge.data.read import read_dataset

            manifest = read_dataset(source, **read_options)
        if split is not None:
            manifest = manifest.split(split)
        else:
            from pixelforge.data.split import held_out_part

            manifest, _ = held_out_part(manifest)
        if out is not None:
            return evaluate_model(self, manifest, out)
        probs, labels, _rows = predict_manifest(self, manifest)
        return classification_metrics(labels, probs, self.classes)

    def predict_files(self, sources, top: int = 3) -> list[dict]:
        """Predict image files or http(s) URLs; each result has the top classes or an error."""
        from pixelforge.train.inputs import read_image

        results = []
        for source in sources:
            try:
                image = read_image(source, self.preprocess)
            except PixelforgeError as exc:
                results.append({"source": str(source), "error": str(exc)})
                continue
            before = len(self.notes)
            probs = self.predict_arrays([image], names=[str(source)])[0]
            order = np.argsort(-probs)[: max(1, top)]
            results.append({
                "source": str(source),
                "prediction": self.classes[order[0]],
                "probability": float(probs[order[0]]),
                "top": [{"class": self.classes[i], "probability": float(probs[i])} for i in order],
                "notes": self.notes[before:],
            })
        return results
