"""Output layer + softmax cross-entropy, forward and backward in one C call (see softmax_head.c).

``head_gradients`` returns None where the C library cannot be built; the caller then runs torch's ops.
"""

from __future__ import annotations

import ctypes

import torch

from pixelforge.models import native

native.declare("softmax_head", {
    "softmax_cross_entropy_head": ([native.FLOAT_P] * 3 + [native.INT64_P] + [native.FLOAT_P] * 5
                                   + [ctypes.c_long, ctypes.c_int, ctypes.c_int, ctypes.c_long], ctypes.c_double),
})
_ptr = native.pointer


def head_gradients(hid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, labels: torch.Tensor,
                   dw: torch.Tensor, db: torch.Tensor, dbh: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """For ``logits = hid @ weight.T + bias`` and the mean cross-entropy against ``labels``: writes the
    output layer's gradients into ``dw``/``db`` and the previous layer's bias gradient into ``dbh``; returns
    (loss, logits, d_hid), d_hid being zero where ``hid`` (a ReLU output) is 0. All float32 contiguous
    except labels (int64). None where the C library is unavailable."""
    lib = native.load("softmax_head")
    if lib is None:
        return None
    n, h = hid.shape
    k = weight.shape[0]
    labels = class_indices(labels, n)
    logits = torch.empty((n, k), dtype=torch.float32)
    d_hid = torch.empty((n, h), dtype=torch.float32)
    loss = lib.softmax_cross_entropy_head(
        _ptr(hid), _ptr(weight), _ptr(bias), _ptr(labels, native.INT64_P), _ptr(logits), _ptr(dw), _ptr(db),
        _ptr(d_hid), _ptr(dbh), n, h, k, n,
    )
    check_status(loss, k, "softmax head")
    return torch.tensor(loss, dtype=torch.float32), logits, d_hid


def class_indices(labels: torch.Tensor, n: int) -> torch.Tensor:
    """``labels`` as the contiguous int64 the C head reads; ValueError unless they are ``n`` class indices."""
    if labels.shape != (n,) or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be {n} class indices, got shape {tuple(labels.shape)} {labels.dtype}")
    return labels.to(torch.int64).contiguous()


def check_status(loss: float, classes: int, what: str) -> None:
    """Raise for the C head's error returns (also passed on by train_step): -1 bad label, -2 no memory."""
    if loss == -1.0:
        raise ValueError(f"labels must be in 0..{classes - 1}")
    if loss == -2.0:
        raise MemoryError(f"{what} could not allocate its buffers")
