"""A fully connected network: flatten, Dense + ReLU per entry of ``nodes``, then Dense to the classes.

Keras equivalent (the data-curation material)::

    Flatten(); for n in nodes: Dense(n, relu) [+ Dropout(rate), rate 0.5 (or the given rate) then halved]; Dense(classes, softmax)
"""

from __future__ import annotations

import math

from torch import nn

from pixelforge.errors import PixelforgeError
from pixelforge.models.base import Dropout, Flatten, ZooModel, dense, int_list
from pixelforge.models.registry import register


class DNN(ZooModel):
    def __init__(self, input_shape, num_classes, nodes, dropout, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        layers: list[nn.Module] = [Flatten()]
        width, rate = math.prod(input_shape), dropout
        for n in nodes:
            layers += [dense(width, n, self.kernel_initializer), nn.ReLU(inplace=True)]
            if rate:
                layers.append(Dropout(rate))
                rate /= 2
            width = n
        layers.append(dense(width, num_classes, self.kernel_initializer))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@register("dnn", "Fully connected: Dense+ReLU per entry of nodes (dropout 0.5, halved per layer, optional)",
          optimizer="rmsprop", optimizer_options={"lr": 0.001})
def build(input_shape, num_classes, *, nodes=(512,), dropout=False, kernel_initializer="glorot_uniform",
          l1=0.0, l2=0.0):
    nodes = int_list(nodes, "nodes")
    rate = 0.5 if dropout is True else float(dropout or 0.0)  # True: the material's 0.5; a number: that rate
    if not 0.0 <= rate < 1.0:
        raise PixelforgeError(f"dnn dropout must be true/false or a rate in [0, 1), got {dropout!r}")
    model = DNN(input_shape, num_classes, nodes, rate, kernel_initializer, l1, l2)
    model.resolved_params = {"nodes": nodes, "dropout": dropout if isinstance(dropout, bool) else rate}
    return model
