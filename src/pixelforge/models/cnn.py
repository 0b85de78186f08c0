"""A plain CNN: per entry of ``filters`` Conv 3x3 (valid) + ReLU + MaxPool 2x2 + Dropout 0.25, then Dense.

Keras equivalent (the data-curation material)::

    for f in filters: Conv2D(f, 3, activation="relu"); MaxPooling2D(2); Dropout(0.25)
    Flatten(); Dense(classes, softmax)
"""

from __future__ import annotations

from torch import nn

from pixelforge.models.base import Flatten, ZooModel, conv, dense, int_list
from pixelforge.models.geometry import require_size
from pixelforge.models.native.conv_pool import run_block
from pixelforge.models.registry import register


def spatial_ops(blocks: int) -> list[tuple[int, int, int]]:
    return [(3, 1, 0), (2, 2, 0)] * blocks


class CNN(ZooModel):
    def __init__(self, input_shape, num_classes, filters, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        out_h, out_w = require_size("cnn", input_shape, spatial_ops(len(filters)))
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for f in filters:
            # pool before ReLU: identical result (ReLU is monotone) on a quarter of the values
            layers += [conv(channels, f, 3, self.kernel_initializer), nn.MaxPool2d(2), nn.ReLU(inplace=True),
                       nn.Dropout(0.25)]
            channels = f
        layers += [Flatten(), dense(channels * out_h * out_w, num_classes, self.kernel_initializer)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net[3:](run_block(self.net[:3], x))  # the first block as one C kernel where available


@register("cnn", "Conv 3x3 + ReLU + MaxPool 2x2 + Dropout 0.25 per entry of filters, then Dense",
          optimizer="rmsprop", optimizer_options={"lr": 0.001})
def build(input_shape, num_classes, *, filters=(16, 32), kernel_initializer="glorot_uniform", l1=0.0, l2=0.0):
    filters = int_list(filters, "filters")
    model = CNN(input_shape, num_classes, filters, kernel_initializer, l1, l2)
    model.resolved_params = {"filters": filters}
    return model
