"""ONNX export: onnxruntime gives the torch model's outputs, for any batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelforge.models import build_model
from pixelforge.models.export import export_onnx

ort = pytest.importorskip("onnxruntime")


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name, shape", [
    ("fmnist_baseline", (1, 28, 28)), ("cnn", (1, 28, 28)), ("dnn", (1, 28, 28)), ("lenet", (1, 28, 28)),
    ("minivggnet", (3, 32, 32)), ("resnet", (3, 32, 32)), ("linear", (3, 32, 32)), ("shallownet", (1, 28, 28)),
])
def test_onnx_outputs_match_torch(tmp_path, name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 10, **({"kernel_initializer": "he_normal"} if name == "linear" else {}))
    model.train()  # export must use inference behaviour (dropout off, BN running stats) and restore the mode
    path = export_onnx(model, shape, tmp_path / "out" / f"{name}.onnx")
    assert model.training
    model.eval()
    x = torch.rand(5, *shape)  # a batch size other than the export's dummy batch
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_onnx(path, x.numpy())
    assert got.shape == (5, 10)
    assert np.abs(got - expected).max() < 1e-4
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{name}.onnx"]


def test_onnx_can_output_probabilities(tmp_path):
    model = build_model("cnn", (1, 28, 28), 4).eval()
    path = export_onnx(model, (1, 28, 28), tmp_path / "p.onnx", probabilities=True)
    x = torch.rand(3, 1, 28, 28)
    got = run_onnx(path, x.numpy())
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(got, torch.softmax(model(x), 1).detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("eight_bit", [False, True])
def test_knn_exports_with_its_training_set(tmp_path, eight_bit):
    x, y = torch.rand(40, 1, 6, 6), torch.arange(40) % 4
    if eight_bit:  # stored as byte codes + value table; the export decodes them
        x = (x * 255).round() / 255
    model = build_model("knn", (1, 6, 6), 4, k=1, chunk=16).fit_arrays(x, y)
    assert (len(model.train_codes) > 0) == eight_bit
    path = export_onnx(model, (1, 6, 6), tmp_path / "knn.onnx", probabilities=True)
    assert np.array_equal(run_onnx(path, x[:9].numpy()).argmax(1), y[:9].numpy())
