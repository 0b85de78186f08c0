"""A small, fast ResNet for colour images of 32x32 and up (after Myrtle's ResNet-9 / airbench).

prep: Conv 3x3 + BN + ReLU (width w)
stage 1: Conv 3x3 (2w) → MaxPool 2 → BN → ReLU, + residual (2 x Conv-BN-ReLU)
stage 2: Conv 3x3 (4w) → MaxPool 2 → BN → ReLU
stage 3: Conv 3x3 (8w) → MaxPool 2 → BN → ReLU, + residual
global max pool → Dense classes, logits scaled by 0.125 (keeps early training stable without warm-up).

Pooling before batch norm (as airbench does) normalizes a quarter of the pixels; the default width 16
(~0.4 M parameters) trains at CPU speed. Minimum input 8x8.
"""

from __future__ import annotations

from torch import nn

from pixelforge.models.base import Flatten, ZooModel, batch_norm, conv, dense, positive_int
from pixelforge.models.geometry import require_size
from pixelforge.models.registry import register


def conv_bn_relu(in_channels: int, channels: int, init: str) -> list[nn.Module]:
    return [conv(in_channels, channels, 3, init, padding="same", bias=False), batch_norm(channels),
            nn.ReLU(inplace=True)]


def stage(in_channels: int, channels: int, init: str) -> list[nn.Module]:
    return [conv(in_channels, channels, 3, init, padding="same", bias=False), nn.MaxPool2d(2),
            batch_norm(channels), nn.ReLU(inplace=True)]


class Residual(nn.Module):
    def __init__(self, channels: int, init: str):
        super().__init__()
        self.body = nn.Sequential(*conv_bn_relu(channels, channels, init), *conv_bn_relu(channels, channels, init))

    def forward(self, x):
        return x + self.body(x)


class ResNet(ZooModel):
    def __init__(self, input_shape, num_classes, width, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        require_size("resnet", input_shape, [(2, 2, 0)] * 3)
        init, w = self.kernel_initializer, width
        self.features = nn.Sequential(
            *conv_bn_relu(input_shape[0], w, init),
            *stage(w, 2 * w, init), Residual(2 * w, init),
            *stage(2 * w, 4 * w, init),
            *stage(4 * w, 8 * w, init), Residual(8 * w, init),
            nn.AdaptiveMaxPool2d(1), Flatten(),
        )
        self.classifier = dense(8 * w, num_classes, init)
        self.scale = 0.125

    def forward(self, x):
        return self.classifier(self.features(x)) * self.scale


@register("resnet", "Small fast ResNet (ResNet-9 style, width 16) for colour images 32x32 and up",
          optimizer="sgd", optimizer_options={"lr": 0.05, "momentum": 0.9, "nesterov": True})
def build(input_shape, num_classes, *, width=16, kernel_initializer="he_uniform", l1=0.0, l2=0.0):
    width = positive_int(width, "width")
    model = ResNet(input_shape, num_classes, width, kernel_initializer, l1, l2)
    model.resolved_params = {"width": width}
    return model
