"""pixelforge: a data-centric toolkit for image classification.

The façade — everything a script needs, one import away::

    from pixelforge import read_dataset, train_test_split, Preprocess, Pipeline, Trainer, load_model, audit

Names load on first use (PEP 562), so ``import pixelforge`` stays fast and torch is imported only by
the names that need it.
"""

__version__ = "0.1.0"

# name → module that defines it; resolved lazily by __getattr__
_FACADE = {
    "Manifest": "pixelforge.data.manifest",
    "read_dataset": "pixelforge.data.read",
    "train_test_split": "pixelforge.data.split",
    "Preprocess": "pixelforge.data.preprocess",
    "Pipeline": "pixelforge.augment.pipeline",
    "Trainer": "pixelforge.train.trainer",
    "load_model": "pixelforge.train.saved",
    "PixelforgeError": "pixelforge.errors",
}

__all__ = [*_FACADE, "__version__", "audit"]


def __getattr__(name: str):
    import importlib

    if name == "audit":  # the audit package is itself callable: audit("data/", out="report/")
        return importlib.import_module("pixelforge.audit")
    if name in _FACADE:
        value = getattr(importlib.import_module(_FACADE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pixelforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
