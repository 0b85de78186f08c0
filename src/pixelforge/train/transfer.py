"""Transfer learning: start from pre-trained weights, train the head first, then the whole network.

What the trainer does with ``pretrained=`` (see :class:`Transfer`):
- the weights (a file, a pixelforge model folder, a URL or ``hf://`` id) are loaded into the body;
  the head is kept only when its class count matches, otherwise it starts fresh;
- the preprocessing the weights were trained with is used unless the user fixed one: a pixelforge
  model's own spec, or the backbone's published input size and mean/std (ImageNet's);
- ``freeze`` trains only the head; ``unfreeze_after=N`` trains the head for N epochs, then all
  layers (fastai's ``fine_tune``). The frozen state is a function of the epoch, so ``--resume``
  lands in the right phase;
- earlier layer groups learn more slowly: group ``i`` of ``k`` gets ``lr * ratio ** ((k-1-i)/(k-1))``
  (the first group ``ratio * lr``, the head ``lr``), the discriminative rates of ULMFiT / fastai;
- batch norm in frozen layers keeps its pre-trained statistics (eval mode), and so does every batch
  norm layer when batches are smaller than ``SMALL_BATCH`` (their batch statistics would be noise).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import ParameterError, PixelforgeError

SMALL_BATCH = 16
DEFAULT_LAYER_LR_RATIO = 0.1


@dataclass
class Transfer:
    """How to start from pre-trained weights (the trainer's ``pretrained``/``freeze``/… parameters)."""

    source: str
    sha256: str | None = None
    freeze: bool = False
    unfreeze_after: int | None = None
    layer_lr_ratio: float = DEFAULT_LAYER_LR_RATIO

    def __post_init__(self):
        if self.unfreeze_after is not None:
            self.unfreeze_after = int(self.unfreeze_after)
            if self.unfreeze_after < 0:
                raise ParameterError(f"unfreeze_after must be >= 0 epochs, got {self.unfreeze_after}")
            self.freeze = True
        if not 0 < float(self.layer_lr_ratio) <= 1:
            raise ParameterError(f"layer_lr_ratio must be in (0, 1], got {self.layer_lr_ratio}")
        self.layer_lr_ratio = float(self.layer_lr_ratio)

    def frozen_at(self, epoch: int) -> bool:
        """Whether the body is frozen during ``epoch`` (0-based)."""
        if not self.freeze:
            return False
        return self.unfreeze_after is None or epoch < self.unfreeze_after


def source_model_config(source: str | None) -> dict | None:
    """The model.json of a pixelforge model folder (or the file itself), else None."""
    if not source:
        return None  # Path("") is the working folder: never read a model.json from there by accident
    path = Path(source)
    config = path / "model.json" if path.is_dir() else path if path.name == "model.json" else None
    if config is None or not config.is_file():
        return None
    try:
        return json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise PixelforgeError(f"{config}: cannot read the pre-trained model's config ({exc})") from None


def is_backbone(network) -> bool:
    return hasattr(network, "layer_groups") and hasattr(network, "head_prefixes")


def default_preprocess(spec: Preprocess, model_name: str, source: str | None) -> Preprocess:
    """The spec to train with: the user's choices, with the pre-trained weights' size, channels and
    normalization filled in where the user left them open."""
    spec = copy.deepcopy(spec)
    config = source_model_config(source)
    if config is not None:
        arch = config.get("architecture", {}).get("name")
        if arch != model_name:
            raise PixelforgeError(f"{source}: the pre-trained model is a {arch!r}, not a {model_name!r}; "
                                  f"use --model {arch}")
        theirs = Preprocess.from_dict(config["preprocess"])
        if spec.size is None:
            spec.size = theirs.size
        if spec.channels is None:
            spec.channels = theirs.channels
        if spec.standardize is None and spec.mean is None:
            spec.normalize, spec.standardize = theirs.normalize, theirs.standardize
            spec.mean, spec.std, spec.epsilon = theirs.mean, theirs.std, theirs.epsilon
        return spec
    from pixelforge.models import get_spec
    from pixelforge.models.backbones import backbone_class

    probe = backbone_class(get_spec(model_name).builder)  # class attributes: no network is built
    if probe is None:
        return spec
    if spec.size is None:
        side = probe.pretrained_input_size
        spec.size = (side, side)
    if spec.channels is None:
        spec.channels = 3
    if spec.standardize is None and spec.mean is None:
        spec.normalize, spec.standardize = "unit", "channel"
        spec.mean, spec.std = list(probe.pretrained_mean), list(probe.pretrained_std)
        if spec.channels == 1:  # grayscale input: the first convolution's RGB filters are summed
            spec.mean, spec.std = [sum(spec.mean) / 3], [sum(spec.std) / 3]
    return spec


def weights_file(source: str, sha256: str | None = None) -> Path:
    """The local weights file of a source (downloaded and checked once, see ``models.weights``)."""
    from pixelforge.models.weights import resolve_weights

    if Path(source).name == "model.json":  # a pixelforge model named by its config: its folder holds the weights
        source = str(Path(source).parent)
    return resolve_weights(source, sha256=sha256)


def load_source(network, source: str, sha256: str | None = None, path: Path | None = None) -> dict:
    """Load the pre-trained weights into ``network`` (from ``path`` when the file is already resolved);
    a report of what was loaded and replaced."""
    from pixelforge.models.weights import load_pretrained, read_state_dict

    path = weights_file(source, sha256) if path is None else path
    report = load_pretrained(network, read_state_dict(path))
    report = dict(report or {})
    report.setdefault("source", str(source))
    return report


def layer_groups(network) -> list[list[nn.Parameter]]:
    """Parameter groups from input to head: a backbone's own, else everything but the last layer
    and the last layer."""
    if is_backbone(network):
        return [group for group in network.layer_groups() if group]
    params = list(network.parameters())
    last = [m for m in network.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    head = list(last.parameters())
    head_ids = {id(p) for p in head}
    return [[p for p in params if id(p) not in head_ids], head]


def group_lr_factors(count: int, ratio: float) -> list[float]:
    """Learning-rate factors from the first group (``ratio``) to the head (1), evenly on a log scale."""
    if count == 1:
        return [1.0]
    return [ratio ** ((count - 1 - i) / (count - 1)) for i in range(count)]


def set_frozen(groups: list[list[nn.Parameter]], frozen: bool) -> None:
    """Freeze (or unfreeze) every group but the head."""
    for group in groups[:-1]:
        for p in group:
            p.requires_grad_(not frozen)


def hold_batch_norm(network: nn.Module, groups, frozen: bool, batch_size: int) -> int:
    """Put batch norm layers that must keep their statistics into eval mode (after ``.train()``);
    returns how many."""
    if batch_size < SMALL_BATCH:
        targets = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    elif frozen:
        frozen_ids = {id(p) for group in groups[:-1] for p in group}
        targets = [m for m in network.modules()
                   if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None
                   and id(m.weight) in frozen_ids]
    else:
        return 0
    for m in targets:
        m.eval()
    return len(targets)


PUBLISHED_PREFIX = "imagenet:"


def published_model(spec: str, weights: str | None, sha256: str | None = None, class_names: str | None = None):
    """``imagenet:resnet50`` with its published weights as a SavedModel ready to predict.

    The weights must be given (a file, URL or ``hf://`` id: nothing is downloaded implicitly). Class
    names come from ``class_names`` (a text file, one per line, or a JSON list), else from a
    ``config.json`` beside the weights (Hugging Face's ``label_names`` / ``id2label``), else they are
    the indices ("class 0" …). Preprocessing: shortest side to 224, centre square crop, ImageNet
    mean/std (torchvision evaluates on a 224 crop of a 256 side, so top-1 is slightly below published).
    """
    from pixelforge.models import build_model
    from pixelforge.train.normalize import BatchTransform
    from pixelforge.train.saved import SavedModel

    name = spec[len(PUBLISHED_PREFIX):] if spec.startswith(PUBLISHED_PREFIX) else spec
    if not weights:
        raise ParameterError(f"{spec}: give the published weights with --weights (a file, an http(s) URL or "
                             "hf://owner/repo[/file]); pixelforge never downloads without being asked")
    preprocess = default_preprocess(Preprocess(resize="crop"), name, None)  # an unknown name fails here
    if preprocess.size is None:
        raise ParameterError(f"{spec}: {name!r} is not a pre-trainable backbone; one of resnet18, resnet34, "
                             "resnet50, mobilenet_v3_large, efficientnet_b0")
    network = build_model(name, (preprocess.channels, *preprocess.size), 1000)
    path = weights_file(weights, sha256)
    report = load_source(network, weights, path=path)
    if report.get("head") != "loaded":  # a random head would print confident nonsense
        raise PixelforgeError(f"{weights}: these weights have no 1000-class ImageNet head for {name} "
                              f"({report.get('head')}); use them with train --pretrained instead")
    names = read_class_names(class_names, path, 1000)
    doc = {"architecture": {"name": name, "params": {}}, "input_shape": list(network.config["input_shape"]),
           "classes": names, "training": {"pretrained": weights, "loaded": report}}
    return SavedModel(network.eval(), BatchTransform(preprocess).eval(), names, preprocess, doc, Path(str(weights)))


def read_class_names(class_names: str | None, weights_path: Path, count: int) -> list[str]:
    """Class names for a published classifier (see :func:`published_model`)."""
    if class_names:
        text = Path(class_names).read_text(encoding="utf-8")
        names = json.loads(text) if text.lstrip().startswith("[") else [line.strip() for line in text.splitlines()
                                                                          if line.strip()]
    else:
        names = None
        config = weights_path.parent / "config.json"
        if config.is_file():
            try:
                doc = json.loads(config.read_text(encoding="utf-8"))
            except ValueError:
                doc = {}
            if isinstance(doc.get("label_names"), list):
                names = doc["label_names"]
            elif isinstance(doc.get("id2label"), dict):
                names = [doc["id2label"].get(str(i), str(i)) for i in range(count)]
        if names is None:
            return [f"class {i}" for i in range(count)]
    names = [str(n) for n in names]
    if len(names) != count:
        raise ParameterError(f"{class_names or weights_path}: {len(names)} class names for a {count}-class head")
    return names
