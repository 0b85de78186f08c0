"""ShallowNet: one Conv 32 3x3 (same padding) + ReLU, then Dense to the classes. Fits any image size."""

from __future__ import annotations

from torch import nn

from pixelforge.models.base import Flatten, ZooModel, conv, dense, positive_int
from pixelforge.models.registry import register


class ShallowNet(ZooModel):
    def __init__(self, input_shape, num_classes, filters, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        channels, height, width = input_shape
        self.net = nn.Sequential(
            conv(channels, filters, 3, self.kernel_initializer, padding="same"), nn.ReLU(inplace=True),
            Flatten(), dense(filters * height * width, num_classes, self.kernel_initializer),
        )

    def forward(self, x):
        return self.net(x)


@register("shallownet", "Conv 32 3x3 (same) + ReLU, then Dense: the smallest CNN", optimizer="sgd",
          optimizer_options={"lr": 0.005})
def build(input_shape, num_classes, *, filters=32, kernel_initializer="glorot_uniform", l1=0.0, l2=0.0):
    filters = positive_int(filters, "filters")
    model = ShallowNet(input_shape, num_classes, filters, kernel_initializer, l1, l2)
    model.resolved_params = {"filters": filters}
    return model
