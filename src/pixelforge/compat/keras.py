"""A drop-in ``ImageDataGenerator`` for scripts written for Keras 2 (Keras 3 removed it).

    from pixelforge.keras import ImageDataGenerator   # was: from keras.preprocessing.image import …

(``pixelforge.keras`` re-exports this module's public names; the code lives here.)

Same constructor parameters, ``fit``, ``flow``, ``flow_from_directory``, ``flow_from_dataframe``,
``random_transform`` and ``standardize``; iterators yield float32 numpy batches and carry ``n``,
``samples``, ``class_indices``, ``classes``, ``filenames``, ``len()`` and ``next()`` like Keras'.
Underneath, augmentation is a pixelforge ``Pipeline`` (batched, seeded per batch: with ``seed=``
every epoch repeats exactly) and files are listed and decoded by pixelforge's readers.

Differences from Keras, on purpose: ``width_shift_range`` shifts along the width (tf_keras swaps
the two shift ranges); with the default OpenCV engine the constant and wrap fill modes differ from
scipy along the image border (``engine="batched"`` reproduces scipy exactly, more slowly);
brightness is not quantized to 8 bits first.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from pixelforge.augment.keras_ops import Brightness, ChannelShift, Flip, KerasAffine
from pixelforge.augment.normalize import Normalize
from pixelforge.augment.pipeline import Pipeline
from pixelforge.augment.save import check_format, save_to_dir_name, to_uint8_image, write_image
from pixelforge.data.workers import default_workers, ordered_map
from pixelforge.errors import ParameterError, PixelforgeError

__all__ = ["ImageDataGenerator", "Iterator", "NumpyArrayIterator", "DirectoryIterator", "DataFrameIterator",
           "array_to_img", "img_to_array", "load_img"]

CLASS_MODES = ("categorical", "binary", "sparse", "input", None)
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
# Keras/PIL resampling names → pixelforge resize names
INTERPOLATIONS = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic", "lanczos": "lanczos",
                  "box": "area", "hamming": "bilinear", "area": "area"}


class ImageDataGenerator:
    """Generate batches of tensor image data with real-time data augmentation (Keras API)."""

    def __init__(
        self,
        featurewise_center=False,
        samplewise_center=False,
        featurewise_std_normalization=False,
        samplewise_std_normalization=False,
        zca_whitening=False,
        zca_epsilon=1e-6,
        rotation_range=0,
        width_shift_range=0.0,
        height_shift_range=0.0,
        brightness_range=None,
        shear_range=0.0,
        zoom_range=0.0,
        channel_shift_range=0.0,
        fill_mode="nearest",
        cval=0.0,
        horizontal_flip=False,
        vertical_flip=False,
        rescale=None,
        preprocessing_function=None,
        data_format=None,
        validation_split=0.0,
        interpolation_order=1,
        dtype=None,
        engine="auto",
    ):
        data_format = data_format or "channels_last"
        if data_format not in ("channels_last", "channels_first"):
            raise ParameterError(f'data_format should be "channels_last" or "channels_first", got {data_format!r}')
        if validation_split and not 0 < validation_split < 1:
            raise ParameterError(f"validation_split must be strictly between 0 and 1, got {validation_split}")
        if featurewise_std_normalization and not featurewise_center and not zca_whitening:
            warnings.warn("featurewise_std_normalization overrides featurewise_center (set to True)", stacklevel=2)
        if samplewise_std_normalization and not samplewise_center:
            warnings.warn("samplewise_std_normalization overrides samplewise_center (set to True)", stacklevel=2)
        if zca_whitening:
            featurewise_center, featurewise_std_normalization = True, False
        self.data_format = data_format
        self.channels_first = data_format == "channels_first"
        self.dtype = np.dtype(dtype or "float32")
        self._validation_split = float(validation_split or 0.0)
        self.preprocessing_function = preprocessing_function
        self.zca_whitening, self.zca_epsilon = zca_whitening, zca_epsilon
        self.zca_whitening_matrix = None
        # Keras applies affine, channel shift, flips, brightness; the flip moves next to the affine
        # warp (channel shift is a point operation, so the order does not matter) to fold into it.
        self.pipeline = Pipeline(
            [
                KerasAffine(rotation_range=rotation_range, width_shift_range=width_shift_range,
                            height_shift_range=height_shift_range, shear_range=shear_range,
                            zoom_range=zoom_range, fill_mode=fill_mode, cval=cval,
                            interpolation_order=interpolation_order, engine=engine),
                Flip(horizontal_flip=bool(horizontal_flip), vertical_flip=bool(vertical_flip)),
                ChannelShift(channel_shift_range=channel_shift_range),
                Brightness(brightness_range=None if brightness_range is None else list(brightness_range)),
            ],
            value_range=(0.0, 255.0),
        )
        self.normalize = Normalize(
            rescale=rescale, samplewise_center=samplewise_center,
            samplewise_std_normalization=samplewise_std_normalization,
            featurewise_center=featurewise_center, featurewise_std_normalization=featurewise_std_normalization,
        )
        for name in ("rotation_range", "width_shift_range", "height_shift_range", "brightness_range",
                     "shear_range", "channel_shift_range", "fill_mode", "cval", "horizontal_flip",
                     "vertical_flip", "rescale", "featurewise_center", "samplewise_center",
                     "featurewise_std_normalization", "samplewise_std_normalization", "interpolation_order"):
            setattr(self, name, locals()[name])
        self.zoom_range = list(self.pipeline.ops[0].zoom)

    # ---- statistics ---------------------------------------------------------------------------
    @property
    def mean(self):
        return None if self.normalize.mean is None else self.normalize.mean.reshape(1, 1, -1)

    @property
    def std(self):
        return None if self.normalize.std is None else self.normalize.std.reshape(1, 1, -1)

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Fit feature-wise mean/std (and the ZCA matrix) on sample data, as Keras does."""
        x = self._to_nhwc(np.asarray(x, dtype=self.dtype))
        if x.ndim != 4:
            raise ParameterError(f"fit expects rank-4 image data, got shape {x.shape}")
        if augment:
            rng = np.random.default_rng(seed)
            x = np.concatenate([self.pipeline(x, rng) for _ in range(int(rounds))])
        self.normalize.fit(x)
        if self.zca_whitening:
            flat = (x * (self.normalize.rescale or 1.0) - self.normalize.mean).reshape(len(x), -1)
            sigma = flat.T @ flat / flat.shape[0]
            u, s, _ = np.linalg.svd(sigma)
            self.zca_whitening_matrix = ((u * (1.0 / np.sqrt(s[np.newaxis] + self.zca_epsilon))) @ u.T).astype(
                np.float32)

    # ---- single images ------------------------------------------------------------------------
    def random_transform(self, x, seed=None):
        """A randomly augmented copy of one image (HWC, or CHW with channels_first)."""
        batch = self._to_nhwc(np.asarray(x, dtype=self.dtype)[None])
        return self._from_nhwc(self.pipeline(batch, np.random.default_rng(seed)))[0]

    def get_random_transform(self, img_shape, seed=None) -> dict:
        """One image's random parameters, in Keras' dictionary form (tx shifts rows here, ty columns)."""
        rng = np.random.default_rng(seed)
        affine, flip, shift, bright = self.pipeline.ops
        h, w = (img_shape[1], img_shape[2]) if self.channels_first else (img_shape[0], img_shape[1])
        zeros = np.zeros(1)
        theta = rng.uniform(-affine.rotation, affine.rotation, 1) if affine.rotation else zeros
        from pixelforge.augment.keras_ops import draw_shift

        tx = draw_shift(rng, affine.hshift, 1, h) if np.any(affine.hshift) else zeros
        ty = draw_shift(rng, affine.wshift, 1, w) if np.any(affine.wshift) else zeros
        shear = rng.uniform(-affine.shear, affine.shear, 1) if affine.shear else zeros
        zx, zy = (1.0, 1.0) if affine.zoom == (1.0, 1.0) else rng.uniform(*affine.zoom, 2)
        horizontal, vertical = flip.draw(rng, 1)
        return {
            "theta": float(theta[0]), "tx": float(tx[0]), "ty": float(ty[0]), "shear": float(shear[0]),
            "zx": float(zx), "zy": float(zy), "flip_horizontal": bool(horizontal[0]),
            "flip_vertical": bool(vertical[0]),
            "channel_shift_intensity": float(rng.uniform(-shift.range, shift.range)) if shift.range else None,
            "brightness": float(rng.uniform(*bright.range)) if bright.range else None,
        }

    def apply_transform(self, x, transform_parameters: dict):
        """Apply fixed parameters to one image, e.g. ``{"theta": 40}`` or ``{"flip_horizontal": True}``.

        tx/ty are pixels along rows/columns (height/width), theta/shear degrees, zx/zy zoom factors.
        """
        from pixelforge.augment.affine import keras_matrices, warp

        p = transform_parameters
        img = self._to_nhwc(np.asarray(x, dtype=self.dtype)[None])
        affine = self.pipeline.ops[0]
        h, w = img.shape[1:3]
        m = keras_matrices([p.get("theta", 0)], [p.get("ty", 0)], [p.get("tx", 0)], [p.get("shear", 0)],
                           [p.get("zx", 1)], [p.get("zy", 1)], h, w)
        img = warp(img, m, affine.fill_mode, affine.cval, affine.order, affine.engine)
        if p.get("channel_shift_intensity") is not None:
            img = np.clip(img + p["channel_shift_intensity"], img.min(), img.max())
        if p.get("flip_horizontal"):
            img = img[:, :, ::-1]
        if p.get("flip_vertical"):
            img = img[:, ::-1]
        if p.get("brightness") is not None:
            img = np.clip(img * p["brightness"], 0, 255)
        return self._from_nhwc(np.ascontiguousarray(img, dtype=self.dtype))[0]

    def standardize(self, x):
        """Normalize one image or a batch: preprocessing_function, rescale, centring, scaling, ZCA."""
        x = np.asarray(x, dtype=self.dtype)
        single = x.ndim == 3
        batch = self._to_nhwc(x[None] if single else x)
        batch = self._standardize_batch(batch)
        out = self._from_nhwc(batch)
        return out[0] if single else out

    def _standardize_batch(self, batch: np.ndarray) -> np.ndarray:
        if self.preprocessing_function is not None:
            batch = np.stack([np.asarray(self.preprocessing_function(img), dtype=self.dtype) for img in batch])
        if self.normalize.needs_fit:
            warnings.warn("this ImageDataGenerator specifies featurewise_center/std_normalization but has not "
                          "been fit on any training data: call .fit(x) first", stacklevel=3)
            normalize = Normalize(**{**self.normalize.params, "featurewise_center": False,
                                     "featurewise_std_normalization": False})
        else:
            normalize = self.normalize
        batch = normalize(batch.astype(np.float32, copy=False), None, -np.inf, np.inf)
        if self.zca_whitening and self.zca_whitening_matrix is not None:
            batch = (batch.reshape(len(batch), -1) @ self.zca_whitening_matrix).reshape(batch.shape)
        return batch.astype(self.dtype, copy=False)

    def augment_batch(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment and standardize an NHWC float batch (what every iterator yields)."""
        return self._standardize_batch(self.pipeline(batch.astype(self.dtype, copy=False), rng))

    def _to_nhwc(self, x):
        return np.moveaxis(x, 1, -1) if self.channels_first and x.ndim == 4 else x

    def _from_nhwc(self, x):
        return np.moveaxis(x, -1, 1) if self.channels_first and x.ndim == 4 else x

    # ---- iterators ----------------------------------------------------------------------------
    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None, save_to_dir=None,
             save_prefix="", save_format="png", ignore_class_split=False, subset=None):
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight,
                                  seed=seed, save_to_dir=save_to_dir, save_prefix=save_prefix,
                                  save_format=save_format, subset=subset)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb", classes=None,
                            class_mode="categorical", batch_size=32, shuffle=True, seed=None, save_to_dir=None,
                            save_prefix="", save_format="png", follow_links=False, subset=None,
                            interpolation="nearest", keep_aspect_ratio=False):
        return DirectoryIterator(directory, self, target_size=target_size, color_mode=color_mode, classes=classes,
                                 class_mode=class_mode, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 save_to_dir=save_to_dir, save_prefix=save_prefix, save_format=save_format,
                                 subset=subset, interpolation=interpolation, keep_aspect_ratio=keep_aspect_ratio)

    def flow_from_dataframe(self, dataframe, directory=None, x_col="filename", y_col="class", weight_col=None,
                            target_size=(256, 256), color_mode="rgb", classes=None, class_mode="categorical",
                            batch_size=32, shuffle=True, seed=None, save_to_dir=None, save_prefix="",
                            save_format="png", subset=None, interpolation="nearest", validate_filenames=True,
                            **kwargs):
        if kwargs:
            raise TypeError(f"flow_from_dataframe got unexpected arguments {sorted(kwargs)}")
        return DataFrameIterator(dataframe, directory, self, x_col=x_col, y_col=y_col, weight_col=weight_col,
                                 target_size=target_size, color_mode=color_mode, classes=classes,
                                 class_mode=class_mode, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 save_to_dir=save_to_dir, save_prefix=save_prefix, save_format=save_format,
                                 subset=subset, interpolation=interpolation, validate_filenames=validate_filenames)


class Iterator:
    """Batches over n samples: ``len()`` batches per epoch, ``it[i]``, and endless ``next(it)``.

    The order of each epoch and every batch's augmentation come from ``default_rng([seed, epoch,
    batch])``; without a seed one is drawn from numpy's global generator (so ``np.random.seed`` works).
    """

    def __init__(self, n, batch_size, shuffle, seed):
        if int(batch_size) < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle = int(n), int(batch_size), bool(shuffle)
        self.seed = int(np.random.randint(2**31 - 1)) if seed is None else int(seed)
        self.epoch = 0
        self.batch_index = 0
        self.total_batches_seen = 0
        self.index_array = None

    def _set_index_array(self):
        if self.shuffle:
            self.index_array = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            self.index_array = np.arange(self.n)

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, idx):
        if idx >= len(self) or idx < -len(self):
            raise ParameterError(f"asked to retrieve element {idx}, but the Sequence has length {len(self)}")
        idx = idx % len(self)
        if self.index_array is None:
            self._set_index_array()
        rows = self.index_array[self.batch_size * idx : self.batch_size * (idx + 1)]
        self.total_batches_seen += 1
        return self._get_batches_of_transformed_samples(rows, np.random.default_rng([self.seed, self.epoch, idx]))

    def on_epoch_end(self):
        self.epoch += 1
        self._set_index_array()

    def reset(self):
        self.batch_index = 0

    def __iter__(self):
        return self

    def __next__(self):
        if not self.n:
            raise StopIteration
        if self.index_array is None:
            self._set_index_array()
        if self.batch_index >= len(self):
            self.batch_index = 0
            self.on_epoch_end()
        idx = self.batch_index
        self.batch_index += 1
        return self[idx]

    def next(self):
        return self.__next__()

    # shared by the subclasses
    def _finish(self, batch_x, rows, rng):
        batch_x = self.image_data_generator.augment_batch(batch_x, rng)
        if self.save_to_dir:
            for img, row in zip(batch_x, rows, strict=True):
                name = save_to_dir_name(self.save_prefix, row, rng, self.save_format)
                write_image(Path(self.save_to_dir) / name, to_uint8_image(img, scale=True), self.save_format)
        return self.image_data_generator._from_nhwc(batch_x)

    def _setup_saving(self, save_to_dir, save_prefix, save_format):
        self.save_to_dir, self.save_prefix = save_to_dir, save_prefix
        self.save_format = check_format(save_format)


class NumpyArrayIterator(Iterator):
    """``flow(x, y)``: batches of in-memory arrays."""

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False, sample_weight=None, seed=None,
                 save_to_dir=None, save_prefix="", save_format="png", subset=None):
        self.image_data_generator = gen = image_data_generator
        x = gen._to_nhwc(np.asarray(x, dtype=gen.dtype))
        if x.ndim != 4:
            raise ParameterError(f"input data in NumpyArrayIterator should have rank 4, got shape {x.shape}")
        if y is not None and len(x) != len(y):
            raise ParameterError(f"x (images) and y (labels) should have the same length, got {len(x)} and {len(y)}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ParameterError(f"x and sample_weight should have the same length, got {len(x)} and {len(sample_weight)}")
        if subset is not None:
            if subset not in ("training", "validation"):
                raise ParameterError(f'subset must be "training" or "validation", got {subset!r}')
            split = int(len(x) * gen._validation_split)
            part = slice(None, split) if subset == "validation" else slice(split, None)
            x = x[part]
            y = None if y is None else np.asarray(y)[part]
            sample_weight = None if sample_weight is None else np.asarray(sample_weight)[part]
        self.x = x
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self._setup_saving(save_to_dir, save_prefix, save_format)
        super().__init__(len(x), batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, rows, rng):
        batch_x = self._finish(self.x[rows], rows, rng)
        out = (batch_x,) if self.y is None else (batch_x, self.y[rows])
        if self.sample_weight is not None:
            out = out + (self.sample_weight[rows],)
        return out[0] if len(out) == 1 else out


class _FileIterator(Iterator):
    """Shared by the directory and DataFrame iterators: decode, resize, label a batch of files."""

    def _setup_files(self, manifest, image_data_generator, target_size, color_mode, class_mode, interpolation,
                     keep_aspect_ratio, batch_size, shuffle, seed, save_to_dir, save_prefix, save_format):
        from pixelforge.data.preprocess import Preprocess

        if color_mode not in COLOR_MODES:
            raise ParameterError(f"color_mode must be one of {list(COLOR_MODES)}, got {color_mode!r}")
        if class_mode not in CLASS_MODES:
            raise ParameterError(f"class_mode must be one of {list(CLASS_MODES)}, got {class_mode!r}")
        if interpolation not in INTERPOLATIONS:
            raise ParameterError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}")
        self.image_data_generator = image_data_generator
        self.manifest = manifest
        self.target_size = tuple(int(v) for v in target_size)
        self.color_mode, self.class_mode = color_mode, class_mode
        self.interpolation = interpolation
        channels = COLOR_MODES[color_mode]
        self.image_shape = (*self.target_size, channels)
        if image_data_generator.channels_first:
            self.image_shape = (channels, *self.target_size)
        self._spec = Preprocess(size=self.target_size, resize="crop" if keep_aspect_ratio else "squash",
                                interpolation=INTERPOLATIONS[interpolation],
                                channels=3 if channels == 4 else channels)
        self._channels = channels
        self.dtype = image_data_generator.dtype
        self.filenames = list(manifest.locations)
        self.filepaths = [manifest.describe(i) for i in range(len(manifest))]
        self.samples = len(manifest)
        self._setup_saving(save_to_dir, save_prefix, save_format)
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def labels(self):
        return self.classes

    def _load(self, i):
        img = self._spec.load(self.manifest, int(i))
        if self._channels == 4:
            img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, img.dtype)], axis=2)
        return img

    def _get_batches_of_transformed_samples(self, rows, rng):
        workers = default_workers(cap=4) if len(rows) > 1 else 1
        images = list(ordered_map(self._load, rows, workers=workers, ahead=len(rows)))
        batch_x = self._finish(np.stack(images).astype(self.dtype), rows, rng)
        classes = self.classes[rows]
        if self.class_mode == "input":
            batch_y = batch_x.copy()
        elif self.class_mode == "sparse":
            batch_y = classes.astype(self.dtype)
        elif self.class_mode == "binary":
            batch_y = classes.astype(self.dtype)
        elif self.class_mode == "categorical":
            batch_y = np.zeros((len(rows), self.num_classes), dtype=self.dtype)
            batch_y[np.arange(len(rows)), classes] = 1.0
        else:
            return batch_x
        weights = getattr(self, "_weights", None)
        return (batch_x, batch_y) if weights is None else (batch_x, batch_y, weights[rows])

    def _index_classes(self, classes):
        """Class indices in the order given (Keras ``classes=``) or sorted as text, as Keras sorts them
        ("10" before "2"; pixelforge's own readers sort integer names numerically); binary needs exactly two."""
        names = list(classes) if classes else sorted(self.manifest.classes)
        if self.class_mode == "binary" and len(names) != 2:
            raise PixelforgeError(f'class_mode="binary" needs exactly 2 classes, found {len(names)}: {names[:10]}')
        self.class_indices = {name: i for i, name in enumerate(names)}
        self.num_classes = len(names)
        self.classes = np.array([self.class_indices[label] for label in self.manifest.labels], dtype=np.int32)


def _keep_classes(manifest, classes):
    if not classes:
        return manifest
    wanted = [str(c) for c in classes]
    keep = [i for i, label in enumerate(manifest.labels) if label in set(wanted)]
    return manifest.subset(keep)


class DirectoryIterator(_FileIterator):
    """``flow_from_directory``: one sub-folder per class, files in each sorted, as Keras lists them."""

    def __init__(self, directory, image_data_generator, target_size=(256, 256), color_mode="rgb", classes=None,
                 class_mode="categorical", batch_size=32, shuffle=True, seed=None, save_to_dir=None,
                 save_prefix="", save_format="png", subset=None, interpolation="nearest",
                 keep_aspect_ratio=False, dtype=None):
        from pixelforge.data.layouts.directory import read_directory_layout
        from pixelforge.data.locations import FileStorage

        root = Path(directory)
        if not root.is_dir():
            raise PixelforgeError(f"{directory}: no such folder")
        manifest = read_directory_layout(FileStorage(root), label_mode="top", source=str(directory))
        if manifest.is_split:
            raise PixelforgeError(
                f"{directory}: holds {'/'.join(manifest.split_names)} folders; flow_from_directory expects the "
                f"class folders directly (e.g. {root / manifest.split_names[0]})"
            )
        manifest = _keep_classes(manifest, classes)
        order = sorted(range(len(manifest)), key=lambda i: (manifest.labels[i], manifest.locations[i]))
        manifest = manifest.subset(order)
        if subset is not None:
            manifest = _validation_part(manifest, image_data_generator._validation_split, subset, per_class=True)
        self._setup_files(manifest, image_data_generator, target_size, color_mode, class_mode, interpolation,
                          keep_aspect_ratio, batch_size, shuffle, seed, save_to_dir, save_prefix, save_format)
        self.directory = str(directory)
        self._index_classes(classes)
        if classes:  # Keras lists classes in the order given
            order = np.argsort(self.classes, kind="stable")
            self.manifest = self.manifest.subset(order)
            self.filenames = [self.filenames[i] for i in order]
            self.filepaths = [self.filepaths[i] for i in order]
            self.classes = self.classes[order]
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")


def _validation_part(manifest, fraction, subset, per_class):
    """Keras' split: the first ``int(fraction * n)`` files (of each class, or of all) are validation."""
    if subset not in ("training", "validation"):
        raise ParameterError(f'subset must be "training" or "validation", got {subset!r}')
    if not fraction:
        raise ParameterError("subset needs validation_split > 0 in the ImageDataGenerator")
    groups = {}
    for i, label in enumerate(manifest.labels):
        groups.setdefault(label if per_class else "", []).append(i)
    keep = []
    for rows in groups.values():
        cut = int(fraction * len(rows))
        keep.extend(rows[:cut] if subset == "validation" else rows[cut:])
    return manifest.subset(sorted(keep))


class DataFrameIterator(_FileIterator):
    """``flow_from_dataframe``: file paths in ``x_col`` (relative to ``directory``), labels in ``y_col``."""

    def __init__(self, dataframe, directory, image_data_generator, x_col="filename", y_col="class",
                 weight_col=None, target_size=(256, 256), color_mode="rgb", classes=None,
                 class_mode="categorical", batch_size=32, shuffle=True, seed=None, save_to_dir=None,
                 save_prefix="", save_format="png", subset=None, interpolation="nearest",
                 validate_filenames=True):
        from pixelforge.data.layouts.arrays import read_dataframe_layout

        df = dataframe
        if weight_col is not None:
            if weight_col not in df.columns:
                raise PixelforgeError(f"no column {weight_col!r} for weight_col; columns are {list(df.columns)}")
            df = df.assign(_pixelforge_row=np.arange(len(df)))
        if class_mode is None:
            df = df.assign(_pixelforge_none="none")
            y_col = "_pixelforge_none"
        manifest = read_dataframe_layout(df, x_col=x_col, y_col=y_col, directory=directory,
                                         check_files=validate_filenames, source="dataframe")
        for skip in manifest.skipped:
            warnings.warn(f"{skip.item}: {skip.reason}; it is left out", stacklevel=3)
        manifest = _keep_classes(manifest, classes)
        if subset is not None:
            manifest = _validation_part(manifest, image_data_generator._validation_split, subset, per_class=False)
        self._setup_files(manifest, image_data_generator, target_size, color_mode, class_mode, interpolation,
                          False, batch_size, shuffle, seed, save_to_dir, save_prefix, save_format)
        self.directory = directory
        self._index_classes(classes)
        if weight_col is not None:
            weights = np.asarray(df[weight_col], dtype=self.dtype)
            by_path = dict(zip(df[x_col].astype(str), weights, strict=False))
            self._weights = np.array([by_path.get(name, 1.0) for name in self.filenames], dtype=self.dtype)
        if class_mode is None:
            print(f"Found {self.samples} validated image filenames.")
        else:
            print(f"Found {self.samples} validated image filenames belonging to {self.num_classes} classes.")


# ---- small Keras image utilities ------------------------------------------------------------------
def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """An image file as a PIL image (Keras' load_img), decoded and resized by pixelforge."""
    from PIL import Image

    from pixelforge.data.decode import decode_image
    from pixelforge.data.resize import resize

    channels = {"grayscale": 1, "rgb": 3, "rgba": None}[color_mode]
    img = decode_image(Path(path).read_bytes(), name=str(path), channels=channels)
    if target_size is not None:
        img = resize(img, (target_size[0], target_size[1]), "crop" if keep_aspect_ratio else "squash",
                     INTERPOLATIONS[interpolation])
    return Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)


def img_to_array(img, data_format=None, dtype="float32"):
    x = np.asarray(img, dtype=dtype)
    if x.ndim == 2:
        x = x[:, :, None]
    return np.moveaxis(x, -1, 0) if data_format == "channels_first" else x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    from PIL import Image

    x = np.asarray(x)
    if data_format == "channels_first":
        x = np.moveaxis(x, 0, -1)
    img = to_uint8_image(x, scale=scale) if scale or x.dtype != np.uint8 else x
    return Image.fromarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)
