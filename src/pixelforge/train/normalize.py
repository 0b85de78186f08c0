"""Preprocess.transform as a torch module: uint8 NHWC batch in, float NCHW out.

Normalization and feature-wise standardization are one affine map per pixel/channel
(``x * scale + shift``), so the module is cheap, runs inside the model (the trainer and saved models
put it in front of the network) and fuses with the first layer under ``torch.compile``. The result
equals ``Preprocess.transform``: both take their coefficients from ``Preprocess.affine``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from pixelforge.data.preprocess import Preprocess


def _nchw(values: np.ndarray) -> torch.Tensor:
    """A statistic shaped (), (C,) or (H, W, C) as a tensor that broadcasts over N x C x H x W."""
    t = torch.from_numpy(np.ascontiguousarray(values))
    if t.ndim == 0:
        return t.reshape(1, 1, 1, 1)
    if t.ndim == 1:
        return t.reshape(1, -1, 1, 1)
    return t.permute(2, 0, 1).unsqueeze(0).contiguous()


class BatchTransform(nn.Module):
    """uint8/uint16 NHWC (or float already scaled like raw pixels) → normalized float32 NCHW.

    The NCHW result is a permuted view of the NHWC input, i.e. channels-last in memory, which is
    what the convolution kernels prefer; no copy is made before the first multiply.
    """

    def __init__(self, spec: Preprocess):
        super().__init__()
        self.sample = spec.standardize == "sample"
        self.epsilon = float(spec.epsilon)
        for name, peak in (("8", 255.0), ("16", 65535.0)):
            scale, shift = spec.affine(peak)
            self.register_buffer(f"scale{name}", _nchw(scale), persistent=False)
            self.register_buffer(f"shift{name}", _nchw(shift), persistent=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim == 3:
            batch = batch.unsqueeze(-1)
        wide = batch.dtype in (torch.int32, torch.uint16)
        x = batch.permute(0, 3, 1, 2).to(torch.float32)
        x = torch.addcmul(self.shift16 if wide else self.shift8, x, self.scale16 if wide else self.scale8)  # one pass
        if self.sample:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True, correction=0)
            x = (x - mean) / (std + self.epsilon)
        return x


class PreprocessedModel(nn.Module):
    """The network with its batch transform in front: takes the uint8 NHWC batches the data layer makes."""

    def __init__(self, transform: BatchTransform, network: nn.Module):
        super().__init__()
        self.transform = transform
        self.network = network

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network(self.transform(batch))


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """A numpy uint8/uint16 batch as a torch tensor without a copy (uint16 widened, torch lacks ops)."""
    if batch.dtype == np.uint16:
        return torch.from_numpy(batch.astype(np.int32))
    batch = np.ascontiguousarray(batch)
    if not batch.flags.writeable:  # read-only views (shared sample arrays): torch only reads them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(batch)
    return torch.from_numpy(batch)
