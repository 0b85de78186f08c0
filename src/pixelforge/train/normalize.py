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
        self._row_cache: dict = {}
        for name, peak in (("8", 255.0), ("16", 65535.0)):
            scale, shift = spec.affine(peak)
            self.register_buffer(f"scale{name}", _nchw(scale), persistent=False)
            self.register_buffer(f"shift{name}", _nchw(shift), persistent=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim == 3:
            batch = batch.unsqueeze(-1)
        wide = batch.dtype in (torch.int32, torch.uint16)
        scale, shift = (self.scale16, self.shift16) if wide else (self.scale8, self.shift8)
        if batch.is_contiguous():
            # One pass over the NHWC values seen as rows of W*C, the statistics laid out the same way:
            # contiguous, vectorized loops; a (1, C, 1, 1) statistic broadcast over the channels-last
            # view runs loops C values long (3-4x slower for RGB). Same products, same results.
            n, h, w, c = batch.shape
            rows = batch.view(n, h, w * c)
            x = torch.addcmul(self._rows(shift, h, w, c), rows, self._rows(scale, h, w, c))
            x = x.view(n, h, w, c).permute(0, 3, 1, 2)
        else:
            x = torch.addcmul(shift, batch.permute(0, 3, 1, 2).to(torch.float32), scale)
        if self.sample:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True, correction=0)
            x = (x - mean) / (std + self.epsilon)
        return x

    def _rows(self, stat: torch.Tensor, h: int, w: int, c: int) -> torch.Tensor:
        """``stat`` (broadcasting over N x C x H x W) as a (1, H, W*C) tensor, made once per shape."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing():  # a graph: the layout is a constant there
            return stat.expand(1, c, h, w).permute(0, 2, 3, 1).reshape(1, h, w * c)
        key = (stat.data_ptr(), stat.device, h, w, c)
        cached = self._row_cache.get(key)
        if cached is None:
            cached = stat.expand(1, c, h, w).permute(0, 2, 3, 1).reshape(1, h, w * c).contiguous()
            self._row_cache = {key: cached, **dict(list(self._row_cache.items())[:7])}  # a few shapes at most
        return cached


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
