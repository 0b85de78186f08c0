"""The model zoo's registry: name → builder, description, default optimizer, parameters.

Architectures register themselves with :func:`register`; the registry imports their modules lazily the
first time a name is looked up, so ``import pixelforge.models`` stays cheap.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from pixelforge.errors import PixelforgeError

# One module per architecture under pixelforge.models; importing it registers it.
ARCHITECTURE_MODULES = (
    "dnn", "cnn", "fmnist_baseline", "shallownet", "lenet", "minivggnet", "resnet", "linear", "knn",
    "backbones.resnet", "backbones.mobilenet", "backbones.efficientnet",
)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable
    description: str
    default_optimizer: str | None = None
    optimizer_options: dict = field(default_factory=dict)

    @property
    def params(self) -> dict:
        """Parameter name → default value (JSON-able)."""
        out = {}
        for pname, p in inspect.signature(self.builder).parameters.items():
            if p.kind is p.KEYWORD_ONLY:
                out[pname] = list(p.default) if isinstance(p.default, tuple) else p.default
        return out


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(name: str, description: str, optimizer: str | None = None, optimizer_options: dict | None = None):
    """Decorator for a builder ``f(input_shape, num_classes, *, param=default, ...) -> ZooModel``."""

    def wrap(builder: Callable) -> Callable:
        _REGISTRY[name] = ModelSpec(name, builder, description, optimizer, dict(optimizer_options or {}))
        return builder

    return wrap


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in ARCHITECTURE_MODULES:
            importlib.import_module(f"pixelforge.models.{module}")
        _loaded = True


def list_models() -> list[ModelSpec]:
    """Every registered architecture, in the zoo's order."""
    _load()
    return [_REGISTRY[name] for name in sorted(_REGISTRY, key=_order)]


def _order(name: str) -> int:
    return ARCHITECTURE_MODULES.index(name) if name in ARCHITECTURE_MODULES else len(ARCHITECTURE_MODULES)


def get_spec(name: str) -> ModelSpec:
    _load()
    if name not in _REGISTRY:
        valid = ", ".join(spec.name for spec in list_models())
        raise PixelforgeError(f"unknown model {name!r}; valid models: {valid}")
    return _REGISTRY[name]


def _check_shape(input_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise PixelforgeError(f"input_shape must be (channels, height, width) of positive ints; got {input_shape!r}")
    if shape[0] > 4 and shape[2] <= 4:
        raise PixelforgeError(f"input_shape is (channels, height, width); {input_shape!r} looks like (H, W, C)")
    return shape


def build_model(name: str, input_shape, num_classes: int, **params):
    """Build the named architecture for images of ``input_shape`` (C, H, W) and ``num_classes`` classes.

    The model gets ``config`` (enough to rebuild it: name, resolved params, input_shape, num_classes),
    ``default_optimizer`` and ``default_optimizer_options``. Convolutional models come with
    channels-last weights; they accept inputs in either memory format.
    """
    spec = get_spec(name)
    shape = _check_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise PixelforgeError(f"num_classes must be a positive integer; got {num_classes!r}")
    defaults = spec.params
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise PixelforgeError(f"model {name!r} has no parameter {', '.join(unknown)}; its parameters: {valid}")
    resolved = {**defaults, **params}
    model = spec.builder(shape, num_classes, **resolved)
    if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        # Channels-last weights make every convolution produce channels-last outputs (the fast layout
        # on CPU, and what the trainer's NHWC batches already are); the Flatten is then a free view.
        model.to(memory_format=torch.channels_last)
    model.config = {
        "name": name,
        "params": {k: _jsonable(getattr(model, "resolved_params", {}).get(k, v)) for k, v in resolved.items()},
        "input_shape": list(shape),
        "num_classes": num_classes,
    }
    model.default_optimizer = spec.default_optimizer
    model.default_optimizer_options = dict(spec.optimizer_options)
    return model


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    return value


def describe_zoo() -> list[dict]:
    """The zoo as JSON-able rows: name, description, default optimizer (+ options), parameters."""
    return [
        {"name": s.name, "description": s.description, "default_optimizer": s.default_optimizer,
         "optimizer_options": s.optimizer_options, "params": s.params,
         "trainable_by_gradient": s.default_optimizer is not None}
        for s in list_models()
    ]
