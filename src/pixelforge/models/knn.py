"""k-nearest neighbours on raw pixels: the non-gradient baseline.

``fit_arrays`` stores the training images (flattened) and labels in buffers, so a saved model's
safetensors file holds them and loading needs no code. ``forward`` returns log vote shares, so the
softmax that turns logits into probabilities everywhere else gives back the vote shares (to 1e-7).
Distances are computed in chunks of training rows, keeping a running top-k, so memory stays bounded by
``batch x chunk`` whatever the training set size.

Images decoded from 8-bit files and normalized the same way everywhere (/255, [-1, 1], global
standardization) take at most 256 distinct values. Then the training set is stored as one byte per
value plus the table of those values (exact, a quarter of float32: 47.8 MB instead of 188 MB for
Fashion-MNIST); other inputs (per-channel or per-pixel standardization) are stored as float32.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pixelforge.errors import PixelforgeError
from pixelforge.models.base import positive_int
from pixelforge.models.registry import register

WEIGHTINGS = ("uniform", "distance")


class KNearestNeighbors(nn.Module):
    trainable_by_gradient = False
    outputs = "log_probs"

    def __init__(self, input_shape, num_classes: int, k: int, weights: str, chunk: int):
        super().__init__()
        self.features = math.prod(input_shape)
        self.num_classes = num_classes
        self.k, self.weights, self.chunk = k, weights, chunk
        self.register_buffer("train_x", torch.zeros(0, self.features))  # float32 rows, or empty when coded
        self.register_buffer("train_codes", torch.zeros(0, self.features, dtype=torch.uint8))
        self.register_buffer("train_values", torch.zeros(0))  # the value each code stands for
        self.register_buffer("train_sq", torch.zeros(0))
        self.register_buffer("train_y", torch.zeros(0, dtype=torch.int64))
        self.config: dict = {}
        self.default_optimizer = None
        self.default_optimizer_options: dict = {}

    def regularization_loss(self) -> torch.Tensor:
        return torch.zeros((), device=self.train_x.device)

    @torch.no_grad()
    def fit_arrays(self, x: torch.Tensor, y: torch.Tensor) -> KNearestNeighbors:
        """Memorize ``x`` (N, C, H, W float) and ``y`` (N int labels); replaces any earlier fit."""
        x = torch.as_tensor(x, dtype=torch.float32).reshape(len(x), -1)
        y = torch.as_tensor(y, dtype=torch.int64).reshape(-1)
        if x.shape[1] != self.features:
            raise PixelforgeError(f"knn was built for {self.features} values per image; got {x.shape[1]}")
        if len(x) != len(y) or len(x) == 0:
            raise PixelforgeError(f"knn needs as many labels as images (at least one); got {len(x)} and {len(y)}")
        if y.min() < 0 or y.max() >= self.num_classes:
            raise PixelforgeError(f"knn labels must be in 0..{self.num_classes - 1}")
        coded = _as_codes(x)
        # fresh empty tensors where a buffer is unused: a view of x would keep all of x alive
        if coded is None:
            self.train_x = x.contiguous().clone()
            self.train_codes, self.train_values = self._no_codes()
        else:
            self.train_codes, self.train_values = coded
            self.train_x = torch.empty(0, self.features)
        self.train_sq = x.square().sum(1)
        self.train_y = y.clone()
        return self

    def training_rows(self, start: int, stop: int) -> torch.Tensor:
        """Training rows ``start:stop`` as float32 (decoded from the byte codes when stored that way)."""
        if len(self.train_codes):
            if torch.onnx.is_in_onnx_export():  # exported as float32 constants, not as int64 codes (8 bytes)
                return self.train_values[self.train_codes.long()][start:stop]
            return self.train_values[self.train_codes[start:stop].long()]
        return self.train_x[start:stop]

    def upgrade_state_dict(self, state: dict, prefix: str = "") -> dict:
        """Weights saved before the byte codes existed (train_x only) get empty code buffers."""
        if prefix + "train_x" in state and prefix + "train_codes" not in state:
            state[prefix + "train_codes"], state[prefix + "train_values"] = self._no_codes()
        return state

    def _no_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.empty(0, self.features, dtype=torch.uint8), torch.empty(0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The stored training set decides the buffer sizes: resize before the strict shape check.
        self.upgrade_state_dict(state_dict, prefix)
        for name in ("train_x", "train_codes", "train_values", "train_sq", "train_y"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def neighbors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(squared distances, training indices) of the k nearest training rows, nearest first."""
        if len(self.train_y) == 0:
            raise PixelforgeError("knn has no training data yet: call fit_arrays (train it) first")
        # Shapes come from tensors, not Python ints, so an ONNX trace keeps the batch axis dynamic.
        q = x.flatten(1).float()
        q_sq = q.square().sum(1, keepdim=True)
        k = min(self.k, len(self.train_y))
        best_d = best_i = None
        for start in range(0, len(self.train_y), self.chunk):
            rows = self.training_rows(start, start + self.chunk)
            d = (q_sq - 2 * q @ rows.T + self.train_sq[start:start + self.chunk]).clamp_min(0)
            idx = torch.arange(start, start + len(rows), device=q.device).expand_as(d)
            if best_d is not None:
                d, idx = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
            best_d, pos = d.topk(min(k, d.shape[1]), dim=1, largest=False, sorted=True)
            best_i = idx.gather(1, pos)
        return best_d, best_i

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities: the (optionally distance-weighted) share of the k neighbours' votes."""
        dist, idx = self.neighbors(x)
        if self.weights == "distance":
            votes = 1.0 / (dist.sqrt() + 1e-8)
        else:
            votes = torch.ones_like(dist)
        classes = torch.arange(self.num_classes, device=dist.device)
        probs = ((self.train_y[idx].unsqueeze(-1) == classes).to(votes.dtype) * votes.unsqueeze(-1)).sum(1)
        return probs / probs.sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Floor at log(1e-7), as Keras clips probabilities, so a class with no votes gives a finite loss.
        return self.predict_proba(x).clamp_min(1e-7).log()


def _as_codes(x: torch.Tensor, rows: int = 4096) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(uint8 codes, values) with ``values[codes] == x`` exactly, or None when x has over 256 distinct
    values. Works in blocks of ``rows`` so the extra memory stays near the codes' own size."""
    values = torch.empty(0)
    for start in range(0, len(x), rows):
        values = torch.unique(torch.cat([values, torch.unique(x[start:start + rows])]))
        if len(values) > 256:
            return None
    if not torch.isfinite(values).all():  # NaN is not equal to itself: no exact code for it
        return None
    codes = torch.empty(x.shape, dtype=torch.uint8)
    for start in range(0, len(x), rows):
        codes[start:start + rows] = torch.searchsorted(values, x[start:start + rows]).to(torch.uint8)
    return codes, values


@register("knn", "k-nearest neighbours on raw pixels (no gradient training; stores the training set)")
def build(input_shape, num_classes, *, k=3, weights="uniform", chunk=4096):
    k, chunk = positive_int(k, "k"), positive_int(chunk, "chunk")
    if weights not in WEIGHTINGS:
        raise PixelforgeError(f"knn weights must be one of {', '.join(WEIGHTINGS)}; got {weights!r}")
    model = KNearestNeighbors(input_shape, num_classes, k, weights, chunk)
    model.resolved_params = {"k": k, "weights": weights, "chunk": chunk}
    return model
