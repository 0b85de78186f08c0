"""Transfer learning: pre-trained weights into a zoo backbone, frozen body, unfreezing, discriminative
learning rates, batch norm kept, the weights' preprocessing inherited; features and a linear head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from pixelforge.cli import app
from pixelforge.data.manifest import Manifest
from pixelforge.data.preprocess import Preprocess
from pixelforge.datasets.shapes import make_shapes
from pixelforge.models import build_model
from pixelforge.models.backbones import IMAGENET_MEAN
from pixelforge.train.features import (
    fit_linear_head,
    linear_probe,
    load_extractor,
    read_features,
    write_features,
)
from pixelforge.train.saved import load_model
from pixelforge.train.trainer import Trainer
from pixelforge.train.transfer import group_lr_factors

runner = CliRunner()


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    data = make_shapes(16, size=32, seed=3, write_to=root)
    return root, data.manifest


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory, shapes_dir):
    """A ResNet-18 trained one epoch on the four shapes and saved (the 'pre-trained' model)."""
    _, manifest = shapes_dir
    run = tmp_path_factory.mktemp("pretrained")
    trainer = Trainer("resnet18", Preprocess(size=32, standardize="channel"), verbose=False, threads=1,
                      adaptive_threads=False, seed=0)
    trainer.fit(manifest.split("train"), epochs=1, batch_size=16)
    trainer.save(run)
    return run


def three_classes(manifest):
    """The same images without the crosses, as a three-class dataset."""
    part = manifest.subset([label != "cross" for label in manifest.labels])
    return Manifest(part.locations, part.labels, part.storage, part.splits)


def body_state(network) -> dict:
    return {k: v.clone() for k, v in network.state_dict().items() if not k.startswith("fc.")}


def test_group_lr_factors_run_from_ratio_to_one():
    assert group_lr_factors(1, 0.1) == [1.0]
    factors = group_lr_factors(6, 0.01)
    assert factors[0] == pytest.approx(0.01) and factors[-1] == 1.0
    assert np.allclose(np.diff(np.log(factors)), np.log(0.01) / -5)


def test_frozen_body_keeps_weights_and_batch_norm_statistics(shapes_dir, pretrained_run):
    _, manifest = shapes_dir
    source = load_model(pretrained_run).network
    trainer = Trainer("resnet18", Preprocess(), pretrained=str(pretrained_run), freeze=True, verbose=False,
                      threads=1, adaptive_threads=False)
    trainer.fit(three_classes(manifest).split("train"), epochs=1, batch_size=16)
    before, after = body_state(source), body_state(trainer.network)
    assert before.keys() == after.keys()
    for key in before:  # weights and running statistics alike
        assert torch.equal(before[key], after[key]), key
    assert trainer.network.fc.out_features == 3
    assert "re-initialized" in trainer.transfer_report["head"]
    # the pre-trained model's preprocessing is inherited: same size and fitted statistics
    theirs = load_model(pretrained_run).preprocess
    assert trainer.preprocess.size == (32, 32) and trainer.preprocess.mean == theirs.mean


def test_unfreeze_after_trains_the_body_with_lower_rates(shapes_dir, pretrained_run):
    _, manifest = shapes_dir
    data = three_classes(manifest).split("train")
    source = body_state(load_model(pretrained_run).network)
    options = dict(pretrained=str(pretrained_run), unfreeze_after=1, layer_lr_ratio=0.01, lr=0.01, verbose=False,
                   threads=1, adaptive_threads=False)
    one = Trainer("resnet18", Preprocess(), **options)
    one.fit(data, epochs=1, batch_size=16)
    assert all(torch.equal(v, body_state(one.network)[k]) for k, v in source.items())
    two = Trainer("resnet18", Preprocess(), **options)
    two.fit(data, epochs=2, batch_size=16)
    changed = body_state(two.network)
    assert not torch.equal(changed["layer1.0.conv1.weight"], source["layer1.0.conv1.weight"])
    lrs = [g["initial_lr"] for g in two.optimizer.param_groups]
    assert len(lrs) == 6 and lrs[0] == pytest.approx(0.0001) and lrs[-1] == pytest.approx(0.01)


def test_small_batches_keep_pretrained_batch_norm_statistics(shapes_dir, pretrained_run):
    _, manifest = shapes_dir
    source = load_model(pretrained_run).network.state_dict()
    trainer = Trainer("resnet18", Preprocess(), pretrained=str(pretrained_run), verbose=False, threads=1,
                      adaptive_threads=False)
    trainer.fit(manifest.split("train"), epochs=1, batch_size=8)
    state = trainer.network.state_dict()
    assert torch.equal(state["bn1.running_mean"], source["bn1.running_mean"])
    assert not torch.equal(state["conv1.weight"], source["conv1.weight"])  # not frozen: weights learn


def test_imagenet_shaped_weights_bring_their_mean_and_std(tmp_path, shapes_dir):
    _, manifest = shapes_dir
    torch.manual_seed(1)
    weights = {k: v.contiguous() for k, v in build_model("resnet18", (3, 224, 224), 1000).state_dict().items()}
    path = tmp_path / "resnet18-imagenet.safetensors"
    save_file(weights, str(path))
    trainer = Trainer("resnet18", Preprocess(size=32), pretrained=str(path), freeze=True, verbose=False,
                      threads=1, adaptive_threads=False)
    assert trainer.preprocess.mean == list(IMAGENET_MEAN) and trainer.preprocess.channels == 3
    trainer.fit(manifest.split("train"), epochs=1, batch_size=16)
    assert torch.equal(trainer.network.conv1.weight, weights["conv1.weight"])
    assert trainer.run_config()["transfer"]["loaded"]["head"].startswith("re-initialized")


def test_freeze_needs_pretrained_weights():
    with pytest.raises(ValueError, match="pre-trained"):
        Trainer("resnet18", freeze=True)
    result = runner.invoke(app, ["train", "nowhere", "--out", "x", "--model", "resnet18", "--freeze"])
    assert result.exit_code == 2


def test_features_and_linear_head_fold_into_a_saved_model(tmp_path, shapes_dir, pretrained_run):
    _, manifest = shapes_dir
    extractor = load_extractor(str(pretrained_run))
    out = tmp_path / "features.h5"
    summary = write_features(manifest, out, extractor, batch_size=20, workers=1)
    data = read_features(out)
    assert summary["images"] == len(manifest) and data["features"].shape == (len(manifest), 512)
    assert list(data["rows"]) == list(range(len(manifest)))
    run = tmp_path / "head"
    result = linear_probe(manifest, out, extractor, run)
    assert result["held_out"] == "test" and result["held_out_images"] == len(manifest.split("test"))
    # the saved model (backbone + folded head) predicts what the logistic regression predicts
    test_rows = [i for i, s in enumerate(manifest.splits) if s == "test"]
    saved = load_model(run)
    images = np.stack([saved.preprocess.load(manifest, i) for i in test_rows])
    probs = saved.predict_arrays(images)
    train_rows = [i for i, s in enumerate(manifest.splits) if s == "train"]
    head = fit_linear_head(data["features"][train_rows], data["labels"][train_rows], manifest.classes)
    expected = head.logits(data["features"][test_rows]).argmax(axis=1)
    assert (probs.argmax(axis=1) == expected).mean() >= 0.95
    assert json.loads((run / "model.json").read_text())["metrics"]["test_accuracy"] == result["accuracy"]


def test_cli_train_pretrained_and_features(tmp_path, shapes_dir, pretrained_run):
    root, _ = shapes_dir
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(root), "--model", "resnet18", "--pretrained", str(pretrained_run),
                                 "--unfreeze-after", "1", "--epochs", "2", "--batch-size", "16", "--out", str(out),
                                 "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "model.json").read_text())
    assert config["training"]["transfer"]["pretrained"] == str(pretrained_run)
    assert config["training"]["transfer"]["unfreeze_after"] == 1
    result = runner.invoke(app, ["features", str(root), "--backbone", str(pretrained_run), "--out",
                                 str(tmp_path / "f.h5"), "--head", str(tmp_path / "head"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["feature_dim"] == 512 and 0 <= summary["head"]["accuracy"] <= 1


def test_predict_with_published_weights_prints_their_class_names(tmp_path):
    torch.manual_seed(2)
    network = build_model("resnet18", (3, 224, 224), 1000)
    weights = {k: v.contiguous() for k, v in network.state_dict().items()}
    folder = tmp_path / "hub"
    folder.mkdir()
    save_file(weights, str(folder / "model.safetensors"))
    names = [f"label-{i}" for i in range(1000)]
    (folder / "config.json").write_text(json.dumps({"id2label": {str(i): n for i, n in enumerate(names)}}))
    photo = tmp_path / "photo.jpg"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(photo)
    result = runner.invoke(app, ["predict", "imagenet:resnet18", str(photo), "--weights", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    top = json.loads(result.stdout)[0]["top"]
    assert len(top) == 3 and all(t["class"] in names for t in top)
    # weights are never implied (nothing downloads unasked)
    result = runner.invoke(app, ["predict", "imagenet:resnet18", str(photo)])
    assert result.exit_code == 2 and "--weights" in result.output


def test_audit_judges_labels_with_backbone_features(shapes_dir, pretrained_run):
    from pixelforge.audit.runner import run_audit

    _, manifest = shapes_dir
    report = run_audit(manifest, checks="labels,duplicates", options={"backbone": str(pretrained_run)})
    found = [f for f in report.findings if f.check == "labels"]
    assert found and "logistic regression on" in found[0].message
    assert found[0].values["model"] == "backbone"
    assert report.extras["near_duplicates"]["candidates"] > 0  # the backbone's neighbours were verified
    with pytest.raises(ValueError, match="pre-trained weights"):  # random features judge nothing
        run_audit(manifest, checks="labels", options={"backbone": "resnet18"})


def test_published_weights_without_an_imagenet_head_are_refused(tmp_path):
    weights = {k: v.contiguous() for k, v in build_model("resnet18", (3, 64, 64), 10).state_dict().items()}
    save_file(weights, str(tmp_path / "ten.safetensors"))
    result = runner.invoke(app, ["predict", "imagenet:resnet18", "x.jpg", "--weights", str(tmp_path / "ten.safetensors")])
    assert result.exit_code == 2 and "no 1000-class ImageNet head" in result.output
    result = runner.invoke(app, ["predict", "imagenet:cnn", "x.jpg", "--weights", str(tmp_path / "ten.safetensors")])
    assert result.exit_code == 2 and "not a pre-trainable backbone" in result.output


def test_a_model_json_in_the_working_folder_is_never_taken_for_the_source(tmp_path, monkeypatch):
    from pixelforge.train.transfer import default_preprocess

    (tmp_path / "model.json").write_text(json.dumps({"architecture": {"name": "cnn"}, "preprocess": {}}))
    monkeypatch.chdir(tmp_path)
    spec = default_preprocess(Preprocess(), "resnet18", None)
    assert spec.size == (224, 224) and spec.mean == list(IMAGENET_MEAN)


def test_frozen_body_holds_for_a_model_with_a_hand_written_step(tmp_path, shapes_dir):
    _, manifest = shapes_dir
    gray = Preprocess(size=28, channels=1)
    first = Trainer("fmnist_baseline", gray, verbose=False, threads=1, adaptive_threads=False)
    first.fit(manifest.split("train"), epochs=1, batch_size=16)
    first.save(tmp_path / "base")
    before = {k: v.clone() for k, v in first.network.state_dict().items()}
    second = Trainer("fmnist_baseline", Preprocess(), pretrained=str(tmp_path / "base"), freeze=True, verbose=False,
                     threads=1, adaptive_threads=False)
    second.fit(three_classes(manifest).split("train"), epochs=1, batch_size=16)
    after = second.network.state_dict()
    head = [k for k in before if before[k].shape != after[k].shape]
    assert head, "the 3-class head replaced the 4-class one"
    for key in before:
        if key not in head and not key.startswith(head[0].rsplit(".", 1)[0]):
            assert torch.equal(before[key], after[key]), key


def test_resume_refuses_other_transfer_settings(tmp_path, shapes_dir, pretrained_run):
    root, _ = shapes_dir
    out = tmp_path / "run"
    args = ["train", str(root), "--model", "resnet18", "--epochs", "1", "--batch-size", "16", "--out", str(out),
            "--threads", "1", "--json"]
    assert runner.invoke(app, [*args, "--pretrained", str(pretrained_run), "--freeze"]).exit_code == 0
    result = runner.invoke(app, [*args[:-1], "--epochs", "2", "--resume"])
    assert result.exit_code == 2 and "--pretrained" in result.output


def test_lr_logged_is_the_heads(shapes_dir, pretrained_run):
    _, manifest = shapes_dir
    trainer = Trainer("resnet18", Preprocess(), pretrained=str(pretrained_run), lr=0.01, layer_lr_ratio=0.1,
                      verbose=False, threads=1, adaptive_threads=False)
    history = trainer.fit(manifest.split("train"), epochs=1, batch_size=16)
    assert history.history["lr"] == [pytest.approx(0.01)]
