"""Feature extraction with a backbone, and the classic linear head on top ("extract features, then a
linear model").

``write_features`` streams a Manifest through a backbone's ``forward_features`` (decoding in the
loader's workers, one batch at a time, so memory stays bounded) into an HDF5 file: ``features``
(N x D float32), ``labels`` (class indices), ``rows`` (the Manifest row of each vector), ``splits``
and ``locations``, with the classes, backbone, weights and preprocessing as attributes.

``fit_linear_head`` trains scikit-learn's multinomial logistic regression on standardized features;
``save_head_model`` folds the scaler into the backbone's own head layer, so the result is an ordinary
pixelforge model (``pixelforge predict`` and ``evaluate`` take it as is).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixelforge.atomic import atomic_path
from pixelforge.data.manifest import Manifest, Skip
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from pixelforge.train.normalize import BatchTransform, to_tensor


@dataclass
class Extractor:
    """A backbone ready to embed images: the network, the spec its inputs need, and where it came from."""

    network: torch.nn.Module
    preprocess: Preprocess
    name: str
    weights: str | None

    @property
    def feature_dim(self) -> int:
        return int(self.network.feature_dim)


def load_extractor(backbone: str, weights: str | None = None, sha256: str | None = None,
                   preprocess: Preprocess | None = None) -> Extractor:
    """A zoo backbone name (with optional ``weights``) or a pixelforge model folder trained on one."""
    from pixelforge.train.transfer import default_preprocess, is_backbone, load_source, source_model_config

    if source_model_config(backbone) is not None:
        from pixelforge.train.saved import load_model

        saved = load_model(backbone)
        if not is_backbone(saved.network):
            raise PixelforgeError(f"{backbone}: a {saved.config['architecture']['name']!r} model has no feature "
                                  "extractor; use a backbone (resnet18, resnet50, mobilenet_v3_large, …)")
        return Extractor(saved.network.eval(), saved.preprocess, saved.config["architecture"]["name"], backbone)
    from pixelforge.models import build_model

    spec = default_preprocess(preprocess or Preprocess(), backbone, weights)
    network = build_model(backbone, (spec.channels, *spec.size), 1000)
    if not is_backbone(network):
        raise PixelforgeError(f"model {backbone!r} is not a backbone with a feature extractor")
    if weights:
        load_source(network, weights, sha256)
    return Extractor(network.eval(), spec, backbone, weights)


def iterate_features(manifest: Manifest, extractor: Extractor, batch_size: int = 64, workers: int | None = None,
                     skipped: list[Skip] | None = None, bf16: bool = False):
    """Yield ``(features float32 N x D, rows)`` batch by batch; undecodable images go to ``skipped``."""
    from pixelforge.data.loader import iterate_decoded

    transform = BatchTransform(extractor.preprocess).eval()
    network = extractor.network
    with torch.inference_mode():
        for images, _labels, rows in iterate_decoded(manifest, extractor.preprocess, batch_size,
                                                     skipped=skipped, workers=workers):
            x = transform(to_tensor(images))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                feats = network.forward_features(x)
            yield feats.float().numpy(), rows


def write_features(manifest: Manifest, out, extractor: Extractor, batch_size: int = 64,
                   workers: int | None = None, bf16: bool = False) -> dict:
    """Embed every image of ``manifest`` into the HDF5 file ``out`` (atomic); returns a summary."""
    import h5py

    out = Path(out)
    skipped: list[Skip] = []
    n, dim = len(manifest), extractor.feature_dim
    labels = manifest.label_indices().astype(np.int64)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        feats = f.create_dataset("features", shape=(n, dim), maxshape=(n, dim), dtype="float32",
                                 chunks=(min(max(n, 1), 1024), dim))
        rows_ds = f.create_dataset("rows", shape=(n,), maxshape=(n,), dtype="int64")
        done = 0
        for batch, rows in iterate_features(manifest, extractor, batch_size, workers, skipped, bf16):
            feats[done : done + len(batch)] = batch
            rows_ds[done : done + len(batch)] = rows
            done += len(batch)
        feats.resize((done, dim))
        rows_ds.resize((done,))
        kept = rows_ds[:]
        f.create_dataset("labels", data=labels[kept])
        text = h5py.string_dtype("utf-8")
        f.create_dataset("splits", data=np.array([manifest.splits[i] for i in kept], dtype=object), dtype=text)
        f.create_dataset("locations", data=np.array([manifest.locations[i] for i in kept], dtype=object), dtype=text)
        f.attrs["classes"] = json.dumps(list(manifest.classes))
        f.attrs["backbone"] = extractor.name
        f.attrs["weights"] = extractor.weights or ""
        f.attrs["preprocess"] = json.dumps(extractor.preprocess.to_dict())
        f.attrs["source"] = manifest.source
    return {"out": str(out), "images": done, "feature_dim": dim, "skipped": len(skipped),
            "skipped_items": [{"item": s.item, "reason": s.reason} for s in skipped[:20]]}


def read_features(path) -> dict:
    """The arrays and attributes of a features file written by :func:`write_features`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {"features": f["features"][:], "labels": f["labels"][:], "rows": f["rows"][:],
                    "splits": [s.decode() if isinstance(s, bytes) else s for s in f["splits"][:]],
                    "classes": json.loads(f.attrs["classes"]), "backbone": str(f.attrs["backbone"]),
                    "weights": str(f.attrs["weights"]), "preprocess": json.loads(f.attrs["preprocess"])}
    except (OSError, KeyError) as exc:
        raise PixelforgeError(f"{path}: not a pixelforge features file ({exc})") from None


@dataclass
class LinearHead:
    """A multinomial logistic regression on features: ``logits = features @ weight.T + bias``
    (the standardization folded in), with the classes it was fitted on."""

    weight: np.ndarray
    bias: np.ndarray
    classes: list[str]

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight.T + self.bias


def fit_linear_head(features: np.ndarray, labels: np.ndarray, classes: list[str], C: float = 1.0,
                    max_iter: int = 2000, seed: int = 0) -> LinearHead:
    """Logistic regression (L2, lbfgs) on standardized features; every class index must appear."""
    from sklearn.linear_model import LogisticRegression

    present = np.unique(labels)
    if len(present) < 2:
        raise PixelforgeError("a linear head needs images of at least two classes")
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-6
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    model.fit((features - mean) / scale, labels)
    weight = np.zeros((len(classes), features.shape[1]), dtype=np.float64)
    bias = np.full(len(classes), -1e4)  # a class never seen in training is never predicted
    coef = model.coef_ if len(present) > 2 else np.vstack([-model.coef_[0] / 2, model.coef_[0] / 2])
    intercept = model.intercept_ if len(present) > 2 else np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2])
    weight[present] = coef / scale
    bias[present] = intercept - (coef / scale) @ mean
    return LinearHead(weight.astype(np.float32), bias.astype(np.float32), list(classes))


def save_head_model(run_dir, extractor: Extractor, head: LinearHead, metrics: dict | None = None) -> Path:
    """The backbone with ``head`` as its classifier, saved as an ordinary pixelforge model."""
    import copy

    from pixelforge.train.saved import save_model

    network = copy.deepcopy(extractor.network)
    network.replace_head(len(head.classes))
    layer = network.get_submodule(network.head_prefixes[0])
    if not isinstance(layer, torch.nn.Linear) or layer.in_features != head.weight.shape[1]:
        raise PixelforgeError(f"{extractor.name}: its head does not take the {head.weight.shape[1]} features directly")
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(head.weight))
        layer.bias.copy_(torch.from_numpy(head.bias))
    network.config = {**network.config, "num_classes": len(head.classes)}
    training = {"model": extractor.name, "linear_head": {"backbone_weights": extractor.weights,
                                                         "solver": "logistic regression (lbfgs, L2)"}}
    return save_model(run_dir, network, classes=head.classes, preprocess=extractor.preprocess,
                      metrics=metrics, training=training)


def linear_probe(manifest: Manifest, features_file, extractor: Extractor, run_dir, C: float = 1.0, seed: int = 0,
                 group_column: str | None = None) -> dict:
    """Fit a linear head on the training part of the features, score it on the held-out part (the
    split policy of ``train_test_split``: the source's test split, else a stratified hold-out), save
    backbone + head."""
    from pixelforge.data.split import group_ids, train_test_rows

    data = read_features(features_file)
    feats, labels, rows = data["features"], data["labels"], data["rows"]
    groups = group_ids(manifest, group_column) if group_column else None
    train_rows, held_rows, held_name = train_test_rows(manifest, seed=seed, groups=groups)
    position = {int(r): i for i, r in enumerate(rows)}  # manifest row -> features row (skipped images absent)
    train_at = [position[r] for r in train_rows.tolist() if r in position]
    held_at = [position[r] for r in held_rows.tolist() if r in position]
    head = fit_linear_head(feats[train_at], labels[train_at], list(manifest.classes), C=C, seed=seed)
    predicted = head.logits(feats[held_at]).argmax(axis=1)
    accuracy = float((predicted == labels[held_at]).mean()) if held_at else float("nan")
    metrics = {"test_accuracy": accuracy, "test_images": len(held_at), "train_images": len(train_at)}
    save_head_model(run_dir, extractor, head, metrics=metrics)
    return {"run": str(run_dir), "accuracy": accuracy, "held_out": held_name, "held_out_images": len(held_at),
            "train_images": len(train_at), "C": C}

