"""The Trainer: fit/evaluate/predict, optimizers, schedules, data paths, reproducibility, failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelforge.data.locations import ArrayStorage
from pixelforge.data.manifest import Manifest
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from pixelforge.train import Callback, Trainer, TrainingDiverged
from pixelforge.train.normalize import BatchTransform
from pixelforge.train.optimizers import KerasRMSprop, build_optimizer
from pixelforge.train.schedules import Schedule
from tests.train_helpers import one_thread, toy_images, toy_names  # noqa: F401 (autouse fixture)


def fit_toy(epochs=2, seed=0, **options):
    x, y = toy_images()
    trainer = Trainer(options.pop("model", "fmnist_baseline"), seed=seed, verbose=False, **options)
    history = trainer.fit((x, toy_names(y)), validation=(x[:30], toy_names(y[:30])), epochs=epochs, batch_size=16)
    return trainer, history


def weights(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.network.parameters()])


def test_fit_learns_easy_data_and_reports_keras_metrics():
    trainer, history = fit_toy(epochs=3)
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert len(history.epoch) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.9
    assert trainer.classes == ["alpha", "beta", "gamma"]


def test_evaluate_and_predict_give_probabilities_per_image():
    trainer, _ = fit_toy()
    x, y = toy_images(n_per_class=5, seed=3)
    probs = trainer.predict(x)
    assert probs.shape == (15, 3)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    scores = trainer.evaluate((x, toy_names(y)))
    assert scores["accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == y)))
    assert scores["loss"] > 0


def test_same_seed_same_weights_and_metrics_different_seed_differs():
    a, ha = fit_toy(seed=5)
    b, hb = fit_toy(seed=5)
    c, _ = fit_toy(seed=6)
    assert torch.equal(weights(a), weights(b))
    assert {k: v for k, v in ha.history.items() if k != "seconds"} == {k: v for k, v in hb.history.items() if k != "seconds"}
    assert not torch.equal(weights(a), weights(c))


@pytest.mark.parametrize("name,options", [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", {}), ("rmsprop", {}), ("sgd", {"momentum": 0.9, "weight_decay": 1e-3}),
])
def test_each_optimizer_trains(name, options):
    _, history = fit_toy(epochs=2, optimizer=name, **options)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_unknown_optimizer_lists_valid_ones():
    with pytest.raises(PixelforgeError, match="valid optimizers: sgd, adam, adamw, rmsprop"):
        build_optimizer("adagrad", [torch.zeros(1, requires_grad=True)])


def test_rmsprop_follows_keras_update_rule():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = KerasRMSprop([w], lr=0.01)
    expected, ms = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(3):
        opt.zero_grad()
        (w**2).sum().backward()
        grad = 2 * expected
        ms = 0.9 * ms + 0.1 * grad**2
        expected = expected - 0.01 * grad / np.sqrt(ms + 1e-7)  # Keras: epsilon inside the root
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-6)


def test_auto_optimizer_is_the_models_default():
    trainer, _ = fit_toy(epochs=1)
    assert trainer.resolved_optimizer["name"] == "sgd"
    assert trainer.resolved_optimizer["lr"] == 0.01 and trainer.resolved_optimizer["momentum"] == 0.9
    dnn, _ = fit_toy(epochs=1, model="dnn", model_params={"nodes": [16]})
    assert dnn.resolved_optimizer["name"] == "rmsprop"


@pytest.mark.parametrize("spec,checks", [
    ("step:every=2,factor=0.5", [(0, 1.0), (19, 1.0), (20, 0.5), (40, 0.25)]),
    ("linear", [(0, 1.0), (50, 0.5), (100, 0.0)]),
    ("poly:power=2", [(50, 0.25)]),
    ("cosine", [(0, 1.0), (50, 0.5), (100, 0.0)]),
    ("onecycle:pct=0.3", [(0, 1 / 25), (30, 1.0)]),
])
def test_schedules_give_the_expected_learning_rates(spec, checks):
    schedule = Schedule.parse(spec)
    for step, factor in checks:
        assert schedule.lr_at(step, 10, 100, 1.0) == pytest.approx(factor, abs=1e-6)


def test_trainer_applies_the_schedule_each_step():
    _, history = fit_toy(epochs=3, schedule="cosine")
    lrs = history.history["lr"]
    assert lrs[0] > lrs[1] > lrs[2]
    with pytest.raises(PixelforgeError, match="valid schedules"):
        Schedule.parse("exponential")


def test_batch_transform_matches_preprocess_transform():
    x, _ = toy_images(n_per_class=4, channels=3)
    for spec in (Preprocess(), Preprocess(normalize="symmetric"), Preprocess(standardize="sample"),
                 Preprocess(standardize="channel").fit(x), Preprocess(standardize="pixel").fit(x)):
        ours = BatchTransform(spec)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours, spec.transform(x), rtol=1e-4, atol=1e-4)


def test_streamed_manifest_trains_exactly_like_the_in_memory_cache():
    x, y = toy_images()
    manifest = Manifest([str(i) for i in range(len(x))], list(toy_names(y)), ArrayStorage(x))
    cached = Trainer(seed=1, verbose=False)
    cached.fit(manifest, epochs=1, batch_size=16)
    streamed = Trainer(seed=1, verbose=False, memory_budget=0, workers=1)
    streamed.fit(manifest, epochs=1, batch_size=16)
    assert torch.equal(weights(cached), weights(streamed))


def test_augmentation_is_applied_and_repeatable():
    a, ha = fit_toy(seed=2, augment="width_shift_range=0.2,horizontal_flip")
    b, hb = fit_toy(seed=2, augment="width_shift_range=0.2,horizontal_flip")
    plain, hp = fit_toy(seed=2)
    assert torch.equal(weights(a), weights(b))
    assert ha.history["loss"] != hp.history["loss"]
    assert a.augment_dict()["ops"]


def test_validation_split_holds_out_a_stratified_part():
    x, y = toy_images()
    trainer = Trainer(seed=0, verbose=False)
    history = trainer.fit((x, y), epochs=1, batch_size=16, validation_split=0.2)
    assert "val_accuracy" in history.history


def test_nan_loss_stops_with_a_clear_message():
    class Poison(Callback):
        def on_epoch_end(self, epoch, logs):
            with torch.no_grad():
                next(self.trainer.network.parameters()).fill_(float("nan"))

    x, y = toy_images()
    trainer = Trainer(seed=0, verbose=False)
    with pytest.raises(TrainingDiverged, match="NaN.*epoch 2.*checkpoint of epoch 1 is kept"):
        trainer.fit((x, y), epochs=3, batch_size=16, callbacks=[Poison()])


def test_non_gradient_model_fits_in_one_pass():
    x, y = toy_images()
    trainer = Trainer("knn", seed=0, verbose=False)
    history = trainer.fit((x, y), validation=(x[:20], y[:20]), epochs=5)
    assert len(history.epoch) == 1
    assert history.history["val_accuracy"][0] == 1.0


def test_integer_string_labels_get_numeric_class_order():
    x, y = toy_images()
    names = np.array(["2", "10", "1"])[y % 3]
    trainer = Trainer("knn", seed=0, verbose=False)
    trainer.fit((x, names), epochs=1)
    assert trainer.classes == ["1", "2", "10"]


def test_too_small_images_and_unknown_models_are_clear_errors():
    x, y = toy_images(size=12)
    with pytest.raises(PixelforgeError, match="valid models"):
        Trainer("resnet9000", verbose=False).fit((x, y), epochs=1)
    tiny = x[:, :2, :2]
    with pytest.raises(PixelforgeError, match="(?i)too small|at least"):
        Trainer("cnn", verbose=False).fit((tiny, y), epochs=1)



def test_bf16_precision_trains_and_is_recorded():
    trainer, history = fit_toy(epochs=2, precision="bf16")
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert trainer.run_config()["precision"] == "bf16"
    with pytest.raises(PixelforgeError, match="precision"):
        Trainer(precision="fp8")
