"""The Keras side of ``bench.train_speed`` and ``bench.zoo_speed``: a zoo architecture in Keras, each epoch timed.

Runs in an interpreter that has the peer installed (never pixelforge's venv):

    KERAS_FLAVOUR=tf_keras  PYTHON bench/keras_train_peer.py DATA.npz BATCH THREADS EPOCHS OUT.json [MODEL [OPTIMIZER]]
    KERAS_FLAVOUR=keras3 KERAS_BACKEND=jax  PYTHON bench/keras_train_peer.py ...

MODEL is a zoo name (default fmnist_baseline); OPTIMIZER a JSON object {"name": "sgd"|"rmsprop", "lr",
"momentum", "nesterov"} (default the protocol's SGD 0.01, momentum 0.9). Each architecture is the zoo's
in Keras' own layer order (``build``); where the zoo reorders layers for speed (pool before ReLU) the
result is the same. Softmax output and categorical cross-entropy, as the Keras material writes it; x/255
done once up front, so only ``fit`` is timed.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build(keras, name: str, shape: tuple, classes: int):
    """The zoo model ``name`` in Keras (see each zoo module's docstring for the architecture)."""
    layers = keras.layers
    inputs = keras.Input(shape=shape)
    if name == "fmnist_baseline":
        x = layers.Conv2D(32, 3, activation="relu", kernel_initializer="he_uniform")(inputs)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(100, activation="relu", kernel_initializer="he_uniform")(x)
    elif name == "dnn":
        x = layers.Dense(512, activation="relu")(layers.Flatten()(inputs))
    elif name == "linear":
        x = layers.Flatten()(inputs)
        return keras.Model(inputs, layers.Dense(classes, activation="softmax", kernel_initializer="zeros")(x))
    elif name == "shallownet":
        x = layers.Flatten()(layers.Conv2D(32, 3, padding="same", activation="relu")(inputs))
    elif name == "lenet":
        x = layers.MaxPooling2D(2)(layers.Conv2D(20, 5, activation="relu")(inputs))
        x = layers.MaxPooling2D(2)(layers.Conv2D(50, 5, activation="relu")(x))
        x = layers.Dense(500, activation="relu")(layers.Flatten()(x))
    elif name == "minivggnet":
        x = inputs
        for filters in (32, 64):
            for _ in range(2):
                x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
                x = layers.BatchNormalization()(x)
            x = layers.Dropout(0.25)(layers.MaxPooling2D(2)(x))
        x = layers.BatchNormalization()(layers.Dense(512, activation="relu")(layers.Flatten()(x)))
        x = layers.Dropout(0.5)(x)
    elif name == "resnet":
        def conv_bn_relu(x, filters):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_uniform")(x)
            return layers.ReLU()(layers.BatchNormalization()(x))

        def stage(x, filters):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_uniform")(x)
            return layers.ReLU()(layers.BatchNormalization()(layers.MaxPooling2D(2)(x)))

        def residual(x, filters):
            return layers.Add()([x, conv_bn_relu(conv_bn_relu(x, filters), filters)])

        x = conv_bn_relu(inputs, 16)
        x = residual(stage(x, 32), 32)
        x = stage(x, 64)
        x = residual(stage(x, 128), 128)
        x = layers.GlobalMaxPooling2D()(x)
        x = layers.Rescaling(0.125)(layers.Dense(classes, kernel_initializer="he_uniform")(x))
        return keras.Model(inputs, layers.Softmax()(x))
    else:
        raise SystemExit(f"no Keras version of {name!r}")
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x))


def optimizer(keras, options: dict):
    if options.get("name", "sgd") == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=options.get("lr", 0.001))
    return keras.optimizers.SGD(learning_rate=options.get("lr", 0.01), momentum=options.get("momentum", 0.0),
                                nesterov=bool(options.get("nesterov", False)))


def main(data_path: str, batch: int, threads: int, epochs: int, out: str, model_name: str = "fmnist_baseline",
         options: str = '{"name": "sgd", "lr": 0.01, "momentum": 0.9}') -> None:
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
    classes = int(data["classes"]) if "classes" in data else 10
    y = np.eye(classes, dtype="float32")[data["y"]]
    model = build(keras, model_name, x.shape[1:], classes)
    model.compile(optimizer=optimizer(keras, json.loads(options)), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(x[: batch * 2], y[: batch * 2], epochs=1, batch_size=batch, verbose=0)  # build + trace
    warmup = time.perf_counter() - started
    epoch_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)

    model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0, shuffle=True, callbacks=[EpochTimer()])
    with open(out, "w") as f:
        json.dump({"epoch_seconds": epoch_seconds, "warmup_s": warmup, "version": version,
                   "parameters": int(sum(w.shape.num_elements() for w in model.trainable_weights))}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], *sys.argv[6:8])
