"""Parity with tf_keras' own functions (slow; needs tf_keras).

tf_keras needs tensorflow, which is kept out of pixelforge's environment: the reference numbers
come from ``bench/tf_keras_peer.py`` run by an interpreter that has tf_keras — this one if it
imports tf_keras, or the one named by PIXELFORGE_TF_KERAS_PYTHON (e.g. a venv under /tmp).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixelforge.augment.affine import FILL_MODES, apply_affine_transform
from pixelforge.augment.keras_ops import Brightness, ChannelShift

PEER = Path(__file__).resolve().parents[1] / "bench" / "tf_keras_peer.py"
PARAMS = np.array([
    # theta, tx, ty, shear, zx, zy
    [20, 2, -3, 10, 1.1, 0.9],
    [-35, -4.5, 1.5, 0, 0.8, 1.3],
    [0, 6, 0, 0, 1, 1],
    [90, 0, 0, 0, 1, 1],
    [12, 0, 0, 25, 1, 1],
    [0, 0, 0, 0, 0.7, 1.2],
])


def tf_keras_python() -> str:
    if importlib.util.find_spec("tf_keras") is not None:
        return sys.executable
    other = os.environ.get("PIXELFORGE_TF_KERAS_PYTHON")
    if other and Path(other).is_file():
        return other
    pytest.skip("tf_keras is not installed (it needs tensorflow-cpu; set PIXELFORGE_TF_KERAS_PYTHON to an "
                "interpreter that has it)")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    python = tf_keras_python()
    tmp = tmp_path_factory.mktemp("parity")
    rng = np.random.default_rng(0)
    x = rng.random((19, 23, 3)).astype(np.float32)  # not square: catches row/column mix-ups
    shifts, brightness = np.array([-40.0, 25.0]), np.array([0.6, 1.4])
    np.savez(tmp / "in.npz", x=x, params=PARAMS, cval=0.3, shifts=shifts, brightness=brightness)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([python, str(PEER), "affine", str(tmp / "in.npz"), str(tmp / "out.npz")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return x, shifts, brightness, dict(np.load(tmp / "out.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_batched_engine_matches_tf_keras_apply_affine_transform(reference, fill_mode):
    x, _, _, ref = reference
    for params, expected in zip(PARAMS, ref[fill_mode], strict=True):
        ours = apply_affine_transform(x, *params, fill_mode=fill_mode, cval=0.3, engine="batched")
        assert np.abs(ours - expected).max() < 1e-4, (fill_mode, params)


@pytest.mark.slow
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_opencv_engine_is_close_to_tf_keras(reference, fill_mode):
    x, _, _, ref = reference
    for params, expected in zip(PARAMS, ref[fill_mode], strict=True):
        ours = apply_affine_transform(x, *params, fill_mode=fill_mode, cval=0.3, engine="opencv")
        diff = np.abs(ours - expected)
        if fill_mode in ("nearest", "reflect"):
            assert diff.max() < 0.04, params  # OpenCV's 1/32-pixel interpolation weights
        else:  # constant: a one-pixel band along the edge; wrap: period n instead of scipy's n - 1
            assert np.median(diff) < 0.01, params


class FixedDraw:
    """Stands in for a Generator so an op draws exactly ``value`` for every image."""

    def __init__(self, value):
        self.value = value

    def uniform(self, low, high, size):
        return np.full(size, self.value, dtype=np.float64)


@pytest.mark.slow
def test_channel_shift_and_brightness_match_tf_keras(reference):
    x, shifts, brightness, ref = reference
    img = (x * 255)[None]
    for shift, expected in zip(shifts, ref["channel_shift"], strict=True):
        out = ChannelShift(channel_shift_range=abs(shift))(img, FixedDraw(shift), 0.0, 255.0)[0]
        assert np.abs(out - expected).max() < 1e-3
    for factor, expected in zip(brightness, ref["brightness"], strict=True):
        out = Brightness(brightness_range=[factor, factor])(img, FixedDraw(factor), 0.0, 255.0)[0]
        # Keras truncates to 8 bits before PIL scales and rounds again: within factor + 1 level
        assert np.abs(out - expected).max() < factor + 1.0
