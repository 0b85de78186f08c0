"""``pixelforge demo``: the whole path on the embedded Fashion-MNIST sample, offline, in about a minute
on two cores: train, evaluate, save, reload the saved model and predict held-out images from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.data.preprocess import Preprocess

DEMO_MODEL = "fmnist_baseline"


def run_demo(out="runs/demo", epochs: int = 8, seed: int = 1, samples: int = 6, progress: bool = True,
             console=None, threads="auto") -> dict:
    from PIL import Image

    from pixelforge.datasets import load_fashion_sample
    from pixelforge.train.evaluation import evaluate_model
    from pixelforge.train.run import train_run
    from pixelforge.train.saved import load_model

    out = Path(out)
    if (out / "checkpoint").exists():  # a demo always starts over
        import shutil

        shutil.rmtree(out / "checkpoint")
    manifest = load_fashion_sample()
    summary = train_run(manifest, out, model=DEMO_MODEL, preprocess=Preprocess(size=(28, 28), channels=1),
                        epochs=epochs, batch_size=32, seed=seed, monitor="val_accuracy", progress=progress, console=console,
                        threads=threads)
    model = load_model(out)
    test = manifest.split("test")
    evaluation = evaluate_model(model, test, out / "evaluation")
    # predict a few held-out images the way a user would: from image files on disk
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(test), size=min(samples, len(test)), replace=False)
    files, truths = [], []
    for i in picks:
        path = out / "samples" / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(test.load(int(i))[:, :, 0]).save(path)
        files.append(str(path))
        truths.append(test.labels[int(i)])
    predictions = model.predict_files(files, top=3)
    for result, truth in zip(predictions, truths, strict=True):
        result["true"] = truth
    return {
        "run": str(out),
        "train": summary,
        "evaluation": {k: evaluation[k] for k in ("accuracy", "macro_f1", "images", "files")},
        "predictions": predictions,
    }
