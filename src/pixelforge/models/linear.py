"""Softmax regression on raw pixels: flatten → one Dense layer. Trained by gradient like the others."""

from __future__ import annotations

import math

from torch import nn

from pixelforge.models.base import Flatten, ZooModel, dense
from pixelforge.models.registry import register


class Linear(ZooModel):
    def __init__(self, input_shape, num_classes, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        self.net = nn.Sequential(Flatten(), dense(math.prod(input_shape), num_classes, self.kernel_initializer))

    def forward(self, x):
        return self.net(x)


@register("linear", "Softmax regression on raw pixels (a baseline every model should beat)", optimizer="sgd",
          optimizer_options={"lr": 0.01, "momentum": 0.9})
def build(input_shape, num_classes, *, kernel_initializer="zeros", l1=0.0, l2=0.0):
    return Linear(input_shape, num_classes, kernel_initializer, l1, l2)
