"""Keras' ``standardize`` as an op: rescale, sample-wise and feature-wise centring/scaling.

It turns pixels into model inputs, so it needs a float batch, and ops listed after it in a
pipeline run on normalized values (the order is recorded by ``Pipeline.to_dict``). Feature-wise
statistics are per channel, fitted on the training data (after rescale, as tf_keras does) in one
streaming pass over arrays or batches.
"""

from __future__ import annotations

import numpy as np

from pixelforge.augment.base import Op, register
from pixelforge.augment.spec import SpecError, number
from pixelforge.data.preprocess import standardize_samples
from pixelforge.errors import PixelforgeError

EPSILON = 1e-6  # Keras' ImageDataGenerator adds this to standard deviations (Preprocess uses its own epsilon)


@register
class Normalize(Op):
    name = "normalize"
    stage = "normalize"
    defaults = {
        "rescale": None, "samplewise_center": False, "samplewise_std_normalization": False,
        "featurewise_center": False, "featurewise_std_normalization": False, "mean": None, "std": None,
    }

    def setup(self, rescale, samplewise_center, samplewise_std_normalization, featurewise_center,
              featurewise_std_normalization, mean, std):
        self.rescale = None if rescale in (None, 0) else number("rescale", rescale)
        for key in ("samplewise_center", "samplewise_std_normalization", "featurewise_center",
                    "featurewise_std_normalization"):
            if not isinstance(self.params[key], bool):
                raise SpecError(f"{key} must be true or false, got {self.params[key]!r}")
        # Keras: std normalization implies centring
        self.params["samplewise_center"] = samplewise_center or samplewise_std_normalization
        self.params["featurewise_center"] = featurewise_center or featurewise_std_normalization
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(-1)

    @property
    def is_identity(self) -> bool:
        p = self.params
        return self.rescale is None and not (p["samplewise_center"] or p["featurewise_center"])

    @property
    def needs_fit(self) -> bool:
        p = self.params
        return (p["featurewise_center"] and self.mean is None) or (
            p["featurewise_std_normalization"] and self.std is None
        )

    def fit(self, data) -> Normalize:
        """Per-channel mean/std of an NHWC array or an iterable of NHWC batches (one streaming pass)."""
        from pixelforge.data.stats import RunningStats

        stats = RunningStats()
        for batch in [data] if isinstance(data, np.ndarray) else data:
            x = np.asarray(batch, dtype=np.float64)
            if x.ndim == 3:
                x = x[..., None]
            if x.ndim != 4:
                raise PixelforgeError(f"fit expects NHWC image arrays, got shape {x.shape}")
            stats.update(x * self.rescale if self.rescale is not None else x)
        if not stats.count:
            raise PixelforgeError("fit needs at least one image")
        self.mean, self.std = stats.channel_mean(), stats.channel_std()
        self.params["mean"], self.params["std"] = self.mean.tolist(), self.std.tolist()
        return self

    def __call__(self, x, rng, lo, hi):
        if x.dtype.kind != "f":
            raise PixelforgeError(
                f"normalize (rescale / *_center / *_std_normalization) needs a float batch, got {x.dtype}; "
                "convert first (x.astype('float32')) or leave normalization to Preprocess"
            )
        p = self.params
        x = x.copy()
        if self.rescale is not None:
            x *= np.float32(self.rescale)
        if p["samplewise_center"] or p["samplewise_std_normalization"]:
            x = standardize_samples(x, EPSILON, p["samplewise_center"], p["samplewise_std_normalization"])
        if p["featurewise_center"] or p["featurewise_std_normalization"]:
            if self.needs_fit:
                raise PixelforgeError("featurewise_center/std_normalization need statistics: call fit(x) first")
            if p["featurewise_center"]:
                x -= self.mean
            if p["featurewise_std_normalization"]:
                x /= self.std + np.float32(EPSILON)
        return x


NORMALIZE_KEYS = {key: "normalize" for key in Normalize.defaults if key not in ("mean", "std")}
