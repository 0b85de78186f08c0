"""Evaluation metrics: scikit-learn's numbers, every class of the model kept, also when absent."""

from __future__ import annotations

import numpy as np
import pytest

from pixelforge.train.evaluation import classification_metrics


def test_metrics_keep_every_class_and_agree_with_the_definitions():
    classes = ["a", "b", "c", "d"]  # "d" never occurs, "c" is never predicted
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 0, 1, 1, 0, 1, 1])
    probs = np.full((len(labels), 4), 0.1)
    probs[np.arange(len(labels)), predicted] = 0.7
    report = classification_metrics(labels, probs, classes)
    assert report["confusion_matrix"] == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 2, 0, 0], [0, 0, 0, 0]]
    assert report["accuracy"] == pytest.approx(4 / 8)
    per = report["per_class"]
    assert per["a"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert per["b"] == pytest.approx({"precision": 2 / 5, "recall": 1.0, "f1": 4 / 7, "support": 2})
    assert per["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3}
    assert per["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro averages over the classes present in the labels (a, b, c)
    assert report["macro_precision"] == pytest.approx((2 / 3 + 2 / 5) / 3)
    assert report["macro_recall"] == pytest.approx((2 / 3 + 1.0) / 3)
    assert report["macro_f1"] == pytest.approx((2 / 3 + 4 / 7) / 3)
    assert report["loss"] == pytest.approx(-(np.log(0.7) + np.log(0.1)) / 2)  # 4 right at 0.7, 4 wrong


def test_metrics_of_no_images():
    report = classification_metrics(np.zeros(0, np.int64), np.zeros((0, 2)), ["a", "b"])
    assert report["images"] == 0 and report["accuracy"] == 0.0 and report["macro_f1"] == 0.0
    assert report["confusion_matrix"] == [[0, 0], [0, 0]]
