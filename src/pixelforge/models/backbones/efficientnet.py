"""EfficientNet-B0 (Tan & Le 2019) with torchvision's layout and parameter names.

features.0: 3x3/2 conv → 32, SiLU; features.1-7: stages of MBConv blocks (1x1 expand x6 → kxk depthwise →
squeeze-excitation to a quarter of the block's input width, SiLU, sigmoid gate → 1x1 project; residual
with stochastic depth when the shape is kept); features.8: 1x1 conv → 1280, SiLU; global average pool;
classifier: dropout → Linear(1280, classes). Batch norms keep torch's defaults (eps 1e-5, momentum
0.1), as torchvision's B0 does. Stochastic depth drops whole residual branches per sample while
training, with a rate rising linearly from 0 to ``stochastic_depth`` (0.2) over the blocks, as in
torchvision; it is the identity at inference.

``forward_features`` is the pooled 1280-d vector; ``classifier.1`` is the head. timm's
``efficientnet_b0`` names (``conv_stem``, ``blocks.i.j``, ``conv_head``, ``bn2``, ``classifier``) load
too, through :meth:`timm_module_names` (not timm's ``tf_efficientnet_b0``: TensorFlow's asymmetric padding
and batch-norm eps differ, and its names are the same, so it would load and compute something else).
Every convolution is padded, so any input size works (torchvision's ``min_size`` is 1x1 too).
"""

from __future__ import annotations

import math

from torch import nn

from pixelforge.models.backbones import Backbone, init_like_torchvision
from pixelforge.models.backbones.layers import ConvBNAct, SqueezeExcitation, StochasticDepth
from pixelforge.models.backbones.mobilenet import timm_block_names
from pixelforge.models.base import probability
from pixelforge.models.geometry import require_size
from pixelforge.models.registry import register

# Table 1 of the paper: expansion, kernel, stride, input channels, output channels, blocks.
B0 = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
LAST_CONV = 1280


class MBConv(nn.Module):
    def __init__(self, expand_ratio: int, kernel: int, stride: int, in_channels: int, out_channels: int,
                 drop_rate: float):
        super().__init__()
        expanded = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        self.has_expand = expanded != in_channels
        self.has_se = True
        layers: list[nn.Module] = []
        if self.has_expand:
            layers.append(ConvBNAct(in_channels, expanded, 1, activation=nn.SiLU))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, activation=nn.SiLU))
        layers.append(SqueezeExcitation(expanded, max(1, in_channels // 4), activation=nn.SiLU))
        layers.append(ConvBNAct(expanded, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_rate)

    def forward(self, x):
        out = self.block(x)
        return self.stochastic_depth(out) + x if self.use_residual else out


class EfficientNet(Backbone):
    head_prefixes = ("classifier.1",)
    feature_dim = LAST_CONV

    def __init__(self, input_shape, num_classes: int, dropout: float = 0.2, stochastic_depth: float = 0.2):
        super().__init__("he_normal")
        # the stem and the strided depthwise convolutions (kernel, stride, padding)
        require_size("efficientnet_b0", input_shape, [(3, 2, 1), (3, 2, 1), (5, 2, 2), (3, 2, 1), (5, 2, 2)])
        layers: list[nn.Module] = [ConvBNAct(input_shape[0], B0[0][3], 3, 2, activation=nn.SiLU)]
        total = sum(row[5] for row in B0)
        index = 0
        for expand, kernel, stride, in_ch, out_ch, blocks in B0:
            stage = []
            for i in range(blocks):
                rate = stochastic_depth * index / total
                stage.append(MBConv(expand, kernel, stride if i == 0 else 1, in_ch if i == 0 else out_ch, out_ch, rate))
                index += 1
            layers.append(nn.Sequential(*stage))
        layers.append(ConvBNAct(B0[-1][4], LAST_CONV, 1, activation=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(LAST_CONV, num_classes))
        init_like_torchvision(self)
        _init_linear(self.classifier[1])

    def forward_features(self, x):
        return self.avgpool(self.features(x)).flatten(1)

    def head(self, features):
        return self.classifier(features)

    def layer_groups(self):
        f = self.features
        # stem, then the stages ending at strides 4, 8, 16 and 32 (+ the last conv), then the head
        groups = [f[0:1], f[1:3], f[3:4], f[4:6], f[6:9]]
        return [list(g.parameters()) for g in groups] + [list(self.classifier[1].parameters())]

    def replace_head(self, num_classes: int) -> None:
        self.classifier[1] = _init_linear(nn.Linear(LAST_CONV, num_classes))

    def timm_module_names(self) -> dict[str, str]:
        names = {"conv_stem": "features.0.0", "bn1": "features.0.1",
                 "conv_head": "features.8.0", "bn2": "features.8.1", "classifier": "classifier.1"}
        for stage in range(len(B0)):  # timm's stages are torchvision's features.1-7, block for block
            for i, block in enumerate(self.features[stage + 1]):
                names.update(timm_block_names(f"blocks.{stage}.{i}", f"features.{stage + 1}.{i}.block",
                                              block.has_expand, block.has_se))
        return names


def _init_linear(layer: nn.Linear) -> nn.Linear:
    bound = 1.0 / math.sqrt(layer.out_features)  # torchvision's EfficientNet classifier initialization
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.zeros_(layer.bias)
    return layer


@register("efficientnet_b0",
          "EfficientNet-B0 (torchvision names: ImageNet weights load, timm's too); 5.3 M parameters, 224 px native",
          optimizer="sgd", optimizer_options={"lr": 0.01, "momentum": 0.9})
def build_efficientnet_b0(input_shape, num_classes, *, dropout=0.2, stochastic_depth=0.2):
    model = EfficientNet(input_shape, num_classes, probability(dropout, "dropout"),
                         probability(stochastic_depth, "stochastic_depth"))
    model.resolved_params = {"dropout": float(dropout), "stochastic_depth": float(stochastic_depth)}
    return model


build_efficientnet_b0.backbone = EfficientNet  # its published input size and mean/std
