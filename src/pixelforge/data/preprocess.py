"""Preprocess: a small serializable spec that turns a Manifest row into model-ready numbers.

Two stages, so that augmentation can sit between them:
  ``load``      decode + channels + canonical steps (optional) + resize → uint8/uint16 HWC array
                (what gets stored and augmented)
  ``transform`` normalize + standardize a batch → float32 NCHW array (what the model sees; ``affine``
                is the one definition of the numbers, shared with the trainer's torch transform)

The spec (JSON) is saved with every model, and prediction applies exactly the spec a model was trained
with. Feature-wise statistics are fitted on the training split in one streaming pass.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pixelforge.data.canonical import CANONICAL_STEPS, POLARITIES
from pixelforge.data.decode import DEFAULT_MAX_PIXELS, decode_image
from pixelforge.data.resize import RESIZE_METHODS, resize
from pixelforge.errors import ParameterError, check_keys

NORMALIZATIONS = ("auto", "unit", "symmetric", "none")
STANDARDIZATIONS = (None, "global", "channel", "pixel", "sample")
# Specs written before "dtype" was removed (the model always sees float32) carry this key and value.
LEGACY_KEYS = {"dtype": "float32"}


@dataclass
class Preprocess:
    """What to do to every image before the model sees it.

    size: (height, width) or None to keep sizes (then all images must already agree).
    resize: "squash", "crop" (shortest side then centre crop) or "pad" (letterbox).
    interpolation: "auto" (area shrinking, cubic enlarging) or a name from ``resize.INTERPOLATIONS``.
    channels: 1, 3 or None (keep the image's own).
    background: None drops alpha; [r, g, b] composites transparency onto that colour.
    normalize: "auto" (/255 for 8-bit, /65535 for 16-bit, into [0, 1]), "unit" (same), "symmetric"
        ([-1, 1]) or "none" (raw values).
    standardize: None, "global" (one mean/std), "channel" (per channel), "pixel" (per pixel and
        channel) — all fitted on training data — or "sample" (each image by its own mean/std).
    canonical: canonicalizing steps among "polarity", "crop", "center", "stretch" (see
        ``data.canonical``), applied per image before the model sees it, in that order; none by default.
    polarity: the training data's background, "dark" or "light" (what the "polarity" step turns every
        image into); measured on the training data by ``fit_polarity``.
    """

    size: tuple[int, int] | None = None
    resize: str = "squash"
    interpolation: str = "auto"
    channels: int | None = None
    background: list[int] | None = None
    normalize: str = "auto"
    standardize: str | None = None
    epsilon: float = 1e-7
    mean: list | None = field(default=None, repr=False)
    std: list | None = field(default=None, repr=False)
    canonical: list[str] = field(default_factory=list)
    polarity: str | None = None

    def __post_init__(self):
        if self.size is not None:
            if isinstance(self.size, int):
                self.size = (self.size, self.size)
            self.size = (int(self.size[0]), int(self.size[1]))
            if min(self.size) <= 0:
                raise ParameterError(f"size must be positive, got {self.size}")
        if self.resize not in RESIZE_METHODS:
            raise ParameterError(f"resize must be one of {RESIZE_METHODS}, got {self.resize!r}")
        if self.channels not in (None, 1, 3):
            raise ParameterError(f"channels must be 1, 3 or None, got {self.channels!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ParameterError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.standardize not in STANDARDIZATIONS:
            raise ParameterError(f"standardize must be one of {STANDARDIZATIONS}, got {self.standardize!r}")
        self.canonical = parse_canonical(self.canonical)
        if self.polarity not in (None, *POLARITIES):
            raise ParameterError(f"polarity must be one of {POLARITIES} or None, got {self.polarity!r}")

    # ---- stage 1: decode, channels, resize ----------------------------------------------------
    def decode(self, data, name: str = "image", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Raw bytes or array → HWC uint8/uint16 at the spec's size and channels."""
        img = decode_image(
            data, name=name, channels=self.channels, background=self.background,
            max_pixels=max_pixels, draft_size=self.size,
        )
        if self.canonical:
            return self.canonicalize(img)
        if self.size is not None:
            img = resize(img, self.size, self.resize, self.interpolation)
        return img

    def canonicalize(self, img: np.ndarray) -> np.ndarray:
        """The canonical steps and the resize, on one decoded HWC image (see ``data.canonical``)."""
        from pixelforge.data import canonical as steps

        if "polarity" in self.canonical and self.polarity is None:
            raise ParameterError("the polarity step needs the training data's polarity: call fit_polarity() first")
        img = steps.canonicalize(img, self.canonical, self.size, self.polarity)
        if self.size is not None:
            img = resize(img, self.size, self.resize, self.interpolation)
        if "stretch" in self.canonical:
            img = steps.stretch_contrast(img)
        return img

    def fit_polarity(self, images, limit: int = 1000) -> Preprocess:
        """Record the background polarity of the training data (majority of up to ``limit`` images,
        a Manifest or an iterable of HWC arrays) for the "polarity" step."""
        from pixelforge.data import canonical as steps
        from pixelforge.data.manifest import Manifest

        if isinstance(images, Manifest):
            plain = Preprocess(channels=self.channels, background=self.background)
            rows = np.linspace(0, len(images) - 1, min(limit, len(images))).round().astype(int)
            sample = _readable(plain, images, np.unique(rows))
        else:
            sample = (img for _, img in zip(range(limit), images, strict=False))
        self.polarity = steps.measure_polarity(sample)
        return self

    def load(self, manifest, i: int) -> np.ndarray:
        return self.decode(manifest.read(i), name=manifest.describe(i))

    # ---- stage 2: batch → float (the one definition of normalization) ------------------------
    def affine(self, peak: float = 255.0, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) such that ``raw * scale + shift`` is the normalized pixel and, with
        ``standardize``, the feature-wise standardized one; float32, shaped to broadcast over NHWC.

        Normalization and feature-wise standardization are one affine map per pixel/channel. Both the
        numpy ``transform`` and the torch batch transform the trainer and saved models run
        (``train.normalize.BatchTransform``) take their numbers from here. ``peak`` is 255 for 8-bit and
        65535 for 16-bit images.
        """
        if self.normalize == "none":
            scale, shift = 1.0, 0.0
        elif self.normalize == "symmetric":
            scale, shift = 2.0 / peak, -1.0
        else:
            scale, shift = 1.0 / peak, 0.0
        scale, shift = np.float64(scale), np.float64(shift)
        if standardize and self.standardize in ("global", "channel", "pixel"):
            if self.mean is None or self.std is None:
                raise ParameterError(
                    f"standardize={self.standardize!r} needs statistics: call fit() on the training data first"
                )
            mean = np.asarray(self.mean, dtype=np.float64)
            inv = 1.0 / (np.asarray(self.std, dtype=np.float64) + self.epsilon)
            scale, shift = scale * inv, (shift - mean) * inv
        return np.asarray(scale, dtype=np.float32), np.asarray(shift, dtype=np.float32)

    def scale(self, batch: np.ndarray) -> np.ndarray:
        """Normalize an NHWC batch (no standardization) to float32, keeping NHWC."""
        return self._apply(batch, standardize=False)

    def transform(self, batch: np.ndarray, channels_first: bool = True) -> np.ndarray:
        """uint8/uint16 NHWC batch → float32 NCHW (or NHWC) array, normalized and standardized."""
        if batch.ndim == 3:
            batch = batch[..., None]
        x = self._apply(batch, standardize=True)
        if self.standardize == "sample":
            x = standardize_samples(x, self.epsilon)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if channels_first else x

    def _apply(self, batch: np.ndarray, standardize: bool) -> np.ndarray:
        peak = 65535.0 if batch.dtype == np.uint16 else 255.0
        scale, shift = self.affine(peak, standardize)
        x = batch.astype(np.float32, copy=True)
        x *= scale
        x += shift
        return x

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
            raise ParameterError("cannot fit statistics on zero images")
        return self.set_statistics(stats)

    def set_statistics(self, stats) -> Preprocess:
        """Keep the statistics this spec's standardization needs from a RunningStats of scaled pixels."""
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
        for key in ("canonical", "polarity"):  # specs without canonical steps stay as they always were
            if not out[key]:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        known = {k: v for k, v in data.items() if not (k in LEGACY_KEYS and v == LEGACY_KEYS[k])}
        check_keys(known, cls.__dataclass_fields__, "Preprocess")
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


def _readable(spec: Preprocess, manifest, rows):
    """The decodable images among ``rows`` (a broken file does not stop a measurement)."""
    from pixelforge.errors import PixelforgeError

    for i in rows:
        try:
            yield spec.load(manifest, int(i))
        except PixelforgeError:
            continue


def parse_canonical(steps) -> list[str]:
    """"polarity,crop" or ["crop", "polarity"] → the steps in the order they run, checked."""
    if steps is None:
        return []
    if isinstance(steps, str):
        steps = [s.strip() for s in steps.split(",") if s.strip() and s.strip().lower() != "none"]
    if not isinstance(steps, list | tuple):
        raise ParameterError(f"canonical must be a list of step names or a comma-separated string, got {steps!r}")
    unknown = [s for s in steps if s not in CANONICAL_STEPS]
    if unknown:
        raise ParameterError(f"canonical steps must be among {', '.join(CANONICAL_STEPS)}; got {', '.join(map(str, unknown))}")
    return [s for s in CANONICAL_STEPS if s in steps]


def standardize_samples(x: np.ndarray, epsilon: float, center: bool = True, scale: bool = True) -> np.ndarray:
    """Each NHWC image by its own mean and standard deviation (Keras' samplewise_center/std_normalization)."""
    axes = (1, 2, 3)
    if center:
        x = x - x.mean(axis=axes, keepdims=True, dtype=np.float32)
    if scale:
        x = x / (x.std(axis=axes, keepdims=True, dtype=np.float32) + np.float32(epsilon))
    return x.astype(np.float32, copy=False)


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
