"""Streaming mean/std over batches of NHWC arrays, in float64 running sums (bounded memory)."""

from __future__ import annotations

import numpy as np

from pixelforge.errors import ParameterError


class RunningStats:
    """Accumulates per-pixel sums so that global, per-channel and per-pixel statistics all follow."""

    def __init__(self):
        self.count = 0
        self._sum: np.ndarray | None = None
        self._sumsq: np.ndarray | None = None

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        x = batch.astype(np.float64)
        if self._sum is None:
            self._sum = np.zeros(x.shape[1:])
            self._sumsq = np.zeros(x.shape[1:])
        elif self._sum.shape != x.shape[1:]:
            raise ParameterError(
                f"images differ in shape ({self._sum.shape} vs {x.shape[1:]}); set a size to resize them"
            )
        self._sum += x.sum(axis=0)
        self._sumsq += np.square(x).sum(axis=0)
        self.count += x.shape[0]

    def pixel_mean(self) -> np.ndarray:
        return (self._sum / self.count).astype(np.float32)

    def pixel_std(self) -> np.ndarray:
        var = self._sumsq / self.count - np.square(self._sum / self.count)
        return np.sqrt(np.maximum(var, 0)).astype(np.float32)

    def channel_mean(self) -> np.ndarray:
        n = self.count * self._sum.shape[0] * self._sum.shape[1]
        return (self._sum.sum(axis=(0, 1)) / n).astype(np.float32)

    def channel_std(self) -> np.ndarray:
        n = self.count * self._sum.shape[0] * self._sum.shape[1]
        mean = self._sum.sum(axis=(0, 1)) / n
        var = self._sumsq.sum(axis=(0, 1)) / n - np.square(mean)
        return np.sqrt(np.maximum(var, 0)).astype(np.float32)

    def global_mean(self) -> float:
        return float(self._sum.sum() / (self.count * self._sum.size))

    def global_std(self) -> float:
        n = self.count * self._sum.size
        mean = self._sum.sum() / n
        return float(np.sqrt(max(self._sumsq.sum() / n - mean**2, 0.0)))
