"""Optimizers by name with Keras' defaults, so the material's settings give the material's results.

- ``sgd``: lr 0.01, optional momentum and Nesterov. torch's momentum form (v = m v + g; w -= lr v)
  equals Keras' (v = m v - lr g; w += v) at a constant learning rate.
- ``adam``: lr 0.001, betas (0.9, 0.999), epsilon 1e-7 (Keras; torch's default is 1e-8).
- ``adamw``: Adam with decoupled weight decay (Keras' AdamW), same defaults.
- ``rmsprop``: lr 0.001, rho 0.9, epsilon 1e-7 added *inside* the square root, accumulator starting
  at zero — Keras' update ``w -= lr g / sqrt(ms + eps)``. torch's RMSprop adds eps outside the root
  and defaults to alpha 0.99, which trains noticeably differently at Keras' settings, hence our own.
Weight decay is L2 added to the gradient (``weight_decay * w``), like a Keras L2 kernel penalty
differentiated (up to the factor 2 Keras' ``l2`` carries).
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer

from pixelforge.errors import PixelforgeError

DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.001}
OPTIMIZERS = tuple(DEFAULT_LR)


class KerasRMSprop(Optimizer):
    """RMSprop as Keras computes it (see the module docstring), with optional momentum."""

    def __init__(self, params, lr=0.001, rho=0.9, eps=1e-7, momentum=0.0, weight_decay=0.0):
        if not 0.0 <= rho < 1.0:
            raise PixelforgeError(f"rmsprop rho must be in [0, 1), got {rho}")
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "momentum": momentum,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            squares = []
            for p in params:
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.zeros_like(p)
                    if group["momentum"]:
                        state["momentum_buffer"] = torch.zeros_like(p)
                squares.append(state["square_avg"])
            rho = group["rho"]
            torch._foreach_mul_(squares, rho)
            torch._foreach_addcmul_(squares, grads, grads, value=1.0 - rho)
            denom = torch._foreach_add(squares, group["eps"])
            torch._foreach_sqrt_(denom)
            if group["momentum"]:
                buffers = [self.state[p]["momentum_buffer"] for p in params]
                torch._foreach_mul_(buffers, group["momentum"])
                torch._foreach_addcdiv_(buffers, grads, denom, value=group["lr"])
                torch._foreach_sub_(params, buffers)
            else:
                torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])
        return loss


def build_optimizer(
    name: str,
    params,
    lr: float | None = None,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> Optimizer:
    """An optimizer by name ("sgd", "adam", "adamw", "rmsprop"); ``lr=None`` takes the Keras default.
    For adamw, ``weight_decay`` is decoupled from the gradient (Loshchilov & Hutter), as in Keras' AdamW."""
    key = str(name).lower()
    if key not in DEFAULT_LR:
        raise PixelforgeError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[key] if lr is None else float(lr)
    if not lr > 0:
        raise PixelforgeError(f"learning rate must be > 0, got {lr}")
    if not 0.0 <= momentum < 1.0:
        raise PixelforgeError(f"momentum must be in [0, 1), got {momentum}")
    if weight_decay < 0:
        raise PixelforgeError(f"weight decay must be >= 0, got {weight_decay}")
    if nesterov and key != "sgd":
        raise PixelforgeError("--nesterov applies to the sgd optimizer only")
    if nesterov and momentum == 0:
        raise PixelforgeError("Nesterov momentum needs --momentum > 0 (e.g. 0.9)")
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=weight_decay, fused=True)
    if key in ("adam", "adamw"):
        if momentum:
            raise PixelforgeError(f"--momentum applies to sgd and rmsprop; {key} uses its betas")
        kind = torch.optim.AdamW if key == "adamw" else torch.optim.Adam
        return kind(params, lr=lr, eps=1e-7, weight_decay=weight_decay, fused=True)
    return KerasRMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
