"""The tf_keras side of the augmentation comparisons, run with an interpreter that has tf_keras
(tensorflow-cpu + tf-keras live in their own virtual environment, never in pixelforge's).

    PYTHON affine IN.npz OUT.npz     reference outputs of apply_affine_transform / channel shift / brightness
    PYTHON bench IN.npz OUT.json     images/s of ImageDataGenerator.flow with the benchmark policy

Only numpy and tf_keras are imported, so it runs in any environment that has them.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def affine(src: str, dst: str) -> None:
    import numpy as np
    from tf_keras.preprocessing.image import (
        apply_affine_transform,
        apply_brightness_shift,
        apply_channel_shift,
    )

    data = np.load(src)
    x, params, cval = data["x"], data["params"], float(data["cval"])
    out = {}
    for mode in ("constant", "nearest", "reflect", "wrap"):
        out[mode] = np.stack([
            apply_affine_transform(x, *p, row_axis=0, col_axis=1, channel_axis=2, fill_mode=mode, cval=cval, order=1)
            for p in params
        ])
    out["channel_shift"] = np.stack([apply_channel_shift(x * 255, s, 2) for s in data["shifts"]])
    out["brightness"] = np.stack([apply_brightness_shift(x * 255, b, False) for b in data["brightness"]])
    np.savez(dst, **out)


def bench(src: str, dst: str) -> None:
    import numpy as np
    import tensorflow as tf
    from tf_keras.preprocessing.image import ImageDataGenerator

    tf.config.threading.set_intra_op_parallelism_threads(2)
    data = np.load(src)
    seconds = float(data["seconds"])
    results = {}
    for name in data["names"]:
        x = data[str(name)].astype("float32")
        gen = ImageDataGenerator(horizontal_flip=True, rotation_range=15, width_shift_range=0.1,
                                 height_shift_range=0.1, zoom_range=0.1, brightness_range=[0.8, 1.2])
        it = gen.flow(x, batch_size=int(data["batch_size"]), seed=0)
        next(it)  # warm-up
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            done += len(next(it))
        results[str(name)] = done / (time.perf_counter() - start)
    import tf_keras

    with open(dst, "w") as handle:
        json.dump({"images_per_s": results, "tf_keras": tf_keras.__version__}, handle)


if __name__ == "__main__":
    {"affine": affine, "bench": bench}[sys.argv[1]](sys.argv[2], sys.argv[3])
