"""ResNet-18/34/50 (He et al. 2016) with torchvision's layout and parameter names.

conv1 7x7/2 → bn1 → relu → maxpool 3x3/2 → layer1..layer4 (BasicBlock for 18/34, Bottleneck with
4x expansion for 50; the first block of layers 2-4 downsamples with stride 2 on its 3x3 conv, as in
torchvision's "ResNet v1.5") → global average pool → fc. timm's ``resnet18/50`` use the same names.
The ImageNet stem and stages divide the size by 32; smaller inputs still run (down to 1x1 maps).
"""

from __future__ import annotations

from torch import nn

from pixelforge.models.backbones import Backbone, init_like_torchvision
from pixelforge.models.base import probability
from pixelforge.models.geometry import require_size
from pixelforge.models.registry import register


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = shortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def shortcut(inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
    """The projection on the residual path when the block changes size or width (else identity)."""
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes))


class ResNet(Backbone):
    def __init__(self, block, layers, input_shape, num_classes: int, dropout: float = 0.0):
        super().__init__("he_normal")
        require_size("resnet", input_shape, [(7, 2, 3), (3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 2, 1)])
        self.inplanes = 64
        self.conv1 = nn.Conv2d(input_shape[0], 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(block, 64, layers[0], 1)
        self.layer2 = self._layer(block, 128, layers[1], 2)
        self.layer3 = self._layer(block, 256, layers[2], 2)
        self.layer4 = self._layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 512 * block.expansion
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(self.feature_dim, num_classes)
        init_like_torchvision(self)

    head_prefixes = ("fc",)

    def _layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [block(self.inplanes, planes, stride)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def head(self, features):
        return self.fc(self.dropout(features))

    def layer_groups(self):
        stem = [*self.conv1.parameters(), *self.bn1.parameters()]
        stages = [list(layer.parameters()) for layer in (self.layer1, self.layer2, self.layer3, self.layer4)]
        return [stem, *stages, list(self.fc.parameters())]

    def replace_head(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.feature_dim, num_classes)


def _build(block, layers, name):
    def build(input_shape, num_classes, *, dropout=0.0):
        model = ResNet(block, layers, input_shape, num_classes, probability(dropout, "dropout"))
        model.resolved_params = {"dropout": float(dropout)}
        return model

    build.__name__ = f"build_{name}"
    build.backbone = ResNet  # its published input size and mean/std, without building one
    return build


register("resnet18", "ResNet-18 (torchvision names: ImageNet weights load); 11.7 M parameters, 224 px native",
         optimizer="sgd", optimizer_options={"lr": 0.01, "momentum": 0.9})(_build(BasicBlock, (2, 2, 2, 2), "resnet18"))
register("resnet34", "ResNet-34 (torchvision names: ImageNet weights load); 21.8 M parameters, 224 px native",
         optimizer="sgd", optimizer_options={"lr": 0.01, "momentum": 0.9})(_build(BasicBlock, (3, 4, 6, 3), "resnet34"))
register("resnet50", "ResNet-50 (torchvision names: ImageNet weights load); 25.6 M parameters, 224 px native",
         optimizer="sgd", optimizer_options={"lr": 0.01, "momentum": 0.9})(_build(Bottleneck, (3, 4, 6, 3), "resnet50"))
