"""The Fashion-MNIST baseline: Conv 32 3x3 ReLU → MaxPool 2x2 → Dense 100 ReLU → Dense classes.

Keras equivalent (the baseline protocol; SGD lr 0.01 momentum 0.9)::

    Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_uniform"); MaxPooling2D((2, 2)); Flatten()
    Dense(100, activation="relu", kernel_initializer="he_uniform"); Dense(10, activation="softmax")

The output layer keeps Keras' default glorot_uniform; ``kernel_initializer`` sets the hidden layers.
ReLU runs after the pool: max and ReLU commute (ReLU is monotone), so outputs and gradients are the
same as Keras' conv-relu-pool, with a quarter of the activation work (this model is benchmarked).
Conv → pool → ReLU runs as one C kernel (``models/native``) where a compiler is
available: the full-size convolution output and its gradient are never materialized. ``train_step``
is the whole training step's forward and backward written out by hand (no autograd graph): at
batch 32 the graph's bookkeeping costs about as much as the arithmetic. In float32 it is one C call
(``native/train_step.c``: each thread takes its share of the batch through every stage); where that
is unavailable, and for bf16, the same arithmetic runs kernel by kernel with torch ops between.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelforge.models.base import Flatten, ZooModel, conv, dense, positive_int
from pixelforge.models.geometry import require_size
from pixelforge.models.native import conv_pool, softmax_head
from pixelforge.models.native import train_step as one_call_step
from pixelforge.models.registry import register

OPS = [(3, 1, 0), (2, 2, 0)]


class FashionBaseline(ZooModel):
    def __init__(self, input_shape, num_classes, filters, units, kernel_initializer, l1, l2):
        super().__init__(kernel_initializer, l1, l2)
        out_h, out_w = require_size("fmnist_baseline", input_shape, OPS)
        init = self.kernel_initializer
        self.features = nn.Sequential(
            conv(input_shape[0], filters, 3, init), nn.MaxPool2d(2), nn.ReLU(inplace=True), Flatten()
        )
        self.classifier = nn.Sequential(
            dense(filters * out_h * out_w, units, init), nn.ReLU(inplace=True),
            dense(units, num_classes, "glorot_uniform"),
        )

    def forward(self, x):
        return self.classifier(self.features[3](conv_pool.run_block(self.features[:3], x)))

    def train_step(self, x: torch.Tensor, labels: torch.Tensor, bf16: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Mean cross-entropy loss and logits for a batch, with every parameter's ``.grad`` set — the
        same numbers as ``F.cross_entropy(self(x), labels).backward()`` up to float rounding.

        ``bf16``: the three products of the hidden dense layer (forward, its weight gradient, the gradient
        sent back to the convolution) take bfloat16 inputs, as under autocast (2-2.7x faster on CPUs with
        AVX-512 BF16); the convolution, the output layer, the loss and every stored gradient stay float32.

        Returns None (and touches nothing) where this pass does not apply: no C kernel, an input that
        needs its own gradient, L1/L2 penalties (their gradient is autograd's job), or not float32 CPU.
        """
        conv, hidden, output = self.features[0], self.classifier[0], self.classifier[2]
        if self.l1 or self.l2 or not conv_pool.applies(x, conv.weight, conv.bias):
            return None
        with torch.no_grad():
            n = len(x)
            x_nhwc = x.permute(0, 2, 3, 1).contiguous()  # free for channels-last batches
            kernel = conv.weight.permute(2, 3, 1, 0).contiguous()  # (3, 3, C, F): the C kernel's layout
            bias = conv.bias.contiguous()
            grads = [self._grad_buffer(p) for p in (conv.weight, conv.bias, hidden.weight, hidden.bias,
                                                     output.weight, output.bias)]
            if not bf16:
                done = one_call_step.run(x_nhwc, kernel, bias, hidden, output, labels, grads)
                if done is not None:
                    return done
            pooled, window = conv_pool.forward_nhwc(x_nhwc, kernel, bias)
            flat = pooled.view(n, -1)  # NHWC order: Keras' Flatten
            low = torch.Tensor.bfloat16 if bf16 else torch.Tensor.contiguous  # the dense products' input type
            flat_low, weight_low = low(flat), low(hidden.weight)
            hid = torch.addmm(low(hidden.bias), flat_low, weight_low.t()).float().relu_()
            head = softmax_head.head_gradients(hid, output.weight.contiguous(), output.bias.contiguous(), labels,
                                               grads[4], grads[5], grads[3])
            loss, logits, d_hid = head if head is not None else self._head(hid, output, labels, grads)
            d_hid_low = low(d_hid)
            if bf16:
                grads[2].copy_(torch.mm(d_hid_low.t(), flat_low))
            else:
                torch.mm(d_hid.t(), flat, out=grads[2])
            d_pooled = torch.mm(d_hid_low, weight_low).float().view(pooled.shape)
            d_kernel = torch.empty_like(kernel)
            conv_pool.weight_gradients_nhwc(x_nhwc, d_pooled, window, d_kernel, grads[1])
            grads[0].copy_(d_kernel.permute(3, 2, 0, 1))
        return loss, logits

    @staticmethod
    def _head(hid, output, labels, grads):
        """The output layer and cross-entropy with torch's ops (what softmax_head does in one C call):
        (loss, logits, d_hid); writes the output layer's and the hidden bias's gradients into ``grads``."""
        n = len(hid)
        logits = torch.addmm(output.bias, hid, output.weight.t())
        # cross-entropy: d loss / d logits = (softmax - one_hot) / n
        log_probs = torch.log_softmax(logits, dim=1)
        rows = torch.arange(n)
        loss = log_probs[rows, labels].mean().neg()
        d_logits = log_probs.exp_()
        d_logits[rows, labels] -= 1.0
        d_logits.div_(n)
        torch.mm(d_logits.t(), hid, out=grads[4])
        torch.sum(d_logits, dim=0, out=grads[5])
        d_hid = torch.mm(d_logits, output.weight).mul_(hid > 0)
        torch.sum(d_hid, dim=0, out=grads[3])
        return loss, logits, d_hid

    @staticmethod
    def _grad_buffer(param: nn.Parameter) -> torch.Tensor:
        """``param.grad``, allocated once and then overwritten each step."""
        if param.grad is None or param.grad.shape != param.shape or not param.grad.is_contiguous():
            param.grad = torch.empty_like(param, memory_format=torch.contiguous_format)
        return param.grad


@register("fmnist_baseline", "Fashion-MNIST baseline: Conv 32 3x3 → MaxPool → Dense 100 → Dense (he_uniform)",
          optimizer="sgd", optimizer_options={"lr": 0.01, "momentum": 0.9})
def build(input_shape, num_classes, *, filters=32, units=100, kernel_initializer="he_uniform", l1=0.0, l2=0.0):
    filters, units = positive_int(filters, "filters"), positive_int(units, "units")
    model = FashionBaseline(input_shape, num_classes, filters, units, kernel_initializer, l1, l2)
    model.resolved_params = {"filters": filters, "units": units}
    return model
