"""Recommendations: for each corruption that costs more than ``threshold`` accuracy, the augmentation
(in the ``--augment`` spec vocabulary of :class:`pixelforge.augment.Pipeline`) or the data that
addresses it, and the ``pixelforge train`` command that applies them.

The parameter of an augmentation is read off the suite's results: the largest failing level up to a
moderate severity (``cover``), with a margin, so that training covers what the model failed on
without distorting every image beyond recognition.
"""

from __future__ import annotations

import math
import shlex

# corruption → (augmentation keys with how to derive each value from the failing level, data advice).
# Keys are the augmentation Pipeline's spec keys ("op.param" sets a secondary parameter of an op).
# Values: ("margin", m, lo, hi) = level x m rounded up to 0.05 and clipped to [lo, hi];
#         ("abs1", lo, hi) = |1 - level|, the distance of a scale from 1, rounded up to 0.05;
#         ("scale", m, lo, hi) = level x m rounded up to a whole number;
#         ("pair", m, lo, hi) = [1 - b, 1 + b] with b from "margin" (Keras' brightness_range);
#         ("levels", lo, hi) = level x 255 (a fraction of the range → 0-255 levels), whole;
#         ("quality", hi) = [level, hi] (JPEG qualities); ("const", value).
RULES: dict[str, tuple[list[tuple[str, tuple]], str]] = {
    "invert": ([("invert", ("const", 0.1))],
               "add ~10% inverted images (light background, dark strokes) to the training set"),
    "roll": ([("width_shift_range", ("margin", 1.25, 0.1, 0.3))],
             "add images whose object is off-centre (cropped or framed differently)"),
    "shift": ([("width_shift_range", ("margin", 1.25, 0.1, 0.3)),
               ("height_shift_range", ("margin", 1.25, 0.1, 0.3))],
              "add images whose object is off-centre (cropped or framed differently)"),
    "rotation": ([("rotation_range", ("scale", 1.25, 5, 45))],
                 "add images taken at an angle (tilted camera or object)"),
    "zoom_in": ([("zoom_range", ("abs1", 0.1, 0.3))], "add close-ups (object filling the frame)"),
    "zoom_out": ([("zoom_range", ("abs1", 0.1, 0.3))], "add images with the object smaller in the frame"),
    "brightness": ([("scale_shift.brightness_shift", ("levels", 10, 64)), ("scale_shift", ("const", 0.1))],
                   "add images under brighter and darker lighting"),
    "contrast": ([("scale_shift", ("abs1", 0.1, 0.5))], "add low-contrast (washed-out, hazy) images"),
    "gamma": ([("brightness_range", ("const", [0.8, 1.2])), ("scale_shift", ("const", 0.2))],
              "add under- and over-exposed images"),
    "blur": ([("blur", ("margin", 1.0, 0.5, 3.0)), ("blur.p", ("const", 0.3))],
             "add out-of-focus or low-resolution images"),
    "noise": ([("noise", ("levels", 5, 48)), ("noise.p", ("const", 0.3))], "add noisy (low-light, high-ISO) images"),
    "jpeg": ([("jpeg", ("quality", 95)), ("jpeg.p", ("const", 0.3))],
             "add images saved as low-quality JPEG (web, chat apps)"),
    "thicken": ([("dilate", ("const", 0.3))],
                "add images drawn with thicker pens or strokes (or dilated copies of the training images)"),
    "thin": ([("erode", ("const", 0.3))],
             "add images drawn with thinner pens or strokes (or eroded copies of the training images)"),
    "background_gray": ([], "add images on grey and light backgrounds (composite the foreground onto new backgrounds)"),
    "background_color": ([], "add images on backgrounds of other colours (composite the foreground onto new backgrounds)"),
    "background_texture": ([], "add images on textured backgrounds (paper, fabric, clutter)"),
    "grayscale": ([("grayscale", ("const", 0.1))], "add greyscale copies of ~10% of the training images"),
    "hue_shift": ([("color", ("const", 0.2))], "add images in other colourways and lighting colours"),
}


def _round_up(value: float, step: float = 0.05) -> float:
    return round(math.ceil(value / step - 1e-9) * step, 4)


def _value(rule: tuple, level: float):
    kind = rule[0]
    if kind == "const":
        return rule[1]
    if kind == "margin":
        _, m, lo, hi = rule
        return min(max(_round_up(level * m), lo), hi)
    if kind == "pair":
        b = _value(("margin", *rule[1:]), level)
        return [round(1.0 - b, 4), round(1.0 + b, 4)]
    if kind == "abs1":
        _, lo, hi = rule
        return min(max(_round_up(abs(1.0 - level)), lo), hi)
    if kind == "scale":
        _, m, lo, hi = rule
        return int(min(max(math.ceil(level * m), lo), hi))
    if kind == "levels":
        _, lo, hi = rule
        return int(min(max(math.ceil(level * 255), lo), hi))
    if kind == "quality":
        return [int(level), rule[1]]
    raise ValueError(f"unknown rule {rule!r}")


def supported_augmentations() -> set[str] | None:
    """The keys the augmentation Pipeline accepts, or None when it cannot tell (then all are kept)."""
    try:
        from pixelforge.augment import pipeline
    except ImportError:
        return None

    known = getattr(pipeline, "known_keys", None)
    return set(known()) if known else None


def _accepted(key: str, value, supported: set[str] | None) -> bool:
    """Whether the augmentation Pipeline takes ``key=value`` (else the data advice stands alone)."""
    if supported is not None and key.split(".")[0] not in supported:
        return False
    try:
        from pixelforge.augment import Pipeline
    except ImportError:
        return True
    try:
        Pipeline.from_spec({key: value})
    except Exception:  # the Pipeline says no: fall back to the data advice
        return False
    return True


def _failing_level(entry: dict, threshold: float, cover: int):
    """The severity to train against: the largest failing one up to ``cover`` (severities beyond it
    are extreme and expected to fail, so they alone trigger nothing — unless only those were run)."""
    tested = sorted(int(s) for s in entry["severities"])
    failing = [s for s in tested if entry["severities"][str(s)]["drop"] > threshold]
    within = [s for s in failing if s <= cover]
    if within:
        severity = max(within)
    elif failing and min(tested) > cover:
        severity = min(failing)
    else:
        return None, None
    return severity, entry["severities"][str(severity)]["level"]


def recommend(report: dict, threshold: float = 0.05, cover: int = 3) -> list[dict]:
    """One recommendation per corruption whose accuracy drop exceeds ``threshold`` at some severity,
    worst first: the augmentation settings (merged into one spec) and data advice."""
    supported = supported_augmentations()
    out = []
    for name, entry in report.get("corruptions", {}).items():
        severity, level = _failing_level(entry, threshold, cover)
        if severity is None:
            continue
        rules, advice = RULES.get(name, ([], "add training images that look like this corruption"))
        augment = {}
        for key, rule in rules:
            value = _value(rule, level)
            if _accepted(key, value, supported):
                augment[key] = value
        out.append({
            "corruption": name,
            "severity": severity,
            "level": level,
            "drop": round(entry["severities"][str(severity)]["drop"], 4),
            "max_drop": round(entry["max_drop"], 4),
            "augment": augment,
            "data": advice,
        })
    out.sort(key=lambda r: (-r["drop"], -r["max_drop"]))
    return out


def format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def merged_augment(recommendations: list[dict], base: dict | None = None) -> dict:
    """One augmentation dict from all recommendations: the larger value where two ask for one key."""
    merged = dict(base or {})
    for rec in recommendations:
        for key, value in rec["augment"].items():
            old = merged.get(key)
            merged[key] = value if old is None or not isinstance(value, int | float) else max(old, value)
    return merged


def augment_spec(augment: dict) -> str:
    """The ``--augment`` string form: ``key=value,key=value`` in a stable order."""
    return ",".join(f"{k}={format_value(v)}" for k, v in sorted(augment.items()))


def train_command(source: str, model: str | None, out: str, augment: dict,
                  options: dict | None = None) -> str:
    """The exact ``pixelforge train`` command that retrains with the recommended augmentation.

    ``options``: other train options to repeat from the original run (e.g. {"epochs": 10}).
    """
    parts = ["pixelforge", "train", source]
    if model:
        parts += ["--model", model]
    for key, value in (options or {}).items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, format_value(value)]
    parts += ["--out", out]
    if augment:
        parts += ["--augment", augment_spec(augment)]
    return shlex.join(parts)


def summarize(recommendations: list[dict]) -> list[str]:
    """One human line per recommendation."""
    lines = []
    for rec in recommendations:
        what = augment_spec(rec["augment"]) if rec["augment"] else "(no augmentation for this)"
        lines.append(
            f"{rec['corruption']}: accuracy drops {rec['max_drop']:.1%} at worst; augment {what}; data: {rec['data']}"
        )
    return lines


# Parameters that are probabilities or ranges around "no change"; pairs are [low, high] around 1.
_PAIRS_AROUND_ONE = ("brightness_range",)


def soften(augment: dict, factor: float = 0.5) -> dict:
    """The same augmentation at ``factor`` of its strength: ranges, sigmas, noise levels and
    probabilities scaled towards "no change" (used when retraining costs too much clean accuracy)."""
    out = {}
    for key, value in augment.items():
        if isinstance(value, bool) or key.endswith(("fill_mode", "interpolation_order", "engine")):
            out[key] = value
        elif key in _PAIRS_AROUND_ONE and isinstance(value, list | tuple):
            out[key] = [round(1 - (1 - value[0]) * factor, 4), round(1 + (value[1] - 1) * factor, 4)]
        elif key == "jpeg" and isinstance(value, list | tuple):
            out[key] = [int(round(value[1] - (value[1] - value[0]) * factor)), value[1]]
        elif isinstance(value, int) and key in ("rotation_range", "noise", "scale_shift.brightness_shift",
                                                 "channel_shift_range"):
            out[key] = max(1, int(round(value * factor)))
        elif isinstance(value, int | float):
            out[key] = round(value * factor, 4)
        else:
            out[key] = value
    return out


def regressions(before: dict, after: dict, threshold: float = 0.05, severity: int = 2) -> list[dict]:
    """Corruptions whose mean accuracy fell by more than ``threshold`` after retraining (fixing one
    weakness can open another: a model that learned inverted digits may take a brighter, noisy
    background for an inverted image), each with the augmentation that would address it next.

    ``before``/``after``: {corruption: mean accuracy}. The suggestion uses the corruption's level at
    ``severity`` (a moderate one).
    """
    from pixelforge.robustness.corruptions import CORRUPTIONS

    supported = supported_augmentations()
    out = []
    for name, old in before.items():
        new = after.get(name)
        if new is None or old - new <= threshold:
            continue
        rules, advice = RULES.get(name, ([], "add training images that look like this corruption"))
        levels = CORRUPTIONS[name].levels
        level = levels[min(severity, len(levels)) - 1]
        augment = {k: _value(r, level) for k, r in rules}
        augment = {k: v for k, v in augment.items() if _accepted(k, v, supported)}
        out.append({"corruption": name, "before": old, "after": new, "augment": augment, "data": advice})
    return sorted(out, key=lambda r: r["after"] - r["before"])


def regression_lines(items: list[dict]) -> list[str]:
    """Markdown bullets for :func:`regressions`."""
    return [
        f"- {r['corruption']}: {r['before']:.1%} → {r['after']:.1%}; next: "
        + (f"`{augment_spec(r['augment'])}`, " if r["augment"] else "") + r["data"]
        for r in items
    ]
