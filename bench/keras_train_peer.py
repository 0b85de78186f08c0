"""The Keras side of ``bench.train_speed``: the fmnist_baseline in Keras, each epoch timed.

Runs in an interpreter that has the peer installed (never pixelforge's venv):

    KERAS_FLAVOUR=tf_keras  PYTHON bench/keras_train_peer.py DATA.npz BATCH THREADS EPOCHS OUT.json
    KERAS_FLAVOUR=keras3 KERAS_BACKEND=jax  PYTHON bench/keras_train_peer.py ...

The model is the protocol's: Conv2D(32, 3x3, relu, he_uniform) → MaxPooling2D → Flatten →
Dense(100, relu, he_uniform) → Dense(10, softmax); SGD(0.01, momentum 0.9), categorical
cross-entropy; x/255 done once up front (as the material's code does), so only ``fit`` is timed.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(data_path: str, batch: int, threads: int, epochs: int, out: str) -> None:
    import numpy as np

    flavour = os.environ.get("KERAS_FLAVOUR", "tf_keras")
    if flavour == "tf_keras":
        import tensorflow as tf
        import tf_keras as keras

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        version = f"tf_keras {keras.__version__} / tensorflow {tf.__version__}"
    else:
        os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                              f"intra_op_parallelism_threads={threads}")
        import keras

        version = f"keras {keras.__version__} / {keras.backend.backend()}"
    data = np.load(data_path)
    x = data["x"].astype("float32") / 255.0
    y = np.eye(10, dtype="float32")[data["y"]]
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=x.shape[1:]),
        layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_uniform"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(100, activation="relu", kernel_initializer="he_uniform"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x[: batch * 4], y[: batch * 4], epochs=1, batch_size=batch, verbose=0)  # build + trace
    warmup = time.perf_counter() - started
    epoch_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)

    model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0, shuffle=True, callbacks=[EpochTimer()])
    with open(out, "w") as f:
        json.dump({"epoch_seconds": epoch_seconds, "warmup_s": warmup, "version": version}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
