"""Preprocess: the JSON spec, casting, normalization, standardization fitted on training data only."""

from __future__ import annotations

import numpy as np
import pytest

from pixelforge.data.loader import iterate_decoded, load_arrays
from pixelforge.data.locations import ArrayStorage
from pixelforge.data.manifest import Manifest, index_dtype, one_hot
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.split import train_test_split
from pixelforge.data.stats import RunningStats
from pixelforge.errors import PixelforgeError


@pytest.fixture
def batch() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)


def _manifest(images: np.ndarray, labels, splits=None) -> Manifest:
    return Manifest([str(i) for i in range(len(images))], labels, ArrayStorage(images), splits=splits)


def test_json_round_trip_keeps_every_field(tmp_path):
    spec = Preprocess(size=(32, 24), resize="pad", interpolation="bilinear", channels=3, background=[255, 255, 255],
                      normalize="symmetric", standardize="channel", epsilon=1e-5,
                      mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5])
    again = Preprocess.from_json(spec.to_json())
    assert again == spec and again.mean == [0.1, 0.2, 0.3]
    spec.save(tmp_path / "p.json")
    assert Preprocess.read(tmp_path / "p.json") == spec


def test_from_dict_rejects_a_mistyped_key_and_names_the_closest():
    with pytest.raises(PixelforgeError, match=r"'standardise' \(did you mean 'standardize'\?\).*known: background"):
        Preprocess.from_dict({"size": [28, 28], "standardise": "channel"})
    with pytest.raises(ValueError, match="future_field"):  # a ParameterError is also a ValueError
        Preprocess.from_dict({**Preprocess().to_dict(), "future_field": 1})


def test_specs_saved_with_the_old_float32_dtype_still_load():
    old = {**Preprocess(size=(28, 28)).to_dict(), "dtype": "float32"}
    assert Preprocess.from_dict(old) == Preprocess(size=(28, 28))
    with pytest.raises(PixelforgeError, match="dtype"):  # float16 was never what the model saw: refuse
        Preprocess.from_dict({**old, "dtype": "float16"})


def test_int_size_and_validation():
    assert Preprocess(size=28).size == (28, 28)
    for bad in ({"size": (0, 3)}, {"resize": "zoom"}, {"channels": 2},
                {"normalize": "max"}, {"standardize": "batch"}):
        with pytest.raises(ValueError):
            Preprocess(**bad)


def test_unit_normalization_divides_by_255(batch):
    x = Preprocess().scale(batch)
    assert x.dtype == np.float32 and np.allclose(x, batch / 255.0)
    assert x.min() >= 0 and x.max() <= 1


def test_sixteen_bit_normalization_divides_by_65535():
    deep = np.array([[[[0], [65535], [32768]]]], dtype=np.uint16)
    x = Preprocess().scale(deep)
    assert np.allclose(x.ravel(), [0, 1, 32768 / 65535])


def test_symmetric_normalization_spans_minus_one_to_one():
    x = Preprocess(normalize="symmetric").scale(np.array([[[[0], [255]]]], dtype=np.uint8))
    assert np.allclose(x.ravel(), [-1, 1])


def test_no_normalization_keeps_raw_values(batch):
    assert np.array_equal(Preprocess(normalize="none").scale(batch), batch.astype(np.float32))


def test_numpy_transform_equals_the_affine_the_torch_transform_uses(batch):
    spec = Preprocess(standardize="channel", normalize="symmetric").fit(batch)
    scale, shift = spec.affine()
    expected = (batch.astype(np.float64) * scale + shift).transpose(0, 3, 1, 2)
    assert np.allclose(spec.transform(batch), expected, atol=1e-6)


def test_transform_gives_nchw(batch):
    out = Preprocess().transform(batch)
    assert out.shape == (6, 3, 5, 4) and out.flags["C_CONTIGUOUS"]
    assert Preprocess().transform(batch, channels_first=False).shape == batch.shape


def test_sample_standardization_uses_each_images_own_stats_with_epsilon(batch):
    spec = Preprocess(standardize="sample", epsilon=1e-3)
    out = spec.transform(batch, channels_first=False)
    x = batch / 255.0
    for i in range(len(batch)):
        expected = (x[i] - x[i].mean()) / (x[i].std() + 1e-3)
        assert np.allclose(out[i], expected, atol=1e-5)
    flat = np.full((1, 2, 2, 1), 9, dtype=np.uint8)
    assert np.isfinite(spec.transform(flat)).all() and (spec.transform(flat) == 0).all()


def test_standardize_without_fit_explains(batch):
    with pytest.raises(ValueError, match="call fit"):
        Preprocess(standardize="channel").transform(batch)


@pytest.mark.parametrize("mode", ["global", "channel", "pixel"])
def test_fitted_statistics_equal_numpy_on_the_training_split(batch, mode):
    images = np.random.default_rng(1).integers(0, 256, (40, 5, 4, 3), dtype=np.uint8)
    labels = ["a", "b"] * 20
    m = _manifest(images, labels)
    train, test = train_test_split(m, test_size=0.25, seed=0)
    spec = Preprocess(standardize=mode).fit(train, batch_size=7)
    x = load_arrays(train, Preprocess())[0] / 255.0
    axes = {"global": None, "channel": (0, 1, 2), "pixel": 0}[mode]
    mean, std = np.mean(x, axis=axes), np.std(x, axis=axes)
    assert np.allclose(np.asarray(spec.mean).reshape(np.shape(mean)), mean, atol=1e-6)
    assert np.allclose(np.asarray(spec.std).reshape(np.shape(std)), std, atol=1e-6)
    # the hold-out images never entered the statistics
    everything = images / 255.0
    assert not np.allclose(np.asarray(spec.mean).reshape(np.shape(mean)), np.mean(everything, axis=axes), atol=1e-6)
    out = spec.transform(load_arrays(train, Preprocess())[0], channels_first=False)
    assert np.allclose(out, (x - mean) / (std + spec.epsilon), atol=1e-5)


def test_streaming_fit_equals_a_full_array_computation():
    rng = np.random.default_rng(2)
    chunks = [rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8) for n in (1, 17, 5, 30)]
    stats = RunningStats()
    for chunk in chunks:
        stats.update(chunk)
    full = np.concatenate(chunks).astype(np.float64)
    assert np.allclose(stats.pixel_mean(), full.mean(axis=0)) and np.allclose(stats.pixel_std(), full.std(axis=0))
    assert np.allclose(stats.channel_mean(), full.mean(axis=(0, 1, 2)))
    assert np.allclose(stats.channel_std(), full.std(axis=(0, 1, 2)), atol=1e-4)
    assert np.isclose(stats.global_mean(), full.mean()) and np.isclose(stats.global_std(), full.std())
    spec = Preprocess(standardize="pixel").fit(iter(chunks))
    assert np.allclose(np.asarray(spec.mean), full.mean(axis=0) / 255, atol=1e-6)


def test_fit_refuses_mixed_shapes_and_empty_input():
    stats = RunningStats()
    stats.update(np.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="differ in shape"):
        stats.update(np.zeros((2, 5, 4, 1)))
    with pytest.raises(ValueError, match="zero images"):
        Preprocess().fit(iter([]))


def test_decode_resizes_and_forces_channels():
    img = np.random.default_rng(3).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = Preprocess(size=(8, 8), channels=1, resize="crop").decode(img)
    assert out.shape == (8, 8, 1) and out.dtype == np.uint8


@pytest.mark.parametrize(("n_classes", "dtype"), [(2, np.uint8), (256, np.uint8), (257, np.uint16),
                                                   (65536, np.uint16), (65537, np.uint32)])
def test_label_index_dtype_follows_the_class_count(n_classes, dtype):
    assert index_dtype(n_classes) == dtype


def test_labels_become_sorted_indices_and_one_hot():
    m = _manifest(np.zeros((4, 2, 2), dtype=np.uint8), ["zebra", "ant", "moth", "ant"])
    assert m.classes == ["ant", "moth", "zebra"]
    assert list(m.label_indices()) == [2, 0, 1, 0] and m.label_indices().dtype == np.uint8
    hot = m.one_hot()
    assert hot.shape == (4, 3) and np.array_equal(hot.argmax(1), m.label_indices()) and hot.sum() == 4
    big = Manifest([str(i) for i in range(300)], [f"c{i:03d}" for i in range(300)], ArrayStorage(np.zeros((300, 1, 1))))
    assert big.label_indices().dtype == np.uint16
    assert one_hot(np.array([1]), 3, dtype=np.uint8).tolist() == [[0, 1, 0]]


def test_loader_skips_and_reports_undecodable_items(tmp_path):
    from pixelforge.data.locations import FileStorage
    from tests.conftest import write_png

    write_png(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    m = Manifest(["a/0.png", "a/1.png"], ["a", "a"], FileStorage(tmp_path))
    skipped = []
    batches = list(iterate_decoded(m, Preprocess(), batch_size=4, skipped=skipped))
    assert len(batches) == 1 and list(batches[0][2]) == [0]
    assert len(skipped) == 1 and skipped[0].item.endswith("1.png") and "not an image" in skipped[0].reason
    with pytest.raises(PixelforgeError, match="1.png"):
        list(iterate_decoded(m, Preprocess(), on_error="fail"))
    with pytest.warns(UserWarning, match="skipped 1 undecodable"):
        Preprocess().fit(m)
