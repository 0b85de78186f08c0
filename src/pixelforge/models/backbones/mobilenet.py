"""MobileNetV3-Large (Howard et al. 2019) with torchvision's layout and parameter names.

features.0: 3x3/2 conv → 16, hardswish; features.1-15: inverted residual blocks (1x1 expand → kxk
depthwise → squeeze-excitation with a hard-sigmoid gate → 1x1 project, residual when the shape is kept);
features.16: 1x1 conv → 960, hardswish; global average pool; classifier: Linear(960, 1280) → hardswish →
dropout → Linear(1280, classes). Batch norms use eps 0.001 and momentum 0.01, as torchvision trains it.

``forward_features`` returns the 1280-d vector after ``classifier.0``/``classifier.1``: that layer is
pre-trained and kept when the head is replaced, so only ``classifier.3`` is the head (timm's
``pre_logits`` are the same vector). Weights saved by timm (``mobilenetv3_large_100``: ``conv_stem``,
``blocks.i.j``, ``conv_head``, ``classifier``) load too: :meth:`timm_module_names` maps them, and timm's
batch-norm eps (1e-5) is then used. Every convolution is padded, so any input size works (torchvision's
``min_size`` is 1x1 too); 28x28 ends in a 1x1 map.
"""

from __future__ import annotations

from torch import nn

from pixelforge.models.backbones import Backbone, init_like_torchvision
from pixelforge.models.backbones.layers import ConvBNAct, SqueezeExcitation, make_divisible
from pixelforge.models.base import non_negative, probability
from pixelforge.models.geometry import require_size
from pixelforge.models.registry import register

# Table 1 of the paper: input channels, kernel, expanded channels, output channels, SE, activation, stride.
LARGE = (
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
)
LAST_CONV = 960
LAST_CHANNEL = 1280
# timm groups the same 15 blocks into stages of these sizes (blocks.<stage>.<index>).
TIMM_STAGES = (1, 2, 3, 4, 2, 3)


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, kernel: int, expanded: int, out_channels: int, use_se: bool,
                 activation: type[nn.Module], stride: int, bn_eps: float, bn_momentum: float):
        super().__init__()
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        self.use_residual = stride == 1 and in_channels == out_channels
        self.has_expand = expanded != in_channels
        self.has_se = use_se
        layers: list[nn.Module] = []
        if self.has_expand:
            layers.append(ConvBNAct(in_channels, expanded, 1, activation=activation, **bn))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, activation=activation, **bn))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4), gate=nn.Hardsigmoid))
        layers.append(ConvBNAct(expanded, out_channels, 1, activation=None, **bn))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        out = self.block(x)
        return out + x if self.use_residual else out


class MobileNetV3(Backbone):
    head_prefixes = ("classifier.3",)
    feature_dim = LAST_CHANNEL
    timm_bn_eps = 1e-5

    def __init__(self, input_shape, num_classes: int, dropout: float = 0.2, bn_eps: float = 0.001):
        super().__init__("he_normal")
        # the stem and the four strided depthwise convolutions (kernel, stride, padding)
        require_size("mobilenet_v3_large", input_shape, [(3, 2, 1), (3, 2, 1), (5, 2, 2), (3, 2, 1), (5, 2, 2)])
        bn = {"bn_eps": bn_eps, "bn_momentum": 0.01}
        layers: list[nn.Module] = [ConvBNAct(input_shape[0], LARGE[0][0], 3, 2, activation=nn.Hardswish, **bn)]
        for in_ch, kernel, expanded, out_ch, use_se, act, stride in LARGE:
            activation = nn.Hardswish if act == "HS" else nn.ReLU
            layers.append(InvertedResidual(in_ch, kernel, expanded, out_ch, use_se, activation, stride, **bn))
        layers.append(ConvBNAct(LARGE[-1][3], LAST_CONV, 1, activation=nn.Hardswish, **bn))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(LAST_CONV, LAST_CHANNEL), nn.Hardswish(inplace=True), nn.Dropout(dropout),
            nn.Linear(LAST_CHANNEL, num_classes),
        )
        init_like_torchvision(self)
        for m in self.classifier:
            if isinstance(m, nn.Linear):
                _init_linear(m)

    def forward_features(self, x):
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier[1](self.classifier[0](x))

    def head(self, features):
        return self.classifier[3](self.classifier[2](features))

    def layer_groups(self):
        f = self.features
        # stem, then the stages ending at strides 4, 8, 16 and 32 (+ the last convs), then the head
        groups = [f[0:1], f[1:4], f[4:7], f[7:13], [*f[13:17], self.classifier[0]]]
        return [[p for m in g for p in m.parameters()] for g in groups] + [list(self.classifier[3].parameters())]

    def replace_head(self, num_classes: int) -> None:
        self.classifier[3] = _init_linear(nn.Linear(LAST_CHANNEL, num_classes))

    def timm_module_names(self) -> dict[str, str]:
        names = {"conv_stem": "features.0.0", "bn1": "features.0.1",
                 "conv_head": "classifier.0", "classifier": "classifier.3",
                 f"blocks.{len(TIMM_STAGES)}.0.conv": "features.16.0",
                 f"blocks.{len(TIMM_STAGES)}.0.bn1": "features.16.1"}
        index = 1
        for stage, count in enumerate(TIMM_STAGES):
            for i in range(count):
                block = self.features[index]
                names.update(timm_block_names(f"blocks.{stage}.{i}", f"features.{index}.block",
                                              block.has_expand, block.has_se))
                index += 1
        return names


def timm_block_names(timm_prefix: str, prefix: str, has_expand: bool, has_se: bool) -> dict[str, str]:
    """Module names of one timm block (``InvertedResidual``: conv_pw/bn1, conv_dw/bn2, se, conv_pwl/bn3;
    ``DepthwiseSeparableConv`` when there is no expansion: conv_dw/bn1, se, conv_pw/bn2) → torchvision's
    ``block.<i>`` sequence (expand?, depthwise, SE?, project)."""
    timm = [("conv_pw", "bn1"), ("conv_dw", "bn2"), None, ("conv_pwl", "bn3")] if has_expand \
        else [("conv_dw", "bn1"), None, ("conv_pw", "bn2")]
    names, i = {}, 0
    for part in timm:
        if part is None:  # the squeeze-excitation slot
            if not has_se:
                continue
            names[f"{timm_prefix}.se.conv_reduce"] = f"{prefix}.{i}.fc1"
            names[f"{timm_prefix}.se.conv_expand"] = f"{prefix}.{i}.fc2"
        else:
            names[f"{timm_prefix}.{part[0]}"] = f"{prefix}.{i}.0"
            names[f"{timm_prefix}.{part[1]}"] = f"{prefix}.{i}.1"
        i += 1
    return names


def _init_linear(layer: nn.Linear) -> nn.Linear:
    nn.init.normal_(layer.weight, 0, 0.01)  # torchvision's MobileNet classifier initialization
    nn.init.zeros_(layer.bias)
    return layer


@register("mobilenet_v3_large",
          "MobileNetV3-Large (torchvision names: ImageNet weights load, timm's too); 5.5 M parameters, 224 px native",
          optimizer="sgd", optimizer_options={"lr": 0.01, "momentum": 0.9})
def build_mobilenet_v3_large(input_shape, num_classes, *, dropout=0.2, bn_eps=0.001):
    eps = non_negative(bn_eps, "bn_eps")
    model = MobileNetV3(input_shape, num_classes, probability(dropout, "dropout"), eps)
    model.resolved_params = {"dropout": float(dropout), "bn_eps": eps}
    return model


build_mobilenet_v3_large.backbone = MobileNetV3  # its published input size and mean/std
