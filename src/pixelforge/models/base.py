"""What every zoo model shares: Keras-style layer construction, L1/L2 penalties, config bookkeeping.

Models output logits (no softmax layer): the loss (cross-entropy) and ``predict`` apply the softmax.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelforge.errors import PixelforgeError
from pixelforge.models.initializers import check_initializer, initialize


def dense(in_features: int, out_features: int, initializer: str) -> nn.Linear:
    return initialize(nn.Linear(in_features, out_features), initializer)


def conv(in_channels: int, out_channels: int, kernel: int, initializer: str, padding: str | int = 0,
         stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """A Conv2d; ``padding="valid"`` (Keras' default) is 0, ``"same"`` keeps the size at stride 1."""
    if padding == "valid":
        padding = 0
    elif padding == "same":
        padding = kernel // 2
    layer = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=bias)
    return initialize(layer, initializer)


def batch_norm(channels: int, dims: int = 2) -> nn.Module:
    """Batch norm with Keras' epsilon (1e-3); torch's momentum (0.1) so short runs get usable statistics."""
    return nn.BatchNorm2d(channels, eps=1e-3) if dims == 2 else nn.BatchNorm1d(channels, eps=1e-3)


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on the CPU (same rate, same scaling, seeded by torch's generator).

    torch's CPU dropout draws one random number per value (``bernoulli_``, about 5 ns each, 5-8% of
    a MiniVGGNet step); here one 64-bit draw gives four 16-bit values, each kept when at or above
    a threshold: 2.5-3x faster forward and backward. The rate is rounded to a multiple of 1/65536.
    The mask keeps the input's memory layout (channels-last stays channels-last).
    """

    def forward(self, x):
        dense = x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
        if (not self.training or not 0 < self.p < 1 or self.inplace or x.device.type != "cpu" or not dense
                or not x.is_floating_point() or torch.compiler.is_compiling() or torch.jit.is_tracing()):
            return super().forward(x)
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None).view(torch.int16)[:n]
        keep = bits >= round(self.p * 65536) - 32768  # int16 values are uniform in [-32768, 32767]
        mask = keep.to(x.dtype).mul_(1.0 / (1.0 - self.p)).as_strided(x.shape, x.stride())
        return x * mask


class Flatten(nn.Module):
    """Flatten in height, width, channel order, as Keras' Flatten does on its NHWC tensors.

    Dense weights therefore line up with a Keras model's, and on channels-last tensors (what the
    trainer feeds and the convolutions produce) the flatten is a free view instead of a copy.
    """

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


def int_list(value, name: str) -> list[int]:
    """``512``, ``[512, 256]``, ``(16, 32)`` or ``"512,256"`` → a list of positive ints."""
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        out = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise PixelforgeError(f"{name} expects positive integers like 512 or 512,256; got {value!r}") from None
    if not out or any(v < 1 for v in out) or any(isinstance(p, float) and not float(p).is_integer() for p in parts):
        raise PixelforgeError(f"{name} expects positive integers like 512 or 512,256; got {value!r}")
    return out


def positive_int(value, name: str) -> int:
    values = int_list(value, name)
    if len(values) != 1:
        raise PixelforgeError(f"{name} expects one positive integer; got {value!r}")
    return values[0]


def non_negative(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise PixelforgeError(f"{name} expects a number >= 0; got {value!r}") from None
    if not out >= 0:
        raise PixelforgeError(f"{name} expects a number >= 0; got {value!r}")
    return out


def probability(value, name: str) -> float:
    out = non_negative(value, name)
    if out >= 1:
        raise PixelforgeError(f"{name} expects a rate in [0, 1); got {value!r}")
    return out


class ZooModel(nn.Module):
    """Base of the zoo's torch models.

    ``l1``/``l2`` penalize every conv/dense kernel like Keras' ``kernel_regularizer`` (l1 * sum|w| +
    l2 * sum w^2, biases untouched); the trainer adds ``regularization_loss()`` to the data loss.
    ``config``/``default_optimizer`` are filled in by :func:`pixelforge.models.build_model`.
    """

    trainable_by_gradient = True
    outputs = "logits"

    def __init__(self, kernel_initializer: str = "glorot_uniform", l1: float = 0.0, l2: float = 0.0):
        super().__init__()
        self.kernel_initializer = check_initializer(str(kernel_initializer))
        self.l1 = non_negative(l1, "l1")
        self.l2 = non_negative(l2, "l2")
        self.config: dict = {}
        self.default_optimizer: str | None = None
        self.default_optimizer_options: dict = {}

    def kernels(self) -> list[torch.Tensor]:
        return [m.weight for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    def regularization_loss(self) -> torch.Tensor:
        """L1/L2 penalty on the kernels (a zero scalar when neither is set)."""
        params = self.kernels()
        device = params[0].device if params else None
        if not params or (self.l1 == 0 and self.l2 == 0):
            return torch.zeros((), device=device)
        total = torch.zeros((), device=device)
        for weight in params:
            if self.l1:
                total = total + self.l1 * weight.abs().sum()
            if self.l2:
                total = total + self.l2 * weight.square().sum()
        return total
