"""LeNet: Conv 20 5x5 → MaxPool → Conv 50 5x5 → MaxPool → Dense 500 → Dense classes (ReLU, valid padding).

Valid convolutions, as in LeCun's network: 28x28 → 24 → 12 → 8 → 4, so the minimum input is 16x16.
"""

from __future__ import annotations

from torch import nn

from pixelforge.models.base import Flatten, ZooModel, conv, dense, positive_int
from pixelforge.models.geometry import require_size
from pixelforge.models.registry import register

OPS = [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0)]


class LeNet(ZooModel):
    def __init__(self, input_shape, num_classes, units, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        out_h, out_w = require_size("lenet", input_shape, OPS)
        init = self.kernel_initializer
        self.features = nn.Sequential(
            # pool before ReLU: the same result as conv-relu-pool (ReLU is monotone), less work
            conv(input_shape[0], 20, 5, init), nn.MaxPool2d(2), nn.ReLU(inplace=True),
            conv(20, 50, 5, init), nn.MaxPool2d(2), nn.ReLU(inplace=True), Flatten(),
        )
        self.classifier = nn.Sequential(
            dense(50 * out_h * out_w, units, init), nn.ReLU(inplace=True), dense(units, num_classes, init)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register("lenet", "LeNet: Conv 20 5x5 → pool → Conv 50 5x5 → pool → Dense 500 (min 16x16)", optimizer="sgd",
          optimizer_options={"lr": 0.01})
def build(input_shape, num_classes, *, units=500, kernel_initializer="glorot_uniform", l1=0.0, l2=0.0):
    units = positive_int(units, "units")
    model = LeNet(input_shape, num_classes, units, kernel_initializer, l1, l2)
    model.resolved_params = {"units": units}
    return model
