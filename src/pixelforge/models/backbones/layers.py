"""Building blocks shared by the mobile backbones, laid out so their parameter names match torchvision's.

``ConvBNAct`` is an ``nn.Sequential`` (conv ``.0``, batch norm ``.1``, activation ``.2``) like
torchvision's ``Conv2dNormActivation``; ``SqueezeExcitation`` has ``fc1``/``fc2`` 1x1 convolutions like
``torchvision.ops.SqueezeExcitation``. Keeping the same nesting keeps published weights loadable.
"""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10 % below ``value``
    (the rule of the TensorFlow MobileNet code that every port keeps, so widths match the weights)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


class ConvBNAct(nn.Sequential):
    """Conv (no bias, "same" padding) → BatchNorm → activation (none when ``activation`` is None)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
                 activation: type[nn.Module] | None = nn.ReLU, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al. 2018): pool → 1x1 squeeze → activation → 1x1 expand → gate → scale."""

    def __init__(self, channels: int, squeeze: int, activation: type[nn.Module] = nn.ReLU,
                 gate: type[nn.Module] = nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = activation(inplace=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class StochasticDepth(nn.Module):
    """Drop a residual branch for a random subset of the batch while training (Huang et al. 2016),
    scaling the kept ones by 1 / (1 - p); the identity at inference. Same "row" mode as torchvision."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
