"""ONNX export: the model (logits, or probabilities) with a dynamic batch axis, written atomically.

Uses torch's TorchScript-based exporter (``dynamo=False``), which needs no extra package; the test
suite checks onnxruntime's outputs against the torch model.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from pixelforge.errors import PixelforgeError

OPSET = 17


class _WithSoftmax(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x), dim=1)


def export_onnx(model: nn.Module, input_shape, path, probabilities: bool = False, opset: int = OPSET) -> Path:
    """Write ``model`` for inputs (N, *input_shape) float32 NCHW to ``path``; returns the path.

    The graph's input is ``images``; its output is ``logits`` (or ``probabilities`` when asked).
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise PixelforgeError(f"input shape must be (channels, height, width); got {input_shape!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    graph = (_WithSoftmax(model) if probabilities else model).eval()
    output = "probabilities" if probabilities else "logits"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        dummy = torch.zeros((2, *shape), device=next(iter(model.state_dict().values()), torch.zeros(0)).device)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, (dummy,), tmp, dynamo=False, opset_version=opset,
                input_names=["images"], output_names=[output],
                dynamic_axes={"images": {0: "batch"}, output: {0: "batch"}},
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        model.train(was_training)
    return path
