"""A Keras-like model summary (layer, output shape, parameters) and a layer diagram PNG.

Shapes come from forward hooks on one dummy image, so they are what the model really produces.
Activation layers (ReLU) fold into the row before them, as Keras writes ``Conv2D(..., activation="relu")``.
Non-trainable counts include batch-norm running statistics, as Keras counts moving mean/variance.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from pixelforge.errors import PixelforgeError

ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LeakyReLU)


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    return leaves or [(type(model).__name__.lower(), model)]


def _stored_values(module: nn.Module) -> int:
    """Float buffers (running statistics, knn's stored images): Keras' non-trainable weights."""
    return sum(b.numel() for b in module.buffers(recurse=False) if b.is_floating_point())


def summarize(model: nn.Module, input_shape) -> list[dict]:
    """One row per layer: name, layer type, output shape (without batch), trainable and other params."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3:
        raise PixelforgeError(f"input shape must be (channels, height, width); got {input_shape!r}")
    if getattr(model, "trainable_by_gradient", True) is False:
        return [_stored_model_row(model)]
    calls: list[tuple[str, nn.Module, tuple]] = []
    hooks = [
        module.register_forward_hook(lambda m, _inp, out, name=name: calls.append((name, m, tuple(out.shape[1:]))))
        for name, module in _leaf_modules(model)
    ]
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else "cpu"
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=device))
    except RuntimeError as exc:
        raise PixelforgeError(f"the model cannot run on input {shape}: {exc}") from None
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    rows: list[dict] = []
    for name, module, out_shape in calls:
        trainable = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
        frozen = sum(p.numel() for p in module.parameters(recurse=False) if not p.requires_grad)
        row = {"name": name, "layer": type(module).__name__, "output_shape": list(out_shape),
               "params": trainable + frozen + _stored_values(module), "trainable": trainable}
        if isinstance(module, ACTIVATIONS) and rows and rows[-1]["output_shape"] == row["output_shape"]:
            rows[-1]["layer"] += f"+{row['layer']}"
            continue
        rows.append(row)
    return rows


def _stored_model_row(model: nn.Module) -> dict:
    num_classes = model.config.get("num_classes") if getattr(model, "config", None) else None
    return {"name": type(model).__name__.lower(), "layer": type(model).__name__,
            "output_shape": [num_classes or getattr(model, "num_classes", 0)],
            "params": _stored_values(model), "trainable": 0}


def totals(rows: list[dict]) -> dict:
    total = sum(r["params"] for r in rows)
    trainable = sum(r["trainable"] for r in rows)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def format_summary(rows: list[dict], title: str = "") -> str:
    """Plain-text table like ``model.summary()`` in Keras."""
    lines = [f'Model: "{title}"'] if title else []
    labels = [f"{r['name']} ({r['layer']})" for r in rows]
    width = max([len(label) for label in labels] + [36]) + 2
    header = f"{'Layer (type)':<{width}}{'Output Shape':<22}{'Param #':>12}"
    rule = "=" * len(header)
    lines += [rule.replace("=", "_"), header, rule]
    for label, r in zip(labels, rows, strict=True):
        shape = "(None, " + ", ".join(str(v) for v in r["output_shape"]) + ")"
        lines.append(f"{label:<{width}}{shape:<22}{r['params']:>12,}")
    t = totals(rows)
    lines += [rule, f"Total params: {t['total']:,}", f"Trainable params: {t['trainable']:,}",
              f"Non-trainable params: {t['non_trainable']:,}", "_" * len(header)]
    return "\n".join(lines)


def draw_diagram(model: nn.Module, input_shape, path) -> Path:
    """Write a PNG with one box per layer (type, output shape, params), top to bottom; atomic write."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = summarize(model, input_shape)
    boxes = [{"layer": "Input", "output_shape": list(input_shape), "params": 0}, *rows]
    fig = Figure(figsize=(4.2, 0.62 * len(boxes) + 0.6))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(-len(boxes) + 0.4, 0.9)
    ax.axis("off")
    for i, box in enumerate(boxes):
        y = -i
        shape = "x".join(str(v) for v in box["output_shape"])
        text = f"{box['layer']}  →  {shape}" + (f"   ({box['params']:,} params)" if box["params"] else "")
        color = "#dbe9f6" if box["params"] else "#f2f2f2"
        ax.text(0.5, y, text, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.35", "facecolor": color, "edgecolor": "#4a6fa5"})
        if i:
            ax.annotate("", xy=(0.5, y + 0.28), xytext=(0.5, y + 0.72), arrowprops={"arrowstyle": "->"})
    title = (getattr(model, "config", None) or {}).get("name", type(model).__name__)
    ax.text(0.5, 0.45, f"{title}: {totals(rows)['total']:,} params", ha="center", fontsize=9, weight="bold")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format="png", dpi=110)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
