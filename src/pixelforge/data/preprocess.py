"""Preprocess: a small serializable spec that turns a Manifest row into model-ready numbers.

Two stages, so that augmentation can sit between them:
  ``load``      decode + channels + resize  → uint8/uint16 HWC array (what gets stored and augmented)
  ``transform`` cast + normalize + standardize on a batch → float NCHW array (what the model sees)

The spec (JSON) is saved with every model, and prediction applies exactly the spec a model was trained
with. Feature-wise statistics are fitted on the training split in one streaming pass.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pixelforge.data.decode import DEFAULT_MAX_PIXELS, decode_image
from pixelforge.data.resize import RESIZE_METHODS, resize

NORMALIZATIONS = ("auto", "unit", "symmetric", "none")
STANDARDIZATIONS = (None, "global", "channel", "pixel", "sample")
DTYPES = ("float32", "float16")


@dataclass
class Preprocess:
    """What to do to every image before the model sees it.

    size: (height, width) or None to keep sizes (then all images must already agree).
    resize: "squash", "crop" (shortest side then centre crop) or "pad" (letterbox).
    interpolation: "auto" (area shrinking, cubic enlarging) or a name from ``resize.INTERPOLATIONS``.
    channels: 1, 3 or None (keep the image's own).
    background: None drops alpha; [r, g, b] composites transparency onto that colour.
    dtype: "float32" or "float16"; the cast happens before normalization.
    normalize: "auto" (/255 for 8-bit, /65535 for 16-bit, into [0, 1]), "unit" (same), "symmetric"
        ([-1, 1]) or "none" (raw values).
    standardize: None, "global" (one mean/std), "channel" (per channel), "pixel" (per pixel and
        channel) — all fitted on training data — or "sample" (each image by its own mean/std).
    """

    size: tuple[int, int] | None = None
    resize: str = "squash"
    interpolation: str = "auto"
    channels: int | None = None
    background: list[int] | None = None
    dtype: str = "float32"
    normalize: str = "auto"
    standardize: str | None = None
    epsilon: float = 1e-7
    mean: list | None = field(default=None, repr=False)
    std: list | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.size is not None:
            if isinstance(self.size, int):
                self.size = (self.size, self.size)
            self.size = (int(self.size[0]), int(self.size[1]))
            if min(self.size) <= 0:
                raise ValueError(f"size must be positive, got {self.size}")
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {RESIZE_METHODS}, got {self.resize!r}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1, 3 or None, got {self.channels!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.standardize not in STANDARDIZATIONS:
            raise ValueError(f"standardize must be one of {STANDARDIZATIONS}, got {self.standardize!r}")

    # ---- stage 1: decode, channels, resize ----------------------------------------------------
    def decode(self, data, name: str = "image", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Raw bytes or array → HWC uint8/uint16 at the spec's size and channels."""
        img = decode_image(
            data, name=name, channels=self.channels, background=self.background,
            max_pixels=max_pixels, draft_size=self.size,
        )
        if self.size is not None:
            img = resize(img, self.size, self.resize, self.interpolation)
        return img

    def load(self, manifest, i: int) -> np.ndarray:
        return self.decode(manifest.read(i), name=manifest.describe(i))

    # ---- stage 2: batch → float ---------------------------------------------------------------
    def scale(self, batch: np.ndarray) -> np.ndarray:
        """Cast and normalize an NHWC batch (no standardization), keeping NHWC."""
        dtype = np.dtype(self.dtype)
        x = batch.astype(dtype, copy=True)
        if self.normalize == "none":
            return x
        peak = 65535.0 if batch.dtype == np.uint16 else 255.0
        if self.normalize in ("auto", "unit"):
            x /= dtype.type(peak)
        elif self.normalize == "symmetric":
            x /= dtype.type(peak / 2)
            x -= dtype.type(1.0)
        return x

    def standardize_batch(self, x: np.ndarray) -> np.ndarray:
        """Apply the standardization to a normalized NHWC float batch, in place where possible."""
        if self.standardize is None:
            return x
        if self.standardize == "sample":
            axes = (1, 2, 3)
            mean = x.mean(axis=axes, keepdims=True, dtype=np.float32)
            std = x.std(axis=axes, keepdims=True, dtype=np.float32)
            return ((x - mean) / (std + self.epsilon)).astype(x.dtype)
        if self.mean is None or self.std is None:
            raise ValueError(
                f"standardize={self.standardize!r} needs statistics: call fit() on the training data first"
            )
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((x - mean) / (std + self.epsilon)).astype(x.dtype)

    def transform(self, batch: np.ndarray, channels_first: bool = True) -> np.ndarray:
        """uint8/uint16 NHWC batch → float NCHW (or NHWC) array, normalized and standardized."""
        if batch.ndim == 3:
            batch = batch[..., None]
        x = self.standardize_batch(self.scale(batch))
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if channels_first else x

    # ---- statistics ---------------------------------------------------------------------------
    def fit(self, images, batch_size: int = 1024) -> Preprocess:
        """Fit feature-wise mean/std in one streaming pass over ``images``.

        ``images`` is a Manifest (decoded with this spec) or an iterable of NHWC batches / HWC images
        (already at the spec's size). Memory holds only running sums.
        """
        from pixelforge.data.stats import RunningStats

        stats = RunningStats()
        for batch in _iterate_batches(self, images, batch_size):
            stats.update(self.scale(batch))
        if stats.count == 0:
            raise ValueError("cannot fit statistics on zero images")
        if self.standardize == "global":
            self.mean, self.std = [stats.global_mean()], [stats.global_std()]
        elif self.standardize == "pixel":
            self.mean, self.std = stats.pixel_mean().tolist(), stats.pixel_std().tolist()
        else:  # channel statistics are always worth keeping (stored with HDF5 stores and models)
            self.mean, self.std = stats.channel_mean().tolist(), stats.channel_std().tolist()
        return self

    # ---- serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = asdict(self)
        out["size"] = list(self.size) if self.size else None
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("size") is not None:
            known["size"] = tuple(known["size"])
        return cls(**known)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Preprocess:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> Preprocess:
        return cls.from_json(Path(path).read_text())


def _iterate_batches(spec: Preprocess, images, batch_size: int):
    from pixelforge.data.manifest import Manifest

    if isinstance(images, Manifest):
        from pixelforge.data.loader import iterate_decoded

        skipped: list = []
        for batch, _labels, _idx in iterate_decoded(images, spec, batch_size=batch_size, skipped=skipped):
            yield batch
        if skipped:  # statistics from fewer images than asked: say so, never silently
            import warnings

            first = f"{skipped[0].item}: {skipped[0].reason}"
            warnings.warn(f"fit skipped {len(skipped)} undecodable image(s), e.g. {first}", stacklevel=3)
        return
    if isinstance(images, np.ndarray):
        # an NHWC batch or one HWC image is used as is; a gray (N,)H,W array gets its channel axis
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] not in (1, 3)):
            images = images[..., None]
        images = [images]
    for item in images:
        item = np.asarray(item)
        if item.ndim == 3:
            item = item[None]
        yield item
