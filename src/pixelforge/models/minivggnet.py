"""MiniVGGNet: two blocks of (Conv 3x3 same + ReLU + BN) x2 → MaxPool → Dropout 0.25 with 32 and 64
filters, then Dense 512 + ReLU + BN + Dropout 0.5 → Dense classes. Minimum input 4x4."""

from __future__ import annotations

from torch import nn

from pixelforge.models.base import Dropout, Flatten, ZooModel, batch_norm, conv, dense, int_list, positive_int
from pixelforge.models.geometry import require_size
from pixelforge.models.registry import register


def _block(in_channels: int, channels: int, init: str) -> list[nn.Module]:
    return [
        conv(in_channels, channels, 3, init, padding="same"), nn.ReLU(inplace=True), batch_norm(channels),
        conv(channels, channels, 3, init, padding="same"), nn.ReLU(inplace=True), batch_norm(channels),
        nn.MaxPool2d(2), Dropout(0.25),
    ]


class MiniVGGNet(ZooModel):
    def __init__(self, input_shape, num_classes, filters, units, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        out_h, out_w = require_size("minivggnet", input_shape, [(2, 2, 0)] * len(filters))
        init = self.kernel_initializer
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for f in filters:
            layers += _block(channels, f, init)
            channels = f
        self.features = nn.Sequential(*layers, Flatten())
        self.classifier = nn.Sequential(
            dense(channels * out_h * out_w, units, init), nn.ReLU(inplace=True), batch_norm(units, dims=1),
            Dropout(0.5), dense(units, num_classes, init),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register("minivggnet", "MiniVGGNet: 2 VGG blocks (32, 64 filters) with batch norm and dropout, Dense 512",
          optimizer="sgd", optimizer_options={"lr": 0.01, "momentum": 0.9, "nesterov": True})
def build(input_shape, num_classes, *, filters=(32, 64), units=512, kernel_initializer="glorot_uniform",
          l1=0.0, l2=0.0):
    filters, units = int_list(filters, "filters"), positive_int(units, "units")
    model = MiniVGGNet(input_shape, num_classes, filters, units, kernel_initializer, l1, l2)
    model.resolved_params = {"filters": filters, "units": units}
    return model
