"""The Fashion-MNIST baseline's whole training step (forward, loss, gradients) in one C call; see train_step.c.

``run`` returns None where the step cannot run here (no compiler, or no sgemm in torch's libraries);
the caller then runs the same arithmetic kernel by kernel.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import torch

from pixelforge.models import native
from pixelforge.models.native import softmax_head

_INT = ctypes.c_int
# data pointers go in as plain addresses (tensor.data_ptr()): building 21 typed ctypes pointers per step
# cost ~7% of a batch-32 step
native.declare("train_step", {
    "train_step": ([ctypes.c_void_p] * 22 + [_INT] * 8, ctypes.c_double),
    "train_step_scratch": ([_INT] * 4, ctypes.c_long),
})


@functools.lru_cache(maxsize=1)
def sgemm_pointer() -> int | None:
    """The address of the BLAS ``sgemm_`` that torch itself uses (MKL in the x86 CPU wheels), or None."""
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.cast(ctypes.CDLL(str(library)).sgemm_, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


def run(x_nhwc: torch.Tensor, kernel: torch.Tensor, conv_bias: torch.Tensor, hidden: torch.nn.Linear,
        output: torch.nn.Linear, labels: torch.Tensor, grads: list[torch.Tensor]
        ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One step for x (B, H, W, C) and kernel (3, 3, C, F) (contiguous float32), the hidden and output
    layers, and class-index ``labels``: writes the gradients of the mean cross-entropy into ``grads``
    (conv weight (F, C, 3, 3), conv bias, hidden weight and bias, output weight and bias, all contiguous)
    and returns (loss, logits); None where the step is unavailable."""
    lib = native.load("train_step")
    blas = sgemm_pointer()
    tensors = (x_nhwc, kernel, conv_bias, hidden.weight, hidden.bias, output.weight, output.bias, *grads)
    if lib is None or blas is None or not all(t.is_contiguous() and t.dtype == torch.float32 for t in tensors):
        return None
    b, h, w, c = x_nhwc.shape
    f, n, m = kernel.shape[3], hidden.weight.shape[0], output.weight.shape[0]
    labels = softmax_head.class_indices(labels, b)
    k = hidden.weight.shape[1]
    if k != (h - 2) // 2 * ((w - 2) // 2) * f:
        return None
    threads = torch.get_num_threads()
    pooled, d_pooled = torch.empty((b, k)), torch.empty((b, k))
    window = torch.empty((b, k), dtype=torch.uint8)
    hid, d_hid, logits = torch.empty((b, n)), torch.empty((b, n)), torch.empty((b, m))
    scratch = torch.empty(threads * lib.train_step_scratch(c, f, n, m))
    d_kernel = torch.empty_like(kernel)
    buffers = (x_nhwc, kernel, conv_bias, hidden.weight, hidden.bias, output.weight, output.bias, labels, pooled,
               window, hid, d_hid, d_pooled, scratch, logits, d_kernel, *grads[1:])
    loss = lib.train_step(blas, *(t.data_ptr() for t in buffers), b, h, w, c, f, n, m, threads)
    softmax_head.check_status(loss, m, "the training step")
    grads[0].copy_(d_kernel.permute(3, 2, 0, 1))
    return torch.tensor(loss, dtype=torch.float32), logits
