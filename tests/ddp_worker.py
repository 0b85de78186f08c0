"""One rank of a data-parallel test run (tests/test_distributed.py starts two of these with RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT set): trains on images that carry their own index in two
pixels, and records which indices each epoch's batches held."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch


def indexed_images(n: int, size: int = 12, seed: int = 0):
    """Learnable toy images (a bright square per class) whose pixels (0, 0) and (0, 1) hold the index."""
    from tests.train_helpers import toy_images

    x, y = toy_images(n_per_class=n // 3, size=size, seed=seed)
    index = np.arange(len(y))
    x[:, 0, 0, 0], x[:, 0, 1, 0] = index % 256, index // 256
    return x, y


def main(out: str, run_dir: str, epochs: int, batch_size: int) -> None:
    torch.set_num_threads(1)
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.train import data as train_data
    from pixelforge.train.run import standard_callbacks
    from pixelforge.train.trainer import Trainer

    seen: list[list[int]] = []
    original = train_data.ArrayData.batches

    def recording(self, size, order=None):  # the training batches (validation goes through _logits)
        for images, labels in original(self, size, order):
            if len(self) > 40:
                seen[-1].extend((images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 1, 0].astype(int)).tolist())
            yield images, labels

    train_data.ArrayData.batches = recording
    x, y = indexed_images(150)
    trainer = Trainer("dnn", Preprocess(standardize="channel"), seed=3, verbose=False, model_params={"nodes": [16]}, optimizer="sgd", lr=0.05)

    class EpochMark:
        rank_zero_only = False

        def set_trainer(self, trainer): ...
        def on_train_begin(self, logs=None): ...
        def on_epoch_begin(self, epoch, logs=None): seen.append([])
        def on_train_batch_end(self, batch, logs): ...
        def on_epoch_end(self, epoch, logs): ...
        def on_train_end(self, logs=None): ...
        def close(self): ...
        def state_dict(self): return {}
        def load_state_dict(self, state): ...

    callbacks = [EpochMark(), *standard_callbacks(run_dir, "val_loss", None, False)]
    history = trainer.fit((x[:120], y[:120]), validation=(x[120:], y[120:]), epochs=epochs, batch_size=batch_size,
                          callbacks=callbacks)
    with open(out, "w") as f:
        json.dump({"rank": trainer.ranks.rank, "world": trainer.ranks.world, "seen": seen,
                   "history": history.history, "mean": trainer.preprocess.mean}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    os._exit(0)
