"""The Fashion-MNIST baseline: Conv 32 3x3 ReLU → MaxPool 2x2 → Dense 100 ReLU → Dense classes.

Keras equivalent (the baseline protocol; SGD lr 0.01 momentum 0.9)::

    Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_uniform"); MaxPooling2D((2, 2)); Flatten()
    Dense(100, activation="relu", kernel_initializer="he_uniform"); Dense(10, activation="softmax")

The output layer keeps Keras' default glorot_uniform; ``kernel_initializer`` sets the hidden layers.
ReLU runs after the pool: max and ReLU commute (ReLU is monotone), so outputs and gradients are the
same as Keras' conv-relu-pool, with a quarter of the activation work (this model is benchmarked).
In training, conv → pool → ReLU runs as one C kernel (``models/native``) where a compiler is
available: the full-size convolution output and its gradient are never materialized.
"""

from __future__ import annotations

from torch import nn

from pixelforge.models.base import Flatten, ZooModel, conv, dense, positive_int
from pixelforge.models.geometry import require_size
from pixelforge.models.native.conv_pool import fused_conv_pool_relu
from pixelforge.models.registry import register

OPS = [(3, 1, 0), (2, 2, 0)]


class FashionBaseline(ZooModel):
    def __init__(self, input_shape, num_classes, filters, units, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        out_h, out_w = require_size("fmnist_baseline", input_shape, OPS)
        init = self.kernel_initializer
        self.features = nn.Sequential(
            conv(input_shape[0], filters, 3, init), nn.MaxPool2d(2), nn.ReLU(inplace=True), Flatten()
        )
        self.classifier = nn.Sequential(
            dense(filters * out_h * out_w, units, init), nn.ReLU(inplace=True),
            dense(units, num_classes, "glorot_uniform"),
        )

    def forward(self, x):
        conv = self.features[0]
        fused = fused_conv_pool_relu(x, conv.weight, conv.bias) if self.training else None
        return self.classifier(self.features[3](fused) if fused is not None else self.features(x))


@register("fmnist_baseline", "Fashion-MNIST baseline: Conv 32 3x3 → MaxPool → Dense 100 → Dense (he_uniform)",
          optimizer="sgd", optimizer_options={"lr": 0.01, "momentum": 0.9})
def build(input_shape, num_classes, *, filters=32, units=100, kernel_initializer="he_uniform", l1=0.0, l2=0.0):
    filters, units = positive_int(filters, "filters"), positive_int(units, "units")
    model = FashionBaseline(input_shape, num_classes, filters, units, kernel_initializer, l1, l2)
    model.resolved_params = {"filters": filters, "units": units}
    return model
