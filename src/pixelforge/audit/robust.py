"""Outliers against the dataset's own distribution: robust z-scores (median and MAD), no magic levels."""

from __future__ import annotations

import numpy as np

Z_OUTLIER = 3.5  # Iglewicz & Hoaglin's cut-off for modified z-scores


def robust_z(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Modified z-score ``0.6745 (x - median) / MAD`` of every value, the statistics taken over ``mask``.

    When more than half the values are equal (MAD = 0) the mean absolute deviation stands in, so a
    dataset of mostly identical values still marks the odd ones out.
    """
    values = np.asarray(values, dtype=np.float64)
    ref = values if mask is None else values[mask]
    if ref.size == 0:
        return np.zeros_like(values)
    med = np.median(ref)
    mad = np.median(np.abs(ref - med))
    if mad > 0:
        return 0.6745 * (values - med) / mad
    mean_ad = np.mean(np.abs(ref - med))
    if mean_ad > 0:
        return (values - med) / (1.2533 * mean_ad)
    return np.zeros_like(values)
