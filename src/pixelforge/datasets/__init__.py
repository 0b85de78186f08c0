"""Built-in data: a small real Fashion-MNIST sample shipped in the package, and the synthetic
``shapes`` generator with controllable defects (for testing audits and robustness checks)."""

from __future__ import annotations


def load_fashion_sample(*args, **kwargs):
    """The embedded Fashion-MNIST sample as a Manifest (see ``pixelforge.datasets.fashion``)."""
    from pixelforge.datasets.fashion import load_fashion_sample as load

    return load(*args, **kwargs)


def make_shapes(*args, **kwargs):
    """Synthetic shapes dataset with known defects (see ``pixelforge.datasets.shapes``)."""
    from pixelforge.datasets.shapes import make_shapes as make

    return make(*args, **kwargs)
