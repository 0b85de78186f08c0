"""Pre-trained backbones: standard ImageNet architectures with torchvision's parameter names.

Each is a zoo model (``build_model("resnet18", (3, 224, 224), 10)``) whose ``state_dict`` keys and
shapes match torchvision's (and timm's, where timm uses the same names), so published weights load
unchanged through :mod:`pixelforge.models.weights`. Defined here because timm needs torchvision,
and the torchvision wheels at hand are CUDA builds that do not import with a CPU torch.

What the trainer and ``pixelforge features`` use (:class:`Backbone`): ``forward_features`` (pooled
features), ``head_prefixes`` (the classifier's keys, replaced for a new class count),
``layer_groups`` (input to head, for freezing and lower learning rates on early layers) and the
input size / mean / std the published weights were trained with.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelforge.models.base import ZooModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # in [0, 1] pixel units, as torchvision and timm publish them
IMAGENET_STD = (0.229, 0.224, 0.225)


def backbone_class(builder) -> type | None:
    """The Backbone class a zoo builder makes (its ``backbone`` attribute), None for other models."""
    return getattr(builder, "backbone", None)


class Backbone(ZooModel):
    """A feature extractor plus a linear head; see the module docstring."""

    head_prefixes: tuple[str, ...] = ()
    pretrained_input_size = 224
    pretrained_mean = IMAGENET_MEAN
    pretrained_std = IMAGENET_STD
    feature_dim = 0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def layer_groups(self) -> list[list[nn.Parameter]]:  # pragma: no cover - abstract
        """Parameters in groups from the input to the head (the head is the last group)."""
        raise NotImplementedError

    def head_parameters(self) -> list[nn.Parameter]:
        return self.layer_groups()[-1]

    def replace_head(self, num_classes: int) -> None:  # pragma: no cover - abstract
        """A fresh classifier for ``num_classes`` (the rest of the network is kept)."""
        raise NotImplementedError

    # timm publishes some of these architectures under other parameter names (and, for MobileNetV3,
    # trains them with another batch-norm epsilon); pixelforge.models.weights converts with these.
    timm_bn_eps: float | None = None

    def timm_module_names(self) -> dict[str, str]:
        """timm's module name → this model's, where timm names them differently ({} where they agree)."""
        return {}

    def set_bn_eps(self, eps: float) -> None:
        """Use ``eps`` in every batch norm (and record it in the config, so a saved model rebuilds alike)."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = float(eps)
        for params in (getattr(self, "resolved_params", None), self.config.get("params")):
            if isinstance(params, dict) and "bn_eps" in params:
                params["bn_eps"] = float(eps)


def init_like_torchvision(model: nn.Module) -> None:
    """He-normal (fan_out) convolutions and unit batch norms, as torchvision initializes its CNNs."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
