"""Close the loop: train a model, test it in the wild, retrain it with the recommended augmentation,
test it again. The claim to check (Fashion-MNIST, fmnist_baseline): the mean accuracy across
corruptions rises while the clean accuracy drops by at most one point.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def load_split_arrays(source, size=None, channels=None, train_limit=None, test_limit=None, seed=0):
    """(x_train, y_train, x_test, y_test, classes, spec) from a source with train and test splits
    (a source without splits is split by pixelforge's seeded stratified rule)."""
    from pixelforge.data.loader import load_arrays
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.data.read import read_dataset
    from pixelforge.data.split import train_test_split
    from pixelforge.robustness.suite import _sample

    manifest = read_dataset(str(source))
    train, test = train_test_split(manifest, seed=seed)
    spec = Preprocess(size=size, channels=channels)
    out = []
    for part, limit in ((train, train_limit), (test, test_limit)):
        part = part.subset(_sample(part.label_indices(), limit, seed))
        x, y = load_arrays(part, spec)
        out += [x if x.ndim == 4 else x[..., None], np.asarray(y).astype(np.int64)]
    return (*out, list(manifest.classes), spec)


def _train(model, params, spec, classes, x, y, augment, epochs, batch_size, seed, run_dir, threads=None):
    from pixelforge.train import Trainer, load_model

    trainer = Trainer(model, spec, augment=augment, seed=seed, model_params=params or {}, verbose=False,
                      threads=threads)
    trainer.fit((x, np.asarray(classes)[y]), epochs=epochs, batch_size=batch_size)
    trainer.save(run_dir)
    return load_model(run_dir)


def run_wild_retrain(source, out_dir, *, model: str = "fmnist_baseline", params: dict | None = None,
                     size=None, channels=None, epochs: int = 10, batch_size: int = 32, seed: int = 0,
                     threshold: float = 0.1, suite_limit: int = 2000, train_limit=None, test_limit=None,
                     augment: str | None = None, strength: float = 1.0, max_clean_drop: float = 0.01, attempts: int = 4,
                     validation_fraction: float = 0.1, threads: int | None = None, log=print) -> dict:
    """Baseline → wild suite → recommended ``--augment`` → retrained model → wild suite again.

    If the retrained model loses more than ``max_clean_drop`` accuracy on a validation split held
    out of the training data, the augmentation is softened (half strength) and the model retrained,
    up to ``attempts`` trainings (``strength`` < 1 starts softer); the test split is only used to measure. ``augment`` overrides the
    recommended spec. Writes wild_retrain.json / .md and the suite reports (before/, after/).
    """
    from pixelforge.augment.spec import parse_spec
    from pixelforge.data.split import stratified_holdout
    from pixelforge.robustness.recommend import augment_spec, merged_augment, soften, train_command
    from pixelforge.robustness.report import write_report
    from pixelforge.robustness.suite import run_wild_suite

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_all, y_all, x_test, y_test, classes, spec = load_split_arrays(
        source, size, channels, train_limit, test_limit, seed)
    keep, held = stratified_holdout(y_all, validation_fraction, seed)
    x_train, y_train, x_val, y_val = x_all[keep], y_all[keep], x_all[held], y_all[held]
    log(f"{source}: {len(x_train):,} training, {len(x_val):,} validation and {len(x_test):,} test images")
    common = dict(epochs=epochs, batch_size=batch_size, seed=seed, threads=threads)

    def accuracy_on(m, x, y):
        return float(np.mean(m.predict_arrays(x, batch_size=1024).argmax(1) == y))

    t0 = time.perf_counter()
    base = _train(model, params, spec, classes, x_train, y_train, None, run_dir=out / "runs" / "baseline", **common)
    seconds = {"baseline": round(time.perf_counter() - t0, 1)}
    before = run_wild_suite(base, x_test, y_test, seed=seed, limit=suite_limit, threshold=threshold)
    recommended = merged_augment(before["recommendations"]) if augment is None else parse_spec(augment)
    before["train_command"] = train_command(str(source), model, str(out / "runs" / "recommended"), recommended,
                                            {"epochs": epochs, "batch_size": batch_size, "seed": seed})
    write_report(before, out / "before", example=x_test[0])
    base_val = accuracy_on(base, x_val, y_val)
    log(f"baseline: validation {base_val:.2%}, wild-suite clean {before['clean']['accuracy']:.1%}, "
        f"mean over corruptions {before['mean_corrupted_accuracy']:.1%}")
    tried, robust = [], None
    current = soften(recommended, strength) if strength != 1 else dict(recommended)
    for attempt in range(max(1, attempts)):
        text = augment_spec(current)
        log(f"retraining with --augment \"{text}\"")
        t0 = time.perf_counter()
        robust = _train(model, params, spec, classes, x_train, y_train, text or None,
                        run_dir=out / "runs" / f"recommended-{attempt + 1}", **common)
        val = accuracy_on(robust, x_val, y_val)
        tried.append({"augment": text, "validation_accuracy": val, "validation_drop": base_val - val,
                      "seconds": round(time.perf_counter() - t0, 1)})
        log(f"  validation {val:.2%} ({val - base_val:+.2%})")
        if base_val - val <= max_clean_drop or not current:
            break
        current = soften(current)
    after = run_wild_suite(robust, x_test, y_test, seed=seed, limit=suite_limit, threshold=threshold)
    write_report(after, out / "after", example=x_test[0])
    clean = {"before": accuracy_on(base, x_test, y_test), "after": accuracy_on(robust, x_test, y_test)}
    result = {
        "source": str(source), "model": model, "epochs": epochs, "batch_size": batch_size, "seed": seed,
        "train_images": len(x_train), "validation_images": len(x_val), "test_images": len(x_test),
        "suite_images": before["images"], "recommended_augment": augment_spec(recommended),
        "augment": tried[-1]["augment"], "attempts": tried, "recommendations": before["recommendations"],
        "clean_accuracy": clean, "validation_accuracy": {"before": base_val, "after": tried[-1]["validation_accuracy"]},
        "mean_corrupted_accuracy": {"before": before["mean_corrupted_accuracy"],
                                    "after": after["mean_corrupted_accuracy"]},
        "per_corruption": {k: {"before": v["mean_accuracy"], "after": after["corruptions"][k]["mean_accuracy"]}
                           for k, v in before["corruptions"].items()},
        "train_seconds": seconds | {"retrained": [t["seconds"] for t in tried]},
    }
    result["checks"] = {
        "mean_corrupted_accuracy_rises": result["mean_corrupted_accuracy"]["after"]
        > result["mean_corrupted_accuracy"]["before"],
        "clean_drop_at_most_1_point": clean["before"] - clean["after"] <= 0.01,
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "wild_retrain.json").write_text(json.dumps(result, indent=2))
    (out / "wild_retrain.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    from pixelforge.robustness.recommend import regression_lines, regressions

    c, m = result["clean_accuracy"], result["mean_corrupted_accuracy"]
    lines = [
        f"# Wild test, then retrain with the recommendations: {result['model']} on {result['source']}",
        "",
        f"{result['train_images']:,} training / {result['test_images']:,} test images, {result['epochs']} epochs, "
        f"batch {result['batch_size']}, seed {result['seed']}; wild suite on {result['suite_images']:,} test images.",
        "",
        f"Recommended augmentation: `--augment \"{result['recommended_augment']}\"`",
        "",
    ]
    for t in result["attempts"]:
        lines.append(f"- trained with `{t['augment']}`: validation accuracy {t['validation_accuracy']:.2%} "
                     f"(change {-t['validation_drop']:+.2%})")
    lines += [
        "",
        "| | clean accuracy (whole test split) | mean accuracy over corruptions |",
        "|---|---:|---:|",
        f"| baseline | {c['before']:.2%} | {m['before']:.2%} |",
        f"| retrained with the recommendations | {c['after']:.2%} | {m['after']:.2%} |",
        f"| change | {c['after'] - c['before']:+.2%} | {m['after'] - m['before']:+.2%} |",
        "",
        "| corruption | before | after |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v['before']:.1%} | {v['after']:.1%} |" for k, v in result["per_corruption"].items()]
    worse = regressions({k: v["before"] for k, v in result["per_corruption"].items()},
                        {k: v["after"] for k, v in result["per_corruption"].items()})
    if worse:
        lines += ["", "Regressions (mean accuracy down more than 5 points):", "", *regression_lines(worse)]
    checks = result["checks"]
    lines += ["", f"- mean accuracy across corruptions rises: {'yes' if checks['mean_corrupted_accuracy_rises'] else 'NO'}",
              f"- clean accuracy drops by at most 1 point: {'yes' if checks['clean_drop_at_most_1_point'] else 'NO'}",
              "", f"Total time: {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"
