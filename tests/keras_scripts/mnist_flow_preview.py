# ruff: noqa  (written in the style of Keras 2 tutorials on purpose)
"""Tutorial style: feature standardization on MNIST-like digits, 9 augmented images saved and plotted.

Written as Keras 2 tutorials do it; only the import line (and the data loading, since the datasets
module of Keras is not used here) differs: usage ``python mnist_flow_preview.py data.npz outdir``.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib import pyplot as plt

from pixelforge.keras import ImageDataGenerator  # was: from keras.preprocessing.image import ImageDataGenerator

data = np.load(sys.argv[1])
(X_train, y_train) = data["x"], data["y"]
out_dir = sys.argv[2]

# reshape to be [samples][width][height][channels]
X_train = X_train.reshape((X_train.shape[0], 28, 28, 1))
# convert from int to float
X_train = X_train.astype("float32")

# define data preparation
datagen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                             rotation_range=90, width_shift_range=0.2, height_shift_range=0.2)
# fit parameters from data
datagen.fit(X_train)

os.makedirs(out_dir, exist_ok=True)
# configure batch size and retrieve one batch of images
for X_batch, y_batch in datagen.flow(X_train, y_train, batch_size=9, save_to_dir=out_dir, save_prefix="aug",
                                     save_format="png", seed=1):
    # create a grid of 3x3 images
    fig, ax = plt.subplots(3, 3, sharex=True, sharey=True)
    for i in range(3):
        for j in range(3):
            ax[i][j].imshow(X_batch[i * 3 + j].reshape(28, 28), cmap=plt.get_cmap("gray"))
    # show the plot
    plt.savefig(os.path.join(out_dir, "grid.png"))
    break

print("batch", X_batch.shape, X_batch.dtype, "mean %.3f std %.3f" % (X_batch.mean(), X_batch.std()))
print("labels", list(y_batch))
