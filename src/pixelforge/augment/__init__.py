"""Augmentation: Keras-vocabulary transforms and more, batched, seeded, recorded in order.

    from pixelforge.augment import Pipeline
    pipe = Pipeline.from_spec("rotation_range=15,width_shift_range=0.2,horizontal_flip")
    out = pipe(batch_nhwc, np.random.default_rng([seed, epoch, batch_index]))
"""

from pixelforge.augment.base import OPS, Op
from pixelforge.augment.pipeline import Pipeline
from pixelforge.augment.spec import SpecError, parse_spec

__all__ = ["OPS", "Op", "Pipeline", "SpecError", "parse_spec"]
