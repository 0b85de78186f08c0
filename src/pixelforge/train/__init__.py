"""Training: a Keras-style Trainer over the model zoo, callbacks, schedules, saved models.

    from pixelforge.train import Trainer, load_model
    trainer = Trainer("fmnist_baseline", Preprocess(size=28, channels=1), seed=1)
    history = trainer.fit(train_manifest, validation=test_manifest, epochs=10, batch_size=32)
    trainer.save("runs/fmnist")
    model = load_model("runs/fmnist"); probs = model.predict_arrays(images)
"""

from pixelforge.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ProgressBar,
    ResumeCheckpoint,
    TrainingMonitor,
)
from pixelforge.train.saved import SavedModel, load_model
from pixelforge.train.schedules import Schedule
from pixelforge.train.trainer import History, Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "History", "ModelCheckpoint", "ProgressBar", "ResumeCheckpoint",
    "SavedModel", "Schedule", "Trainer", "TrainingDiverged", "TrainingInterrupted", "TrainingMonitor", "load_model",
]
