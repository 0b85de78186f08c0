"""Weight initializers by Keras name, applied per layer the way Keras does (kernels drawn, biases zero).

Fans follow Keras: a dense kernel has fan_in = inputs, fan_out = units; a conv kernel multiplies both
by the receptive field (kh * kw). Keras' "normal" variants draw from a normal truncated at two standard
deviations, scaled up by 1/0.8796 so the truncated distribution keeps the intended variance.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pixelforge.errors import PixelforgeError

# Standard deviation of a unit normal truncated to [-2, 2] (Keras' variance-scaling correction).
_TRUNCATED_STD = 0.87962566103423978


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a torch Linear (out, in) or Conv (out, in, kh, kw) weight."""
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _variance_scaling(scale: float, mode: str, distribution: str):
    def init(weight: torch.Tensor) -> None:
        fan_in, fan_out = fans(weight)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(1.0, n)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            nn.init.uniform_(weight, -limit, limit)
        else:
            std = math.sqrt(variance) / _TRUNCATED_STD
            nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)

    return init


INITIALIZERS = {
    "glorot_uniform": _variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _variance_scaling(1.0, "fan_avg", "normal"),
    "he_uniform": _variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": _variance_scaling(2.0, "fan_in", "normal"),
    "lecun_uniform": _variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": _variance_scaling(1.0, "fan_in", "normal"),
    "random_normal": lambda w: nn.init.normal_(w, 0.0, 0.05),
    "random_uniform": lambda w: nn.init.uniform_(w, -0.05, 0.05),
    "truncated_normal": lambda w: nn.init.trunc_normal_(w, 0.0, 0.05, -0.1, 0.1),
    "orthogonal": lambda w: nn.init.orthogonal_(w),
    "zeros": nn.init.zeros_,
    "ones": nn.init.ones_,
}
# Aliases Keras users type.
INITIALIZERS["xavier_uniform"] = INITIALIZERS["glorot_uniform"]
INITIALIZERS["xavier_normal"] = INITIALIZERS["glorot_normal"]
INITIALIZERS["kaiming_uniform"] = INITIALIZERS["he_uniform"]
INITIALIZERS["kaiming_normal"] = INITIALIZERS["he_normal"]


def check_initializer(name: str) -> str:
    if name not in INITIALIZERS:
        valid = ", ".join(sorted(INITIALIZERS))
        raise PixelforgeError(f"unknown initializer {name!r}; valid initializers: {valid}")
    return name


def initialize(layer: nn.Module, name: str) -> nn.Module:
    """Draw ``layer.weight`` with the named initializer and zero its bias; returns the layer."""
    check_initializer(name)
    with torch.no_grad():
        INITIALIZERS[name](layer.weight)
        if getattr(layer, "bias", None) is not None:
            layer.bias.zero_()
    return layer
