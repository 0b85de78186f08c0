"""A fully connected network: flatten, Dense + ReLU per entry of ``nodes``, then Dense to the classes.

Keras equivalent (the data-curation material)::

    Flatten(); for n in nodes: Dense(n, relu) [+ Dropout(rate), rate 0.5 then halved]; Dense(classes, softmax)
"""

from __future__ import annotations

import math

from torch import nn

from pixelforge.models.base import Flatten, ZooModel, dense, int_list
from pixelforge.models.registry import register


class DNN(ZooModel):
    def __init__(self, input_shape, num_classes, nodes, dropout, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        layers: list[nn.Module] = [Flatten()]
        width, rate = math.prod(input_shape), 0.5
        for n in nodes:
            layers += [dense(width, n, self.kernel_initializer), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(rate))
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
    model = DNN(input_shape, num_classes, nodes, bool(dropout), kernel_initializer, l1, l2)
    model.resolved_params = {"nodes": nodes, "dropout": bool(dropout)}
    return model
