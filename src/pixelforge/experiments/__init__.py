"""Reproducible studies built on the library (run from ``pixelforge experiment ...``).

- ``curation``: the data-curation material's MNIST table (test / inverted / shifted), reproduced.
- ``wild_retrain``: train, test in the wild, retrain with the recommended augmentation, test again.
"""
