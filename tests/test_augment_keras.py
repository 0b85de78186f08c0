"""pixelforge.keras.ImageDataGenerator: the Keras 2 API over pixelforge's pipeline and readers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixelforge.errors import PixelforgeError
from pixelforge.keras import ImageDataGenerator
from tests.conftest import write_png

SCRIPTS = Path(__file__).parent / "keras_scripts"


@pytest.fixture
def two_class_tree(tmp_path) -> Path:
    """cat: 8 images bright on top, dog: 4 bright at the bottom (16x20 RGB; survives horizontal flips)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for label, n in (("cat", 8), ("dog", 4)):
        for i in range(n):
            img = rng.integers(0, 60, (16, 20, 3), dtype=np.uint8)
            if label == "cat":
                img[:8] += 150
            else:
                img[8:] += 150
            write_png(root / label / f"{label}_{i:02d}.png", img)
    return root


def test_flow_yields_float32_batches_with_keras_attributes():
    x = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3)).astype(np.uint8)
    gen = ImageDataGenerator(rotation_range=10, horizontal_flip=True, rescale=1 / 255)
    it = gen.flow(x, np.arange(10), batch_size=4, seed=3)
    assert len(it) == 3 and it.n == 10
    sizes = [len(next(it)[0]) for _ in range(3)]
    assert sizes == [4, 4, 2]
    bx, by = next(it)  # the iterator goes on into the next epoch, like Keras'
    assert bx.dtype == np.float32 and bx.shape == (4, 8, 8, 3) and 0 <= bx.min() and bx.max() <= 1
    assert by.dtype == np.arange(1).dtype


def test_flow_is_repeatable_with_a_seed_and_shuffles_per_epoch():
    x = np.random.default_rng(0).integers(0, 256, (12, 10, 10, 1)).astype(np.float32)
    gen = ImageDataGenerator(rotation_range=30, zoom_range=0.2)
    a = gen.flow(x, np.arange(12), batch_size=12, seed=5)
    b = gen.flow(x, np.arange(12), batch_size=12, seed=5)
    first_a, first_b = next(a), next(b)
    assert np.array_equal(first_a[0], first_b[0]) and np.array_equal(first_a[1], first_b[1])
    second = next(a)
    assert not np.array_equal(second[1], first_a[1])  # a new order in epoch 2
    assert sorted(second[1]) == list(range(12))


def test_fit_standardizes_featurewise_like_keras():
    x = np.random.default_rng(0).random((50, 6, 6, 3)).astype(np.float32) * 255
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True, rescale=1 / 255)
    gen.fit(x)
    assert gen.mean.shape == (1, 1, 3)
    assert np.allclose(gen.mean.ravel(), (x / 255).mean(axis=(0, 1, 2)), atol=1e-5)
    out = next(gen.flow(x, batch_size=50, shuffle=False))
    assert np.allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    assert np.allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_samplewise_and_zca_and_preprocessing_function():
    x = np.random.default_rng(0).random((20, 4, 4, 1)).astype(np.float32)
    gen = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True,
                             preprocessing_function=lambda img: img * 2)
    out = gen.standardize(x.copy())
    assert np.allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    zca = ImageDataGenerator(zca_whitening=True)
    zca.fit(x)
    white = zca.standardize(x.copy()).reshape(20, -1)
    assert zca.zca_whitening_matrix.shape == (16, 16)
    assert abs(np.corrcoef(white[:, 0], white[:, 1])[0, 1]) < 0.5


def test_flow_from_directory_lists_classes_and_splits_like_keras(two_class_tree):
    gen = ImageDataGenerator(rescale=1 / 255, validation_split=0.25)
    train = gen.flow_from_directory(two_class_tree, target_size=(8, 10), batch_size=5, subset="training", seed=0)
    val = gen.flow_from_directory(two_class_tree, target_size=(8, 10), batch_size=5, subset="validation",
                                  shuffle=False, class_mode="sparse", color_mode="grayscale")
    assert train.class_indices == {"cat": 0, "dog": 1}
    # Keras: per class, sorted files, the first int(0.25 * n) are validation
    assert val.filenames == ["cat/cat_00.png", "cat/cat_01.png", "dog/dog_00.png"]
    assert train.samples == 9 and list(train.classes) == [0] * 6 + [1] * 3
    x, y = val[0]
    assert x.shape == (3, 8, 10, 1) and y.tolist() == [0.0, 0.0, 1.0]
    x, y = next(train)
    assert x.shape == (5, 8, 10, 3) and y.shape == (5, 2) and set(y.sum(axis=1)) == {1.0}


def test_flow_from_directory_class_modes_and_errors(two_class_tree, tmp_path):
    gen = ImageDataGenerator()
    only_x = gen.flow_from_directory(two_class_tree, target_size=(4, 4), class_mode=None, batch_size=3)
    assert next(only_x).shape == (3, 4, 4, 3)
    binary = gen.flow_from_directory(two_class_tree, target_size=(4, 4), class_mode="binary", shuffle=False,
                                     batch_size=12)
    assert next(binary)[1].tolist() == [0.0] * 8 + [1.0] * 4
    chosen = gen.flow_from_directory(two_class_tree, target_size=(4, 4), classes=["dog", "cat"], shuffle=False)
    assert chosen.class_indices == {"dog": 0, "cat": 1} and chosen.filenames[0].startswith("dog/")
    with pytest.raises(PixelforgeError, match="no such folder"):
        gen.flow_from_directory(tmp_path / "missing")
    with pytest.raises(ValueError, match="class_mode"):
        gen.flow_from_directory(two_class_tree, class_mode="nonsense")


def test_save_to_dir_uses_keras_names(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3)).astype(np.float32)
    out = tmp_path / "saved"
    out.mkdir()
    it = ImageDataGenerator(rotation_range=20).flow(x, batch_size=3, shuffle=False, save_to_dir=out,
                                                    save_prefix="aug", save_format="jpeg")
    next(it)
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3
    assert all(re.fullmatch(r"aug_[0-2]_\d{1,7}\.jpeg", n) for n in names)
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_flow_from_dataframe(two_class_tree):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"filename": ["cat/cat_00.png", "dog/dog_01.png", "cat/cat_03.png", "cat/missing.png"],
                       "class": ["cat", "dog", "cat", "dog"], "w": [1.0, 2.0, 3.0, 4.0]})
    gen = ImageDataGenerator()
    with pytest.warns(UserWarning, match="missing.png"):
        it = gen.flow_from_dataframe(df, directory=two_class_tree, target_size=(6, 6), batch_size=3,
                                     shuffle=False, weight_col="w")
    assert it.filenames == ["cat/cat_00.png", "dog/dog_01.png", "cat/cat_03.png"]
    x, y, w = next(it)
    assert x.shape == (3, 6, 6, 3) and y.tolist() == [[1, 0], [0, 1], [1, 0]] and w.tolist() == [1.0, 2.0, 3.0]


def test_channels_first_and_random_transform():
    x = np.random.default_rng(0).random((4, 3, 8, 8)).astype(np.float32)
    gen = ImageDataGenerator(data_format="channels_first", horizontal_flip=True)
    assert next(gen.flow(x, batch_size=4)).shape == (4, 3, 8, 8)
    img = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    flat = ImageDataGenerator(width_shift_range=[2], fill_mode="wrap")
    assert np.array_equal(flat.random_transform(img, seed=1), flat.random_transform(img, seed=1))


def test_constructor_validation_like_keras():
    with pytest.raises(ValueError, match="validation_split"):
        ImageDataGenerator(validation_split=1.5)
    with pytest.raises(ValueError, match="zoom_range"):
        ImageDataGenerator(zoom_range=[0.5, 1, 2])
    with pytest.raises(ValueError, match="fill_mode"):
        ImageDataGenerator(fill_mode="mirror")
    assert ImageDataGenerator(zoom_range=0.2).zoom_range == [0.8, 1.2]


# ---- Keras-2-style scripts, run as users would run them ------------------------------------------
def run_script(name: str, *args, cwd: Path) -> str:
    result = subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_script_mnist_flow_preview(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "digits.npz", x=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8), y=rng.integers(0, 10, 64))
    stdout = run_script("mnist_flow_preview.py", tmp_path / "digits.npz", tmp_path / "images", cwd=tmp_path)
    assert "batch (9, 28, 28, 1) float32" in stdout
    saved = list((tmp_path / "images").glob("aug_*.png"))
    assert len(saved) == 9 and (tmp_path / "images" / "grid.png").is_file()


def test_script_directory_train_binary(two_class_tree, tmp_path):
    stdout = run_script("directory_train_binary.py", two_class_tree, cwd=tmp_path)
    assert "Found 9 images belonging to 2 classes." in stdout
    assert "Found 3 images belonging to 2 classes." in stdout
    accuracy = float(re.search(r"validation accuracy: ([\d.]+)", stdout).group(1))
    assert accuracy >= 2 / 3  # bright top vs bright bottom is learnable even from 9 images


def test_script_dataframe_flow(two_class_tree, tmp_path):
    rows = ["id,label"] + [f"{p.parent.name}/{p.name},{p.parent.name}" for p in sorted(two_class_tree.rglob("*.png"))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "augmented"
    out.mkdir()
    stdout = run_script("dataframe_flow.py", tmp_path / "labels.csv", two_class_tree, out, cwd=tmp_path)
    assert "Found 9 validated image filenames belonging to 2 classes." in stdout
    assert len(list(out.glob("train_*.jpeg"))) == 8  # two batches of 4


def test_apply_transform_with_fixed_parameters():
    img = np.zeros((9, 9, 1), np.float32)
    img[4, 2] = 255  # a dot left of the centre
    gen = ImageDataGenerator(fill_mode="constant")
    turned = gen.apply_transform(img, {"theta": 90})
    assert turned.shape == img.shape and turned.max() > 200
    assert tuple(np.argwhere(turned[:, :, 0] > 200)[0]) in {(2, 4), (6, 4)}  # a quarter turn about the centre
    moved = gen.apply_transform(img, {"ty": -3})  # ty: columns (width); output samples input at col - 3
    assert tuple(np.argwhere(moved[:, :, 0] > 200)[0]) == (4, 5)
    mirrored = gen.apply_transform(img, {"flip_horizontal": True, "brightness": 0.5})
    assert mirrored[4, 6, 0] == 127.5
    params = ImageDataGenerator(rotation_range=30, horizontal_flip=True).get_random_transform(img.shape, seed=1)
    assert abs(params["theta"]) <= 30 and params["brightness"] is None and isinstance(params["flip_horizontal"], bool)


def test_pixelforge_keras_re_exports_the_compat_module_under_the_path_users_type():
    import pixelforge.compat.keras as compat
    import pixelforge.keras as shim

    assert set(shim.__all__) == set(compat.__all__)
    assert all(getattr(shim, name) is getattr(compat, name) for name in compat.__all__)
