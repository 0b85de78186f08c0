"""The data-curation experiment, reproduced: MNIST models that score ~98% on their test split fail on
inverted and shifted digits, and augmentation / curated data fixes it.

Same models and training settings as the material (RMSprop, 10 epochs, batch 32, pixels / 255):

    DNN [512]; CNN [16]; CNN [16, 32]; CNN [16, 32] + width_shift_range 0.2; ... + 10% inverted images

each scored on the test split, on the inverted test split (255 - x) and on the test split rolled 4
pixels to the right (``np.roll(x, 4, axis=2)``). Then pixelforge's own wild-test suite is run on the
CNN [16, 32], its recommendations are turned into an ``--augment`` spec, and that model is trained
and scored the same way, so the gain of following the recommendations is measured, not claimed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pixelforge.errors import PixelforgeError
from pixelforge.robustness.corruptions import corrupt

# The material's table: test / inverted / shifted accuracy in percent.
MATERIAL = {
    "DNN [512]": (97.9, 2.0, 41.0),
    "CNN [16]": (98.1, 53.0, 57.0),
    "CNN [16, 32]": (98.8, 63.0, 77.0),
    "CNN [16, 32] + width_shift_range 0.2": (98.6, 23.0, 98.0),
    "... + 10% inverted training images": (98.5, 96.0, 98.0),
}


@dataclass
class Setup:
    label: str
    model: str
    params: dict
    augment: str | None = None
    inverted_fraction: float = 0.0
    note: str = ""


SETUPS = [
    Setup("DNN [512]", "dnn", {"nodes": [512]}),
    Setup("CNN [16]", "cnn", {"filters": [16]}),
    Setup("CNN [16, 32]", "cnn", {"filters": [16, 32]}),
    Setup("CNN [16, 32] + width_shift_range 0.2", "cnn", {"filters": [16, 32]}, "width_shift_range=0.2"),
    Setup("... + 10% inverted training images", "cnn", {"filters": [16, 32]}, "width_shift_range=0.2", 0.1),
]
BASELINE = "CNN [16, 32]"


@dataclass
class Row:
    label: str
    test: float
    inverted: float
    shifted: float
    material: tuple | None
    augment: str | None
    inverted_fraction: float
    seconds: float
    run_dir: str
    extra: dict = field(default_factory=dict)


# ---- data -------------------------------------------------------------------------------------
def load_mnist(source, *, train_limit=None, test_limit=None, seed=0):
    """(x_train, y_train, x_test, y_test, classes) as uint8 N x 28 x 28 x 1 arrays from a pre-split
    source (train/ and test/ class folders, or any layout with those splits); limits take seeded
    stratified samples."""
    from pixelforge.data.loader import load_arrays
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.data.read import read_dataset
    from pixelforge.robustness.suite import _sample

    manifest = read_dataset(str(source))
    if not manifest.is_split or not {"train", "test"} <= set(manifest.split_names):
        raise PixelforgeError(f"{source}: the curation experiment needs train and test splits "
                              f"(found {manifest.split_names or 'none'})")
    spec = Preprocess(size=(28, 28), channels=1)
    parts = []
    for name, limit in (("train", train_limit), ("test", test_limit)):
        part = manifest.split(name)
        part = part.subset(_sample(part.label_indices(), limit, seed))
        x, y = load_arrays(part, spec)
        parts += [np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28, 1), np.asarray(y).astype(np.int64)]
    return (*parts, list(manifest.classes))


def add_inverted(x, y, fraction: float, seed: int = 0):
    """Append inverted copies of a seeded random ``fraction`` of the images (the material's fix)."""
    if fraction <= 0:
        return x, y
    rng = np.random.default_rng([seed, 255])
    pick = rng.choice(len(x), size=int(round(fraction * len(x))), replace=False)
    return np.concatenate([x, 255 - x[pick]]), np.concatenate([y, y[pick]])


def derived_test_sets(x_test) -> dict[str, np.ndarray]:
    """The material's three test sets; the shift is the suite's roll at 4/28 of the width."""
    return {"test": x_test, "inverted": corrupt("invert", x_test, 1), "shifted": corrupt("roll", x_test, 3)}


# ---- training through the trainer ---------------------------------------------------------------
def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "run"


def train_setup(setup: Setup, data, run_dir: Path, *, epochs: int, batch_size: int, seed: int,
                threads: int | None = None):
    """Train one setup with pixelforge's Trainer and save it; returns the loaded SavedModel."""
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.train import Trainer, load_model

    x_train, y_train = add_inverted(data["x_train"], data["y_train"], setup.inverted_fraction, seed)
    names = np.asarray(data["classes"])[y_train]  # class names keep the model's classes = the data's
    trainer = Trainer(setup.model, Preprocess(size=(28, 28), channels=1), optimizer="rmsprop",
                      augment=setup.augment, seed=seed, model_params=setup.params, verbose=False,
                      threads=threads)
    trainer.fit((x_train, names), epochs=epochs, batch_size=batch_size)
    trainer.save(run_dir)
    return load_model(run_dir)


def score(saved_model, sets: dict, y_test) -> dict[str, float]:
    out = {}
    for name, x in sets.items():
        probs = saved_model.predict_arrays(x, batch_size=1024)
        out[name] = float(np.mean(np.asarray(probs).argmax(axis=1) == y_test))
    return out


# ---- the experiment -----------------------------------------------------------------------------
def run_curation(source, out_dir, *, epochs: int = 10, batch_size: int = 32, seed: int = 0,
                 quick: bool = False, recommend: bool = True, threshold: float = 0.05,
                 suite_limit: int = 2000, threads: int | None = None, log=print) -> dict:
    """Run every setup (and the recommended one), write curation.json and curation.md to ``out_dir``."""
    import torch

    from pixelforge.robustness.recommend import augment_spec, merged_augment
    from pixelforge.robustness.suite import run_wild_suite

    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    limits = dict(train_limit=1000, test_limit=200) if quick else {}
    if quick:
        epochs, suite_limit = 1, min(suite_limit, 200)
    x_train, y_train, x_test, y_test, classes = load_mnist(source, seed=seed, **limits)
    log(f"MNIST: {len(x_train):,} training and {len(x_test):,} test images "
        f"({time.perf_counter() - started:.0f} s to read)")
    data = {"x_train": x_train, "y_train": y_train, "classes": classes, "threads": threads}
    sets = derived_test_sets(x_test)
    rows: list[Row] = []
    models = {}
    for setup in SETUPS:
        rows.append(_run_row(setup, data, sets, y_test, out, epochs, batch_size, seed, models, log))
    result = {
        "source": str(source), "epochs": epochs, "batch_size": batch_size, "seed": seed, "quick": quick,
        "optimizer": "rmsprop", "train_images": len(x_train), "test_images": len(x_test),
        "rows": [asdict(r) for r in rows],
    }
    if recommend:
        base_report = run_wild_suite(models[BASELINE], x_test, y_test, seed=seed, limit=suite_limit,
                                     threshold=threshold)
        augment = merged_augment(base_report["recommendations"])
        spec = augment_spec(augment)
        setup = Setup(f"{BASELINE} + pixelforge recommendations", "cnn", {"filters": [16, 32]}, spec or None,
                      note="augmentation chosen by `pixelforge evaluate --wild` on the CNN [16, 32]")
        log(f"recommended augmentation: {spec or '(none)'}")
        row = _run_row(setup, data, sets, y_test, out, epochs, batch_size, seed, models, log)
        after = run_wild_suite(models[setup.label], x_test, y_test, seed=seed, limit=suite_limit,
                               threshold=threshold)
        base = next(r for r in rows if r.label == BASELINE)
        result["recommended"] = {
            "row": asdict(row),
            "augment": spec,
            "recommendations": base_report["recommendations"],
            "suite_before": _suite_summary(base_report),
            "suite_after": _suite_summary(after),
            "gain": {k: getattr(row, k) - getattr(base, k) for k in ("test", "inverted", "shifted")}
            | {"mean_corrupted_accuracy": after["mean_corrupted_accuracy"] - base_report["mean_corrupted_accuracy"]},
        }
        rows.append(row)
    result["checks"] = shape_checks(rows)
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "curation.json").write_text(json.dumps(result, indent=2))
    (out / "curation.md").write_text(markdown(result))
    return result


def _run_row(setup, data, sets, y_test, out, epochs, batch_size, seed, models, log) -> Row:
    t0 = time.perf_counter()
    run_dir = out / "runs" / slug(setup.label)
    model = train_setup(setup, data, run_dir, epochs=epochs, batch_size=batch_size, seed=seed,
                        threads=data["threads"])
    models[setup.label] = model
    acc = score(model, sets, y_test)
    row = Row(setup.label, acc["test"], acc["inverted"], acc["shifted"], MATERIAL.get(setup.label),
              setup.augment, setup.inverted_fraction, round(time.perf_counter() - t0, 1), str(run_dir))
    log(f"{setup.label}: test {row.test:.1%}, inverted {row.inverted:.1%}, shifted {row.shifted:.1%} "
        f"({row.seconds:.0f} s)")
    return row


def _suite_summary(report: dict) -> dict:
    return {
        "clean_accuracy": report["clean"]["accuracy"],
        "mean_corrupted_accuracy": report["mean_corrupted_accuracy"],
        "per_corruption": {k: v["mean_accuracy"] for k, v in report["corruptions"].items()},
    }


def shape_checks(rows: list[Row]) -> dict:
    """The material's claims: shift augmentation lifts shifted accuracy above 95%, inverted training
    images lift inverted accuracy above 90%."""
    by = {r.label: r for r in rows}
    shift, inv = by.get(SETUPS[3].label), by.get(SETUPS[4].label)
    return {
        "shift_augmentation_lifts_shifted_above_95": bool(shift and shift.shifted > 0.95),
        "inverted_images_lift_inverted_above_90": bool(inv and inv.inverted > 0.90),
    }


def markdown(result: dict) -> str:
    from pixelforge.robustness.recommend import regression_lines, regressions

    lines = [
        "# The data-curation experiment, reproduced",
        "",
        f"MNIST, {result['train_images']:,} training / {result['test_images']:,} test images, RMSprop, "
        f"{result['epochs']} epochs, batch {result['batch_size']}, seed {result['seed']}"
        + (" (quick run: a sample of the data, fewer epochs)" if result["quick"] else "") + ".",
        "Shifted = every test digit rolled 4 pixels right (`np.roll(x, 4, axis=2)`); inverted = 255 - x.",
        "",
        "| model | test | inverted | shifted | material: test | inverted | shifted | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = list(result["rows"]) + ([result["recommended"]["row"]] if "recommended" in result else [])
    for r in rows:
        mat = r["material"] or ("", "", "")
        mat_cells = " | ".join(f"{v:g}%" if v != "" else "—" for v in mat)
        lines.append(f"| {r['label']} | {r['test']:.1%} | {r['inverted']:.1%} | {r['shifted']:.1%} | "
                     f"{mat_cells} | {r['seconds']:.0f} |")
    checks = result["checks"]
    lines += ["", "Shape of the material's result:",
              f"- shift augmentation lifts shifted accuracy above 95%: "
              f"{'yes' if checks['shift_augmentation_lifts_shifted_above_95'] else 'NO'}",
              f"- 10% inverted training images lift inverted accuracy above 90%: "
              f"{'yes' if checks['inverted_images_lift_inverted_above_90'] else 'NO'}"]
    if "recommended" in result:
        rec = result["recommended"]
        g = rec["gain"]
        lines += [
            "", "## Following pixelforge's own recommendations", "",
            f"`pixelforge evaluate --wild` on the CNN [16, 32] recommended `--augment \"{rec['augment']}\"`:",
            "",
        ]
        lines += [f"- {r['corruption']} (accuracy drop up to {r['max_drop']:.1%}): {r['data']}"
                  for r in rec["recommendations"]]
        before, after = rec["suite_before"], rec["suite_after"]
        lines += [
            "",
            f"Gain over the CNN [16, 32]: test {g['test']:+.1%}, inverted {g['inverted']:+.1%}, "
            f"shifted {g['shifted']:+.1%}; mean accuracy over all corruptions of the wild suite "
            f"{before['mean_corrupted_accuracy']:.1%} → {after['mean_corrupted_accuracy']:.1%} "
            f"({g['mean_corrupted_accuracy']:+.1%}).",
            "",
            "| corruption | CNN [16, 32] | + recommendations |",
            "|---|---:|---:|",
        ]
        lines += [f"| {k} | {v:.1%} | {after['per_corruption'].get(k, float('nan')):.1%} |"
                  for k, v in before["per_corruption"].items()]
        worse = regressions(before["per_corruption"], after["per_corruption"])
        if worse:
            lines += ["", "Regressions (mean accuracy down more than 5 points after following the "
                      "recommendations — fixing one weakness opened another):", ""]
            lines += regression_lines(worse)
    lines += ["", f"Total time: {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"
