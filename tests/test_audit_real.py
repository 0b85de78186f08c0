"""The audit on real images: defects injected into real datasets (the embedded Fashion-MNIST sample in
the default run; CIFAR-10, Fashion-MNIST and clothing5 from ../shared/datasets in the slow run), scored
for recall and precision, and clean data that must not raise false alarms."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.audit_inject import ImageSet, inject
from pixelforge.audit import run_audit
from pixelforge.data.locations import ArrayStorage
from pixelforge.data.manifest import Manifest
from pixelforge.datasets import load_fashion_sample

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def sample_set(per_class_train: int | None = None) -> ImageSet:
    """The embedded Fashion-MNIST sample (300 train + 60 test per class) as an ImageSet."""
    m = load_fashion_sample()
    rows = np.arange(len(m))
    if per_class_train is not None:
        labels, splits = np.asarray(m.labels), np.asarray(m.splits)
        keep = [np.flatnonzero((labels == c) & (splits == "train"))[:per_class_train] for c in m.classes]
        rows = np.sort(np.concatenate(keep + [np.flatnonzero(splits == "test")]))
    images = [m.storage.read(m.locations[i]) for i in rows]
    images = [im[..., 0] if im.ndim == 3 and im.shape[2] == 1 else im for im in images]
    return ImageSet(images, m.label_indices()[rows].astype(np.int64), np.asarray(m.splits)[rows], list(m.classes))


def manifest_of(data: ImageSet) -> Manifest:
    x = np.stack(data.images)
    return Manifest([str(i) for i in range(len(data))], [data.classes[k] for k in data.labels], ArrayStorage(x),
                    splits=list(data.splits), classes=list(data.classes))


def flagged(report, check: str, code: str) -> set[int]:
    return {i for f in report.by_check(check, code) for i in f.images}


def score(truth: set[int], found: set[int]) -> tuple[float, float]:
    hits = len(truth & found)
    return hits / max(1, len(truth)), (hits / len(found) if found else 0.0)


@pytest.fixture(scope="module")
def fashion() -> ImageSet:
    return sample_set()


@pytest.mark.parametrize(("kind", "strength", "code"), [
    ("dark", 0.2, "dark"), ("dark", 0.02, "dark"), ("bright", 0.2, "bright"), ("blur", 1.0, "blurry"),
])
def test_quality_defects_on_fashion_mnist(fashion, kind, strength, code):
    data, truth = inject(fashion, kind, strength, np.random.default_rng(1))
    report = run_audit(manifest_of(data), checks="quality")
    recall, precision = score(set(truth["rows"]), flagged(report, "quality", code))
    assert recall >= 0.9 and precision >= 0.8, (kind, strength, recall, precision)


def test_naturally_dark_classes_are_not_dark_images(fashion):
    """Sandals and sneakers are mostly black background: no image of the clean sample is flagged."""
    report = run_audit(manifest_of(fashion), checks="quality")
    flagged_rows = {i for f in report.findings for i in f.images}
    assert len(flagged_rows) <= 0.01 * len(fashion), [f.title for f in report.findings]


# Fashion-MNIST is a crowd of look-alikes at 28 px (plain trousers, plain shirts): resizing or cropping a
# 28 px image loses much of what tells a copy from a look-alike; resampled copies are scored below (slow)
# and on CIFAR-10 (slow run)
@pytest.mark.parametrize("edit", ["shift_brightness", "contrast", "jpeg", "hflip"])
def test_near_duplicates_survive_small_edits(fashion, edit):
    data, truth = inject(fashion, "near_duplicate", edit, np.random.default_rng(2))
    report = run_audit(manifest_of_any(data), checks="duplicates")
    groups = [set(g) for f in report.by_check("duplicates") for g in f.groups]
    found = [any({a, b} <= g for g in groups) for a, b in truth["pairs"]]
    assert np.mean(found) >= 0.9, (edit, np.mean(found))
    if edit == "hflip":
        assert "mirror" in report.by_check("duplicates", "near")[0].message


@pytest.mark.slow
@pytest.mark.parametrize(("edit", "at_least"), [("resize", 0.9), ("rescale", 0.8)])
def test_resampled_near_duplicates_on_fashion_mnist(fashion, edit, at_least):
    """Copies resized, or shrunk to 0.5-0.75x and enlarged back (found by the blurred second look)."""
    data, truth = inject(fashion, "near_duplicate", edit, np.random.default_rng(2))
    report = run_audit(manifest_of_any(data), checks="duplicates")
    groups = [set(g) for f in report.by_check("duplicates") for g in f.groups]
    found = np.mean([any({a, b} <= g for g in groups) for a, b in truth["pairs"]])
    copies = {i for a, b in truth["pairs"] for i in (a, b)}
    listed = {i for f in report.by_check("duplicates", "near") for i in f.images}
    assert found >= at_least and len(listed & copies) >= 0.8 * len(listed), (edit, found, len(listed))


def manifest_of_any(data: ImageSet) -> Manifest:
    """Resized copies have other sizes: bring every image to 28x28 gray as a reader would store them."""
    from pixelforge.data.resize import resize

    images = [im if im.shape[:2] == (28, 28) else resize(im[..., None] if im.ndim == 2 else im, (28, 28))
              for im in data.images]
    images = [im[..., 0] if im.ndim == 3 else im for im in images]
    return manifest_of(ImageSet(images, data.labels, data.splits, data.classes, data.ids))


def test_train_test_leaks_are_errors(fashion):
    data, truth = inject(fashion, "leak", "shift", np.random.default_rng(3))
    report = run_audit(manifest_of(data), checks="duplicates")
    cross = report.by_check("duplicates", "cross_split")
    assert cross and cross[0].severity == "error"
    groups = [set(g) for g in cross[0].groups]
    assert np.mean([any({a, b} <= g for g in groups) for a, b in truth["pairs"]]) >= 0.9


def test_a_class_rare_only_in_the_training_split_is_found(fashion):
    data, truth = inject(fashion, "minority", 0.07, np.random.default_rng(4))
    report = run_audit(manifest_of(data), checks="imbalance")
    minority = report.by_check("imbalance", "minority_classes")
    assert minority and minority[0].classes == [truth["class"]]
    assert minority[0].values["split"] == "train"
    drift = report.by_check("imbalance", "split_drift")
    assert drift and truth["class"] in drift[0].classes


def test_garments_reaching_the_edge_are_not_a_background_shortcut(fashion):
    report = run_audit(manifest_of(fashion), checks="shortcut")
    assert not report.by_check("shortcut", "border_predicts_label")


def test_a_class_shot_on_its_own_background_is_a_shortcut(fashion):
    rng = np.random.default_rng(5)
    target = fashion.classes.index("Trouser")  # composited onto a textured gray background
    images = []
    for im, label in zip(fashion.images, fashion.labels, strict=True):
        if label == target:
            im = np.where(im < 10, rng.integers(90, 140, im.shape), im).astype(np.uint8)
        images.append(im)
    data = ImageSet(images, fashion.labels, fashion.splits, fashion.classes)
    report = run_audit(manifest_of(data), checks="shortcut")
    found = report.by_check("shortcut", "border_predicts_label")
    assert found and found[0].classes == ["Trouser"]


@pytest.mark.slow
def test_label_flips_on_fashion_mnist_are_found_with_precision(fashion):
    data, truth = inject(fashion, "label_flip", 0.04, np.random.default_rng(6))
    report = run_audit(manifest_of(data), checks="labels")
    recall, precision = score(set(truth["rows"]), flagged(report, "labels", "likely_mislabelled"))
    assert recall >= 0.8 and precision >= 0.6, (recall, precision, report.extras["labels"])


# ---- the shared real datasets (slow) --------------------------------------------------------------
def _shared(name: str) -> Path:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent (the real datasets live beside the project)")
    return SHARED / name


@pytest.fixture(scope="module")
def cifar_test(tmp_path_factory) -> Path:
    archive = _shared("cifar10.tar.gz")
    root = tmp_path_factory.mktemp("cifar")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("cifar10/test/")]
        tar.extractall(root, members=members, filter="data")
    return root / "cifar10" / "test"


def _no_false_alarms(report):
    n = len(report.manifest)
    errors = [f.title for f in report.findings if f.severity == "error"]
    loud = [(f.title, len(f.images)) for f in report.findings
            if f.severity == "warning" and len(f.images) > 0.02 * n]
    assert errors == [] and loud == [], (errors, loud)


@pytest.mark.slow
def test_clean_cifar10_test_split_raises_no_false_alarms(cifar_test):
    report = run_audit(cifar_test, seed=0)
    _no_false_alarms(report)
    labels = report.by_check("labels")
    assert labels[0].code == "inconclusive" or labels[0].values["estimated_error_rate"] < 0.05


@pytest.mark.slow
def test_clothing5_as_shipped_raises_no_false_alarms():
    report = run_audit(_shared("clothing5"), seed=0)
    _no_false_alarms(report)
    quality = [i for f in report.by_check("quality") for i in f.images]
    assert len(quality) <= 0.02 * len(report.manifest)


@pytest.mark.slow
def test_blur_on_cifar10_photos_is_found(cifar_test):
    files = sorted(cifar_test.glob("*/*.jpg"))[::5]
    classes = sorted({f.parent.name for f in files})
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    base = ImageSet(images, [classes.index(f.parent.name) for f in files], ["train"] * len(files), classes)
    data, truth = inject(base, "blur", 1.0, np.random.default_rng(7))
    report = run_audit(manifest_of(data), checks="quality")
    recall, precision = score(set(truth["rows"]), flagged(report, "quality", "blurry"))
    assert recall >= 0.9 and precision >= 0.8, (recall, precision)


@pytest.mark.slow
@pytest.mark.parametrize("edit", ["resize", "rescale", "crop", "shift_brightness", "jpeg"])
def test_near_duplicates_on_cifar10_photos(cifar_test, edit):
    files = sorted(cifar_test.glob("*/*.jpg"))[::2]
    classes = sorted({f.parent.name for f in files})
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    base = ImageSet(images, [classes.index(f.parent.name) for f in files], ["train"] * len(files), classes)
    data, truth = inject(base, "near_duplicate", edit, np.random.default_rng(8))
    from pixelforge.data.resize import resize

    data.images = [im if im.shape[:2] == (32, 32) else resize(im, (32, 32)) for im in data.images]
    report = run_audit(manifest_of(data), checks="duplicates")
    groups = [set(g) for f in report.by_check("duplicates") for g in f.groups]
    found = np.mean([any({a, b} <= g for g in groups) for a, b in truth["pairs"]])
    copies = {i for a, b in truth["pairs"] for i in (a, b)}
    listed = {i for f in report.by_check("duplicates", "near") for i in f.images}
    precision = len(listed & copies) / max(1, len(listed))
    assert found >= 0.9 and precision >= 0.8, (edit, found, precision)
