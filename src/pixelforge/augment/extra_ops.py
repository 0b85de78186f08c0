"""Imports the modules that register ops beyond the Keras vocabulary."""

from pixelforge.augment import geometric, morphology, photometric  # noqa: F401
