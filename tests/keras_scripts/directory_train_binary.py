# ruff: noqa  (written in the style of Keras 2 tutorials on purpose)
"""Tutorial style: cats vs dogs from folders with flow_from_directory, validation_split, a model
trained batch by batch. The Keras model of the tutorial is replaced by a scikit-learn linear model
(the script tests the data pipeline, not Keras); usage ``python directory_train_binary.py DATA_DIR``.
"""
import sys

import numpy as np
from sklearn.linear_model import SGDClassifier

from pixelforge.keras import ImageDataGenerator  # was: from tensorflow.keras.preprocessing.image import ...

train_dir = sys.argv[1]
img_width, img_height = 32, 32
batch_size = 8
epochs = 3

train_datagen = ImageDataGenerator(
    rescale=1.0 / 255,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    validation_split=0.25,
)

train_generator = train_datagen.flow_from_directory(
    train_dir,
    target_size=(img_height, img_width),
    batch_size=batch_size,
    class_mode="binary",
    subset="training",
    seed=42,
)

validation_generator = train_datagen.flow_from_directory(
    train_dir,
    target_size=(img_height, img_width),
    batch_size=batch_size,
    class_mode="binary",
    subset="validation",
    shuffle=False,
)

print("class indices:", train_generator.class_indices)
model = SGDClassifier(loss="log_loss", random_state=0)
steps_per_epoch = train_generator.samples // batch_size
for epoch in range(epochs):
    for step in range(steps_per_epoch):
        x_batch, y_batch = next(train_generator)
        model.partial_fit(x_batch.reshape(len(x_batch), -1), y_batch, classes=[0.0, 1.0])

correct = 0
for i in range(len(validation_generator)):
    x_val, y_val = validation_generator[i]
    correct += int((model.predict(x_val.reshape(len(x_val), -1)) == y_val).sum())
print(f"validation accuracy: {correct / validation_generator.samples:.3f} on {validation_generator.samples} images")
