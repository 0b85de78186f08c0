"""The learning-rate range test: train briefly while the LR grows exponentially, plot the smoothed
loss against the LR, and suggest the LR where the loss falls fastest. The model and optimizer are
put back as they were afterwards."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from pixelforge.errors import PixelforgeError
from pixelforge.train.data import prepare
from pixelforge.train.normalize import to_tensor


def lr_find(trainer, train, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100,
            batch_size: int = 32, smoothing: float = 0.98, plot=None) -> dict:
    """Run the range test on ``train``; returns {lrs, losses, suggested_lr} and writes ``plot`` (PNG)."""
    if not 0 < start_lr < end_lr:
        raise PixelforgeError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    data, trainer.preprocess = prepare(train, trainer.preprocess, trainer.classes, trainer.memory_budget)
    trainer._fit_statistics(data)
    trainer.build(data.image_shape, data.classes)
    if trainer.optimizer is None:
        raise PixelforgeError(f"{trainer.model_name} is not trained by gradient descent; no learning rate to find")
    saved_weights = copy.deepcopy(trainer.network.state_dict())
    saved_optimizer = copy.deepcopy(trainer.optimizer.state_dict())
    net, optimizer = trainer._net, trainer.optimizer
    factor = (end_lr / start_lr) ** (1 / max(steps - 1, 1))
    # each parameter group keeps its share of the rate (earlier layers slower when fine-tuning)
    head_lr = optimizer.param_groups[-1]["initial_lr"]
    shares = [group["initial_lr"] / head_lr for group in optimizer.param_groups]
    lrs, losses = [], []
    average, best = 0.0, math.inf
    rng = np.random.default_rng([trainer.seed, 999])
    net.train()
    if trainer.transfer is not None:  # the first epoch's setup: frozen body, batch norm held
        trainer.batch_size = batch_size
        trainer._transfer_phase(0)
    try:
        step = 0
        while step < steps:
            order = rng.permutation(len(data))
            for images, labels in data.batches(batch_size, order):
                lr = start_lr * factor**step
                for group, share in zip(optimizer.param_groups, shares, strict=True):
                    group["lr"] = lr * share
                loss = F.cross_entropy(net(to_tensor(images)), torch.from_numpy(labels))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                value = float(loss.detach())
                average = smoothing * average + (1 - smoothing) * value
                smoothed = average / (1 - smoothing ** (step + 1))
                if not math.isfinite(smoothed):
                    break
                lrs.append(lr)
                losses.append(smoothed)
                best = min(best, smoothed)
                step += 1
                if step >= steps or smoothed > 4 * best:
                    break
            else:
                continue
            break
    finally:
        trainer.network.load_state_dict(saved_weights)
        optimizer.load_state_dict(saved_optimizer)
    suggested = suggest_lr(lrs, losses)
    if plot is not None:
        from pixelforge.train.plots import plot_lr_find

        plot_lr_find(lrs, losses, suggested, plot)
    return {"lrs": lrs, "losses": losses, "suggested_lr": suggested}


def suggest_lr(lrs: list[float], losses: list[float]) -> float | None:
    """The LR of the steepest fall of the loss (on a log-LR axis), ignoring the noisy first 10%."""
    if len(losses) < 5:
        return None
    values = np.asarray(losses)
    cut = int(np.argmin(values)) + 1  # beyond the minimum the loss only explodes
    skip = max(1, len(values) // 10)
    if cut - skip < 3:
        return float(lrs[int(np.argmin(values))] / 10)
    slopes = np.gradient(values[skip:cut], np.log(np.asarray(lrs[skip:cut])))
    return float(lrs[skip + int(np.argmin(slopes))])
