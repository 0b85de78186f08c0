"""A dataset description for ``pixelforge info``: counts from the Manifest plus a decoded sample."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pixelforge.data.manifest import Manifest
from pixelforge.errors import PixelforgeError


def describe_dataset(manifest: Manifest, sample: int = 200, seed: int = 0) -> dict:
    """Manifest summary plus sizes/channels/dtypes from decoding a seeded sample of ``sample`` images."""
    report = manifest.summary()
    if sample <= 0 or len(manifest) == 0:
        return report
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(manifest), size=min(sample, len(manifest)), replace=False)
    sizes, channels, dtypes = Counter(), Counter(), Counter()
    failed = []
    for i in sorted(rows.tolist()):
        try:
            img = manifest.load(i)
        except PixelforgeError as exc:
            failed.append(str(exc))
            continue
        sizes[f"{img.shape[1]}x{img.shape[0]}"] += 1
        channels[img.shape[2] if img.ndim == 3 else 1] += 1
        dtypes[str(img.dtype)] += 1
    report["image_sample"] = {
        "decoded": int(sum(sizes.values())),
        "sizes": dict(sizes.most_common(8)),
        "channels": dict(channels),
        "dtypes": dict(dtypes),
        "failed": len(failed),
        "errors": failed[:20],
    }
    return report
