"""Pipeline: an ordered list of ops built from a spec, applied to whole batches on the fly.

    pipe = Pipeline.from_spec("rotation_range=15,width_shift_range=0.2,horizontal_flip")
    batch = pipe(batch_nhwc_uint8, np.random.default_rng([seed, epoch, batch_index]))

The same generator state gives the same batch, so a training run repeats exactly; nothing is
materialized beyond the batch at hand. ``to_dict()`` records the ops in the order they run, and
where normalization sits among them.
"""

from __future__ import annotations

import difflib
import json

import numpy as np

from pixelforge.augment import compositing, geometric, morphology, photometric  # noqa: F401  (register the non-Keras ops)
from pixelforge.augment.base import OPS, Op
from pixelforge.augment.keras_ops import KERAS_KEYS, Flip, KerasAffine
from pixelforge.augment.normalize import NORMALIZE_KEYS
from pixelforge.augment.spec import SpecError, parse_spec
from pixelforge.errors import PixelforgeError

TOP_LEVEL_KEYS = {**KERAS_KEYS, **NORMALIZE_KEYS}
PIPELINE_OPTIONS = ("value_range",)


def known_keys() -> list[str]:
    return sorted(set(TOP_LEVEL_KEYS) | set(OPS) - {"affine", "flip", "normalize"})


def _unknown(key: str) -> SpecError:
    close = difflib.get_close_matches(key, known_keys(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return SpecError(f"unknown augmentation {key!r}{hint} (known: {', '.join(known_keys())})")


def _ops_from_flat(spec: dict) -> list[Op]:
    """{"rotation_range": 15, "blur": 1.5, "blur.p": 0.3, ...} → ops in order of first mention."""
    params: dict[str, dict] = {}
    disabled: set[str] = set()
    for key, value in spec.items():
        if key in PIPELINE_OPTIONS:
            continue
        if "." in key:
            name, param = key.split(".", 1)
            if name not in OPS:
                raise _unknown(name)
        elif key in TOP_LEVEL_KEYS:
            name, param = TOP_LEVEL_KEYS[key], key
        elif key in OPS and key not in ("affine", "flip", "normalize"):
            name, param = key, OPS[key].main
            if value is False:
                disabled.add(name)
                continue
            if value is True and param != "p":
                param = None  # bare name: the op with its defaults
        else:
            raise _unknown(key)
        entry = params.setdefault(name, {})
        if param is not None:
            entry[param] = value
    return [OPS[name](**kwargs) for name, kwargs in params.items() if name not in disabled]


def _ops_from_list(items) -> list[Op]:
    ops = []
    for item in items:
        if not isinstance(item, dict) or "op" not in item:
            raise SpecError(f'each entry of "ops" must be an object with an "op" name, got {item!r}')
        kwargs = dict(item)
        name = kwargs.pop("op")
        if name not in OPS:
            raise _unknown(name)
        ops.append(OPS[name](**kwargs))
    return ops


class Pipeline:
    """Ops applied in order to NHWC batches (uint8, uint16 or float), each drawing per-image randomness.

    value_range: what float pixels saturate to, [0, 1] by default; None for no saturation
    (e.g. after standardization). Integer batches saturate to their dtype's range.
    """

    def __init__(self, ops: list[Op] | None = None, value_range=(0.0, 1.0)):
        self.ops = list(ops or [])
        for op in self.ops:
            if not isinstance(op, Op):
                raise TypeError(f"Pipeline ops must be Op instances, got {type(op).__name__}")
        if value_range is not None:
            lo, hi = (float(v) for v in value_range)
            if lo >= hi:
                raise SpecError(f"value_range must be [low, high] with low < high, got {value_range!r}")
            value_range = (lo, hi)
        self.value_range = value_range

    # ---- building and recording ---------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec=None) -> Pipeline:
        """From None, a Pipeline, a dict (flat keys or {"ops": [...]}), JSON text or a CLI string."""
        if isinstance(spec, Pipeline):
            return spec
        data = parse_spec(spec)
        value_range = data.get("value_range", (0.0, 1.0))
        if "ops" in data:
            extra = set(data) - {"ops", "value_range"}
            if extra:
                raise SpecError(f'a spec with "ops" takes only "value_range" beside it, got {sorted(extra)}')
            return cls(_ops_from_list(data["ops"]), value_range)
        return cls(_ops_from_flat(data), value_range)

    @classmethod
    def from_dict(cls, data: dict) -> Pipeline:
        return cls.from_spec(data)

    def to_dict(self) -> dict:
        return {
            "ops": [op.to_dict() for op in self.ops],
            "value_range": None if self.value_range is None else list(self.value_range),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def get_config(self) -> dict:
        """Keras' name for ``to_dict``: the ops in order, with every parameter."""
        return self.to_dict()

    @classmethod
    def from_config(cls, config: dict) -> Pipeline:
        return cls.from_spec(config)

    def __repr__(self) -> str:
        return f"Pipeline({self.ops!r})"

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self):
        return iter(self.ops)

    @property
    def is_identity(self) -> bool:
        return all(op.is_identity for op in self.ops)

    def describe(self) -> str:
        """One line naming the ops in order, e.g. 'affine → flip → brightness'."""
        names = [op.name for op in self.ops if not op.is_identity]
        return " → ".join(names) if names else "none"

    # ---- normalization boundary -----------------------------------------------------------------
    def _normalize_position(self) -> int:
        for i, op in enumerate(self.ops):
            if op.stage == "normalize":
                return i
        return len(self.ops)

    @property
    def before_normalization(self) -> Pipeline:
        """The ops that run on raw pixels (uint8 or float), before any normalize op."""
        return Pipeline(self.ops[: self._normalize_position()], self.value_range)

    @property
    def after_normalization(self) -> Pipeline:
        """The normalize op and everything after it (float batches of normalized values)."""
        return Pipeline(self.ops[self._normalize_position():], None)

    def fit(self, data) -> Pipeline:
        """Fit feature-wise statistics of the normalize op (if any) on arrays or batches."""
        for op in self.ops:
            if hasattr(op, "fit"):
                op.fit(data)
        return self

    # ---- applying -------------------------------------------------------------------------------
    def __call__(self, batch: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Augment an NHWC (or NHW) batch; returns a new array of the same shape and dtype."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        x = np.asarray(batch)
        squeeze = x.ndim == 3
        if squeeze:
            x = x[..., None]
        if x.ndim != 4:
            raise PixelforgeError(f"augmentation expects an NHWC batch, got shape {np.shape(batch)}")
        if x.dtype.kind not in "uif":
            raise PixelforgeError(f"augmentation expects integer or float pixels, got {x.dtype}")
        lo, hi = self._range_for(x.dtype)
        normalized, i = False, 0
        while i < len(self.ops):
            op = self.ops[i]
            if op.stage == "normalize":
                normalized = True
            bounds = (-np.inf, np.inf) if normalized and op.stage != "normalize" else (lo, hi)
            following = self.ops[i + 1] if i + 1 < len(self.ops) else None
            # flips next to the affine warp, and 8-bit point ops after it, are folded into it:
            # one pass over the pixels instead of several (same draws, same result)
            if isinstance(op, KerasAffine) or (isinstance(op, Flip) and isinstance(following, KerasAffine)):
                kwargs = {}
                if isinstance(op, Flip):
                    kwargs["flip_before"], op, i = op, following, i + 1
                elif isinstance(following, Flip):
                    kwargs["flip_after"], i = following, i + 1
                i += 1
                points = []
                while x.dtype == np.uint8 and i < len(self.ops) and hasattr(self.ops[i], "uint8_tables"):
                    if not self.ops[i].is_identity:
                        points.append(self.ops[i])
                    i += 1
                x = op(x, rng, *bounds, point_ops=points, **kwargs)
            else:
                x, i = op(x, rng, *bounds), i + 1
        if np.may_share_memory(x, batch):  # never hand back (a view of) the caller's array
            x = x.copy()
        return x[..., 0] if squeeze else x

    def _range_for(self, dtype) -> tuple[float, float]:
        dtype = np.dtype(dtype)
        if dtype.kind in "ui":
            info = np.iinfo(dtype)
            return float(info.min), float(info.max)
        if self.value_range is None:
            return -np.inf, np.inf
        return self.value_range
