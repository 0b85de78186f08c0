"""The model zoo: shapes, Keras parameter counts, initializers, validation, summary, knn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pixelforge.cli import app
from pixelforge.errors import PixelforgeError
from pixelforge.models import build_model, list_models
from pixelforge.models.base import Flatten
from pixelforge.models.geometry import parse_input_shape
from pixelforge.models.initializers import INITIALIZERS, fans, initialize
from pixelforge.models.summary import draw_diagram, format_summary, summarize, totals

ALL = [spec.name for spec in list_models()]


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_model_builds_and_outputs_one_row_of_scores_per_image(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 7)
    if not model.trainable_by_gradient:
        model.fit_arrays(torch.rand(30, *shape), torch.arange(30) % 7)
    model.eval()
    out = model(torch.rand(5, *shape))
    assert out.shape == (5, 7)
    assert torch.isfinite(torch.softmax(out, 1)).all()
    assert model.config == {**model.config, "name": name, "input_shape": list(shape), "num_classes": 7}
    json.dumps(model.config)  # rebuildable config is JSON


@pytest.mark.parametrize("name", ALL)
def test_config_rebuilds_the_same_architecture(name):
    model = build_model(name, (1, 28, 28), 10)
    again = build_model(model.config["name"], model.config["input_shape"], model.config["num_classes"],
                        **model.config["params"])
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in again.state_dict().items()}


def test_fmnist_baseline_parameter_counts_match_keras():
    model = build_model("fmnist_baseline", (1, 28, 28), 10)
    rows = summarize(model, (1, 28, 28))
    assert [r["params"] for r in rows if r["params"]] == [320, 540_900, 1010]
    assert n_params(model) == totals(rows)["total"] == 542_230
    assert model.default_optimizer == "sgd" and model.default_optimizer_options == {"lr": 0.01, "momentum": 0.9}


def test_dnn_and_cnn_parameter_counts_match_the_keras_definitions():
    # Keras: Flatten, Dense(512, relu), Dense(10): 784*512+512 + 512*10+10
    assert n_params(build_model("dnn", (1, 28, 28), 10)) == 784 * 512 + 512 + 5130
    assert n_params(build_model("dnn", (1, 28, 28), 10, nodes=[256, 128])) == (
        784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10)
    # Keras: Conv2D(16,3) 26x26 → pool 13 → Conv2D(32,3) 11 → pool 5 → Dense(10) on 800
    assert n_params(build_model("cnn", (1, 28, 28), 10)) == 160 + 4640 + 800 * 10 + 10
    assert build_model("cnn", (1, 28, 28), 10).default_optimizer == "rmsprop"


def test_dnn_dropout_halves_at_each_layer():
    model = build_model("dnn", (1, 8, 8), 3, nodes="64,32,16", dropout=True)
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.5, 0.25, 0.125]
    assert model.config["params"]["nodes"] == [64, 32, 16]


@pytest.mark.parametrize("name, limit", [
    ("he_uniform", lambda fi, fo: math.sqrt(6 / fi)),
    ("glorot_uniform", lambda fi, fo: math.sqrt(6 / (fi + fo))),
    ("lecun_uniform", lambda fi, fo: math.sqrt(3 / fi)),
])
def test_uniform_initializers_fill_their_keras_bounds(name, limit):
    torch.manual_seed(0)
    layer = initialize(torch.nn.Conv2d(8, 64, 3), name)
    fan_in, fan_out = fans(layer.weight)
    assert (fan_in, fan_out) == (72, 576)
    bound = limit(fan_in, fan_out)
    w = layer.weight.detach()
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.97 * bound
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("name, variance", [
    ("he_normal", lambda fi, fo: 2 / fi),
    ("glorot_normal", lambda fi, fo: 2 / (fi + fo)),
    ("lecun_normal", lambda fi, fo: 1 / fi),
])
def test_normal_initializers_are_truncated_at_two_sigma_with_keras_variance(name, variance):
    torch.manual_seed(0)
    layer = initialize(torch.nn.Linear(400, 300), name)
    w = layer.weight.detach()
    std = math.sqrt(variance(400, 300))
    assert w.std().item() == pytest.approx(std, rel=0.03)
    assert w.abs().max() <= 2 * std / 0.87962566103423978 + 1e-6


def test_model_kernel_initializer_param_reaches_every_layer():
    model = build_model("dnn", (1, 4, 4), 2, nodes=[8], kernel_initializer="zeros")
    assert all(torch.count_nonzero(w) == 0 for w in model.kernels())
    assert "he_normal" in INITIALIZERS


def test_regularization_loss_is_keras_l1_plus_l2_on_kernels():
    model = build_model("dnn", (1, 4, 4), 2, nodes=[3], l1=0.01, l2=0.1)
    kernels = model.kernels()
    expected = sum(0.01 * w.abs().sum() + 0.1 * w.square().sum() for w in kernels)
    assert model.regularization_loss().item() == pytest.approx(expected.item())
    model.regularization_loss().backward()
    assert kernels[0].grad is not None
    assert build_model("dnn", (1, 4, 4), 2).regularization_loss().item() == 0.0


def test_unknown_names_and_parameters_list_the_valid_ones():
    with pytest.raises(PixelforgeError, match="valid models: dnn, cnn, fmnist_baseline"):
        build_model("alexnet", (1, 28, 28), 10)
    with pytest.raises(PixelforgeError, match="he_uniform"):
        build_model("cnn", (1, 28, 28), 10, kernel_initializer="he")
    with pytest.raises(PixelforgeError, match="its parameters: filters"):
        build_model("cnn", (1, 28, 28), 10, nodes=[3])
    with pytest.raises(PixelforgeError, match="positive integers"):
        build_model("dnn", (1, 28, 28), 10, nodes="big")
    with pytest.raises(PixelforgeError, match="num_classes"):
        build_model("dnn", (1, 28, 28), 0)


@pytest.mark.parametrize("name, small, minimum", [
    ("lenet", (1, 8, 8), 16), ("cnn", (1, 9, 9), 10), ("fmnist_baseline", (1, 3, 3), 4),
    ("minivggnet", (3, 3, 3), 4), ("resnet", (3, 7, 7), 8),
])
def test_too_small_inputs_name_the_minimum_size(name, small, minimum):
    with pytest.raises(PixelforgeError, match=f"at least {minimum}x{minimum}"):
        build_model(name, small, 10)
    build_model(name, (small[0], minimum, minimum), 10).eval()(torch.zeros(1, small[0], minimum, minimum))


def test_models_give_the_same_scores_for_either_memory_format():
    torch.manual_seed(0)
    for name in ("fmnist_baseline", "cnn", "resnet", "dnn", "minivggnet"):
        model = build_model(name, (3, 32, 32), 4).eval()
        x = torch.rand(3, 3, 32, 32)
        expected = model(x)
        torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), expected,
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model.to(memory_format=torch.contiguous_format)(x), expected,
                                   atol=1e-5, rtol=1e-4)


def test_flatten_follows_kerass_height_width_channel_order():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert Flatten()(x)[0].tolist() == x[0].permute(1, 2, 0).flatten().tolist()
    conv_out = build_model("cnn", (1, 28, 28), 10).net[:3](torch.rand(2, 1, 28, 28))
    assert conv_out.is_contiguous(memory_format=torch.channels_last)


def test_knn_predicts_its_own_training_points_and_vote_shares():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((50, 1, 6, 6), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 4, 50))
    model = build_model("knn", (1, 6, 6), 4, k=1, chunk=7)  # small chunks exercise the running top-k
    model.fit_arrays(x, y)
    assert torch.equal(model.predict_proba(x).argmax(1), y)
    torch.testing.assert_close(torch.softmax(model(x), 1), model.predict_proba(x), atol=1e-6, rtol=0)
    assert torch.isfinite(torch.nn.functional.cross_entropy(model(x), (y + 1) % 4))
    three = build_model("knn", (1, 6, 6), 4, k=3).fit_arrays(x, y)
    probs = three.predict_proba(x[:5])
    assert torch.allclose(probs.sum(1), torch.ones(5))
    assert set(torch.unique(probs * 3).round().tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_knn_state_round_trips_through_a_fresh_model():
    from safetensors.torch import load_file, save_file

    x, y = torch.rand(12, 1, 4, 4), torch.arange(12) % 3
    model = build_model("knn", (1, 4, 4), 3, k=1).fit_arrays(x, y)
    assert not model.trainable_by_gradient
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        save_file(model.state_dict(), f"{tmp}/w.safetensors")
        fresh = build_model(**{k: v for k, v in model.config.items() if k != "params"}, **model.config["params"])
        fresh.load_state_dict(load_file(f"{tmp}/w.safetensors"))
    assert torch.equal(fresh.predict_proba(x).argmax(1), y)
    with pytest.raises(PixelforgeError, match="fit_arrays"):
        build_model("knn", (1, 4, 4), 3)(x)


def test_knn_stores_8_bit_images_as_bytes_exactly_and_other_data_as_float():
    rng = np.random.default_rng(1)
    pixels = torch.from_numpy(rng.integers(0, 256, (30, 1, 5, 5))).float()
    y = torch.arange(30) % 3
    for scaled in (pixels / 255, pixels / 127.5 - 1, (pixels - 33.3) / 71.1):
        model = build_model("knn", (1, 5, 5), 3, k=1, chunk=8).fit_arrays(scaled, y)
        assert model.train_codes.dtype == torch.uint8 and model.train_codes.shape == (30, 25)
        assert len(model.train_x) == 0
        assert torch.equal(model.training_rows(0, 30), scaled.reshape(30, -1))  # exact, not rounded
        assert torch.equal(model.predict_proba(scaled).argmax(1), y)
    big = torch.from_numpy(rng.integers(0, 256, (5000, 1, 5, 5))).float() / 255
    coded = build_model("knn", (1, 5, 5), 3, k=1).fit_arrays(big, torch.arange(5000) % 3)
    held = sum(t.untyped_storage().nbytes() for t in coded.buffers())
    assert held < 5000 * 25 * 2  # the codes and small buffers, not a float32 copy (500 kB) kept by a view
    floats = torch.from_numpy(rng.random((30, 1, 5, 5), dtype=np.float32))
    model = build_model("knn", (1, 5, 5), 3, k=1).fit_arrays(floats, y)
    assert len(model.train_codes) == 0 and torch.equal(model.train_x, floats.reshape(30, -1))


def test_knn_saved_before_byte_codes_still_loads():
    x, y = torch.rand(20, 1, 4, 4), torch.arange(20) % 3  # 320 distinct values: stored as float32
    model = build_model("knn", (1, 4, 4), 3, k=1).fit_arrays(x, y)
    assert len(model.train_x) == 20
    old_state = {k: v for k, v in model.state_dict().items() if k not in ("train_codes", "train_values")}
    fresh = build_model("knn", (1, 4, 4), 3, k=1)
    fresh.load_state_dict(old_state)
    assert torch.equal(fresh.predict_proba(x).argmax(1), y)


def test_summary_rows_fold_activations_and_count_batch_norm_statistics():
    rows = summarize(build_model("minivggnet", (1, 28, 28), 10), (1, 28, 28))
    assert rows[0] == {"name": "features.0", "layer": "Conv2d+ReLU", "output_shape": [32, 28, 28],
                       "params": 320, "trainable": 320}
    assert rows[1]["layer"] == "BatchNorm2d" and rows[1]["params"] == 4 * 32 and rows[1]["trainable"] == 64
    assert rows[-1]["output_shape"] == [10]
    text = format_summary(rows, "minivggnet")
    assert "Total params: 1,679,082" in text and "Non-trainable params: 1,408" in text


def test_diagram_png_is_written(tmp_path):
    out = draw_diagram(build_model("lenet", (1, 28, 28), 10), (1, 28, 28), tmp_path / "d" / "lenet.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["lenet.png"]  # no temp file left behind


def test_input_shape_text_is_height_width_channels():
    assert parse_input_shape("28x28x1") == (1, 28, 28)
    assert parse_input_shape("32x48x3") == (3, 32, 48)
    assert parse_input_shape("28x28") == (1, 28, 28)
    with pytest.raises(PixelforgeError, match="28x28x1"):
        parse_input_shape("large")


def test_cli_lists_the_zoo_and_shows_a_layer_table(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "--json"])
    assert listed.exit_code == 0
    assert [row["name"] for row in json.loads(listed.stdout)] == ALL
    shown = runner.invoke(app, ["models", "show", "fmnist_baseline", "--input", "28x28x1", "--json",
                                "--diagram", str(tmp_path / "m.png")])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["totals"]["total"] == 542_230 and (tmp_path / "m.png").exists()
    table = runner.invoke(app, ["models", "show", "dnn", "-p", "nodes=64,32"])
    assert table.exit_code == 0 and "Total params: 52,650" in table.stdout
    bad = runner.invoke(app, ["models", "show", "lenet", "--input", "8x8x1"])
    assert bad.exit_code == 2 and "at least 16x16" in bad.output


def test_pooling_before_relu_gives_kerass_conv_relu_pool_outputs_and_gradients():
    torch.manual_seed(0)
    model = build_model("fmnist_baseline", (1, 28, 28), 10)
    conv, fc1, fc2 = (m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    x, y = torch.randn(6, 1, 28, 28), torch.arange(6)
    keras_order = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2), Flatten(),
                                      fc1, torch.nn.ReLU(), fc2)
    grads = []
    for net in (model, keras_order):
        model.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(model(x), keras_order(x))
    for ours, theirs in zip(*grads, strict=True):
        torch.testing.assert_close(ours, theirs)
