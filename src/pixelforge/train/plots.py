"""PNG figures for training reports: learning curves, fold box plot, confusion matrix, LR range test,
and a montage of images with captions. matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.train.files import write_with


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    plt = _pyplot()
    try:
        return write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_curves(histories: list[dict], path, title: str = "learning curves", labels: list[str] | None = None) -> Path:
    """Loss (top) and accuracy (bottom), train solid and validation dashed, one colour per history."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for i, hist in enumerate(histories):
        colour = f"C{i % 10}"
        name = labels[i] if labels else ""
        epochs = np.arange(1, len(hist.get("loss", [])) + 1)
        for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
            if hist.get(key):
                ax.plot(epochs, hist[key], color=colour, label=f"{name} train".strip())
            if hist.get(f"val_{key}"):
                ax.plot(epochs, hist[f"val_{key}"], color=colour, linestyle="--", label=f"{name} validation".strip())
    ax_loss.set_ylabel("cross-entropy loss")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_xlabel("epoch")
    ax_loss.set_title(title)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if len(histories) <= 5:
        ax_loss.legend(fontsize=8)
    return _save(fig, path)


def plot_box(values: list[float], path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 5))
    ax.boxplot(values, showmeans=True)
    ax.scatter(np.ones(len(values)), values, s=12, color="C1", zorder=3)
    ax.set_xticks([1], ["folds"])
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, classes: list[str], path) -> Path:
    plt = _pyplot()
    k = len(classes)
    size = min(4 + 0.5 * k, 16)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=90 if k > 6 else 45, fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        peak = matrix.max() or 1
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > peak / 2 else "black")
    ax.set_title("confusion matrix")
    return _save(fig, path)


def plot_lr_find(lrs: list[float], losses: list[float], suggested: float | None, path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    if suggested:
        ax.axvline(suggested, color="C3", linestyle="--", label=f"suggested {suggested:.2g}")
        ax.legend()
    ax.set_title("learning-rate range test")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_montage(images: list[np.ndarray], captions: list[str], path, columns: int = 6, title: str = "") -> Path:
    """A grid of images (HWC uint8, gray or RGB) with a caption under each."""
    plt = _pyplot()
    n = max(len(images), 1)
    columns = min(columns, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, caption in zip(axes.ravel(), images, captions, strict=False):
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255 if img.dtype == np.uint8 else None)
        ax.set_title(caption, fontsize=7)
    if not images:
        axes[0, 0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
