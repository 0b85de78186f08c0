"""Learning-rate schedules as plain functions of training progress, set on the optimizer each step.

Spec strings (CLI ``--schedule``), parameters after a colon::

    step:every=10,factor=0.5     lr * factor ** floor(epoch / every)         (Keras step decay)
    poly:power=2,end=0           (lr - end) * (1 - t) ** power + end          t = step / total steps
    linear                        poly with power 1
    cosine:end=0,warmup=0         cosine from lr to end, optional linear warm-up fraction
    onecycle:pct=0.3,div=25,final_div=10000   warm up lr/div → lr, then cosine down to lr/(div*final_div)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pixelforge.errors import PixelforgeError, check_keys

SCHEDULES = ("constant", "step", "poly", "linear", "cosine", "onecycle")
PARAMS = {
    "constant": {},
    "step": {"every": 10.0, "factor": 0.5},
    "poly": {"power": 1.0, "end": 0.0},
    "linear": {"end": 0.0},
    "cosine": {"end": 0.0, "warmup": 0.0},
    "onecycle": {"pct": 0.3, "div": 25.0, "final_div": 1e4},
}


@dataclass
class Schedule:
    """``lr_at(step, steps_per_epoch, total_steps, base_lr)`` for one named schedule."""

    name: str = "constant"
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.name not in PARAMS:
            raise PixelforgeError(f"unknown schedule {self.name!r}; valid schedules: {', '.join(SCHEDULES)}")
        check_keys(self.params, PARAMS[self.name], f"{self.name!r} schedule parameter", PixelforgeError)
        self.params = {**PARAMS[self.name], **{k: float(v) for k, v in self.params.items()}}
        if self.name == "step" and (self.params["every"] <= 0 or self.params["factor"] <= 0):
            raise PixelforgeError("step schedule needs every > 0 and factor > 0")
        if self.name == "onecycle" and not 0 < self.params["pct"] < 1:
            raise PixelforgeError("onecycle pct must be between 0 and 1")
        if self.name == "cosine" and not 0 <= self.params["warmup"] < 1:
            raise PixelforgeError("cosine warmup must be a fraction in [0, 1)")

    @classmethod
    def parse(cls, spec) -> Schedule:
        """From None, a Schedule, a dict {"name", "params"} or a CLI string like ``step:every=5``."""
        if spec is None or spec == "":
            return cls()
        if isinstance(spec, Schedule):
            return spec
        if isinstance(spec, dict):
            return cls(str(spec.get("name", "constant")), dict(spec.get("params") or {}))
        name, _, rest = str(spec).partition(":")
        params = {}
        for pair in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = pair.partition("=")
            try:
                params[key.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise PixelforgeError(f"schedule parameter {pair!r} must be key=number (e.g. step:every=10,factor=0.5)")
        return cls(name.strip().lower(), params)

    def to_dict(self) -> dict:
        return {"name": self.name, "params": dict(self.params)}

    def lr_at(self, step: int, steps_per_epoch: int, total_steps: int, base_lr: float) -> float:
        p = self.params
        t = min(step / max(total_steps, 1), 1.0)
        if self.name == "constant":
            return base_lr
        if self.name == "step":
            epoch = step // max(steps_per_epoch, 1)
            return base_lr * p["factor"] ** math.floor(epoch / p["every"])
        if self.name in ("poly", "linear"):
            power = p.get("power", 1.0)
            return (base_lr - p["end"]) * (1 - t) ** power + p["end"]
        if self.name == "cosine":
            if p["warmup"] and t < p["warmup"]:
                return base_lr * t / p["warmup"]
            u = (t - p["warmup"]) / (1 - p["warmup"])
            return p["end"] + (base_lr - p["end"]) * 0.5 * (1 + math.cos(math.pi * u))
        # onecycle
        start, low = base_lr / p["div"], base_lr / (p["div"] * p["final_div"])
        if t < p["pct"]:
            u = t / p["pct"]
            return start + (base_lr - start) * 0.5 * (1 - math.cos(math.pi * u))
        u = (t - p["pct"]) / (1 - p["pct"])
        return low + (base_lr - low) * 0.5 * (1 + math.cos(math.pi * u))
