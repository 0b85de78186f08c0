"""The resumable training state in ``run_dir/checkpoint/``: ``last.safetensors`` (weights and
optimizer tensors) + ``last.json`` (epoch, history, optimizer settings, callback states, the run's
configuration). Written atomically after every epoch; no pickle anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from pixelforge.errors import PixelforgeError
from pixelforge.train.files import atomic_path, write_json
from pixelforge.train.saved import sha256_file

STATE_FORMAT = "pixelforge-training-state"


def state_paths(run_dir) -> tuple[Path, Path]:
    folder = Path(run_dir) / "checkpoint"
    return folder / "last.safetensors", folder / "last.json"


def _optimizer_tensors(optimizer) -> tuple[dict, dict]:
    """Optimizer state → (tensors keyed ``optim.<param>.<name>``, JSON part)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_training_state(run_dir, trainer, epochs_done: int) -> None:
    from safetensors.torch import save_file

    weights_path, meta_path = state_paths(run_dir)
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in trainer.network.state_dict().items()}
    optim_tensors, optim_meta = _optimizer_tensors(trainer.optimizer)
    tensors.update(optim_tensors)
    # Kill -9 safe at any point: the new weights go beside the old ones (``last.next``), last.json then
    # switches to them by their digest, and only then do they take the old ones' name. A run killed in
    # between still has a matching pair (see ``load_training_state``).
    staged = _staged(weights_path)
    with atomic_path(staged) as tmp:
        save_file(tensors, str(tmp))
        digest = sha256_file(tmp)
    write_json(meta_path, {
        "format": STATE_FORMAT,
        "epochs_done": epochs_done,
        "history": trainer.history.history,
        "optimizer": optim_meta,
        "callbacks": [cb.state_dict() for cb in trainer.callbacks],
        "run": trainer.run_config(),
        "sha256": digest,
    })
    os.replace(staged, weights_path)


def _staged(weights_path: Path) -> Path:
    return weights_path.with_name("last.next.safetensors")


def load_training_state(run_dir) -> tuple[dict, dict]:
    """(tensors, metadata) of the last checkpoint; a missing or damaged one is a PixelforgeError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, meta_path = state_paths(run_dir)
    if not meta_path.is_file() or not (weights_path.is_file() or _staged(weights_path).is_file()):
        raise PixelforgeError(f"{Path(run_dir)}: no checkpoint to resume from (checkpoint/last.json is missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{meta_path}: damaged checkpoint ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise PixelforgeError(f"{meta_path}: not a pixelforge training checkpoint")
    staged = _staged(weights_path)
    if staged.is_file() and sha256_file(staged) == meta.get("sha256"):
        os.replace(staged, weights_path)  # killed after last.json switched, before the rename: finish it
    if sha256_file(weights_path) != meta.get("sha256"):
        raise PixelforgeError(f"{weights_path}: does not match last.json (SHA-256 differs); cannot resume safely")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise PixelforgeError(f"{weights_path}: cannot read checkpoint ({exc})") from None
    return tensors, meta


def restore_optimizer(optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
