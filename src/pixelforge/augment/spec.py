"""Parse augmentation specs: CLI strings, dicts and JSON, with messages that say what was expected.

String form (the CLI's ``--augment``): comma-separated ``key=value`` items; a bare key means
``key=true``; values may be numbers, fractions (``1/255``), booleans, words, or bracketed lists
(``zoom_range=[0.9,1.1]``). ``key.param=value`` sets a secondary parameter of an op
(``blur=1.5,blur.p=0.3``). Order is kept: it is the order the ops run in.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

from pixelforge.errors import PixelforgeError


class SpecError(PixelforgeError, ValueError):
    """An augmentation parameter is missing, unknown or out of range."""


def split_items(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    items, depth, current = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth < 0:
                raise SpecError(f"unbalanced ']' in augmentation spec {text!r}")
        if ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if depth:
        raise SpecError(f"unbalanced '[' in augmentation spec {text!r}")
    items.append("".join(current).strip())
    return [item for item in items if item]


def parse_value(text: str):
    """'15' → 15, '0.2' → 0.2, '1/255' → 0.00392…, 'true' → True, '[0.9,1.1]' → [0.9, 1.1]."""
    text = text.strip()
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    if text.startswith(("[", "(")) and text.endswith(("]", ")")):
        return [parse_value(part) for part in split_items(text[1:-1])]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if "/" in text:
        try:
            return float(Fraction(text))
        except (ValueError, ZeroDivisionError):
            pass
    return text


def parse_spec(spec) -> dict:
    """A spec (None, dict, JSON text, a .json/.yaml file, or CLI string) → an ordered dict."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return dict(spec)
    if not isinstance(spec, str):
        raise SpecError(f"augmentation spec must be a string or a dict, got {type(spec).__name__}")
    text = spec.strip()
    if not text or text.lower() in ("none", "off", "false"):
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"augmentation spec is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SpecError("a JSON augmentation spec must be an object")
        return data
    if text.endswith(".json") and Path(text).is_file():
        return parse_spec(Path(text).read_text())
    if text.endswith((".yaml", ".yml")) and Path(text).is_file():
        return _read_yaml(Path(text))
    out: dict = {}
    for item in split_items(text):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key:
            raise SpecError(f"empty key in augmentation spec item {item!r}")
        out[key] = parse_value(value) if sep else True
    return out


def _read_yaml(path: Path) -> dict:
    try:
        import yaml
    except ImportError:
        raise SpecError(f"{path}: reading YAML specs needs PyYAML (pip install pyyaml), or use JSON") from None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a YAML augmentation spec must be a mapping")
    return data


# ---- validation helpers used by the ops ---------------------------------------------------------
def number(name: str, value, *, low=None, high=None, integer=False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise SpecError(f"{name} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise SpecError(f"{name} must be a whole number, got {value!r}")
    if low is not None and value < low:
        raise SpecError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise SpecError(f"{name} must be <= {high}, got {value!r}")
    return int(value) if integer else float(value)


def probability(name: str, value) -> float:
    if value is True:
        return 0.5
    return number(name, value, low=0, high=1)


def interval(name: str, value, *, around=None, low=None, high=None) -> tuple[float, float]:
    """A [lo, hi] pair; a single number v means [around - v, around + v] (or [-v, v])."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise SpecError(f"{name} must be a number or a pair [low, high], got {value!r}")
        lo, hi = (number(name, v) for v in value)
    else:
        v = number(name, value, low=0)
        center = 0.0 if around is None else around
        lo, hi = center - v, center + v
    if lo > hi:
        raise SpecError(f"{name} must have low <= high, got {value!r}")
    if low is not None and lo < low:
        raise SpecError(f"{name} must stay >= {low}, got {value!r}")
    if high is not None and hi > high:
        raise SpecError(f"{name} must stay <= {high}, got {value!r}")
    return lo, hi
