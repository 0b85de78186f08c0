# ruff: noqa  (written in the style of Keras 2 tutorials on purpose)
"""Tutorial style: labels in a CSV read with pandas, flow_from_dataframe with categorical labels
and augmented copies written with save_to_dir; usage ``python dataframe_flow.py labels.csv IMAGES_DIR OUT_DIR``.
"""
import sys

import pandas as pd

from pixelforge.keras import ImageDataGenerator  # was: from keras.preprocessing.image import ImageDataGenerator

df = pd.read_csv(sys.argv[1])
datagen = ImageDataGenerator(rescale=1.0 / 255, rotation_range=20, brightness_range=[0.7, 1.3],
                             fill_mode="reflect", validation_split=0.25)
train_generator = datagen.flow_from_dataframe(
    dataframe=df,
    directory=sys.argv[2],
    x_col="id",
    y_col="label",
    subset="training",
    batch_size=4,
    seed=42,
    shuffle=True,
    class_mode="categorical",
    target_size=(24, 24),
    save_to_dir=sys.argv[3],
    save_prefix="train",
    save_format="jpeg",
)
STEP_SIZE_TRAIN = train_generator.n // train_generator.batch_size
for _ in range(STEP_SIZE_TRAIN):
    x, y = train_generator.next()
    assert x.shape[1:] == (24, 24, 3) and y.shape[1] == len(train_generator.class_indices)
print("classes:", sorted(train_generator.class_indices), "filenames:", len(train_generator.filenames))
