"""The one-call training step (models/native/train_step.c) against autograd, across thread counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixelforge.models import build_model, native
from pixelforge.models.native import train_step

needs_step = pytest.mark.skipif(
    native.load("train_step") is None or train_step.sgemm_pointer() is None,
    reason=f"one-call step unavailable: {native.why_unavailable('train_step') or 'no sgemm in torch'}",
)


def autograd_gradients(model, x, y):
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@needs_step
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("batch", "shape", "classes", "filters", "units"), [
    (64, (1, 28, 28), 10, 32, 100),  # the Fashion-MNIST baseline
    (5, (3, 21, 18), 7, 16, 24),     # colour (the per-cell conv backward), odd sizes
    (2, (2, 9, 9), 3, 5, 6),         # fewer rows than threads on 3; 5 filters: the scalar kernel path
    (1, (1, 28, 28), 10, 32, 100),
])
def test_one_call_step_matches_autograd(monkeypatch, threads, batch, shape, classes, filters, units):
    calls = []
    real = train_step.run
    monkeypatch.setattr(train_step, "run", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(batch)
    model = build_model("fmnist_baseline", shape, classes, filters=filters, units=units)
    x = torch.rand(batch, *shape)
    y = torch.randint(0, classes, (batch,))
    want_loss, want = autograd_gradients(model, x, y)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        loss, logits = model.train_step(x, y)
    finally:
        torch.set_num_threads(before)
    assert calls and logits.shape == (batch, classes)
    torch.testing.assert_close(loss, want_loss)
    torch.testing.assert_close(logits, model(x).detach(), rtol=1e-5, atol=1e-5)
    for got, expected in zip([p.grad for p in model.parameters()], want, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@needs_step
def test_same_thread_count_gives_the_same_bits():
    torch.manual_seed(0)
    model = build_model("fmnist_baseline", (1, 28, 28), 10)
    x, y = torch.rand(48, 1, 28, 28), torch.randint(0, 10, (48,))
    runs = []
    for _ in range(2):
        loss, logits = model.train_step(x, y)
        runs.append([loss, logits, *(p.grad.clone() for p in model.parameters())])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


@needs_step
def test_bad_labels_give_a_clear_error_and_leave_the_weights_alone():
    model = build_model("fmnist_baseline", (1, 28, 28), 10)
    weights = [p.detach().clone() for p in model.parameters()]
    x = torch.rand(8, 1, 28, 28)
    with pytest.raises(ValueError, match="labels must be in 0..9"):
        model.train_step(x, torch.tensor([0, 1, 2, 3, 4, 5, 6, 10]))
    with pytest.raises(ValueError, match="labels must be in 0..9"):
        model.train_step(x, torch.tensor([0, 1, 2, 3, -1, 5, 6, 7]))
    for bad in (torch.zeros(7, dtype=torch.int64), torch.zeros(8), torch.zeros(8, 10, dtype=torch.int64)):
        with pytest.raises(ValueError, match="class indices"):
            model.train_step(x, bad)
    for before, p in zip(weights, model.parameters(), strict=True):
        assert torch.equal(before, p)
    grad = model.classifier[0].weight.grad.clone()
    with pytest.raises(ValueError, match="labels must be in 0..9"):
        model.train_step(x, torch.tensor([0, 1, 2, 3, 4, 5, 6, 10]))
    assert torch.equal(grad, model.classifier[0].weight.grad)  # the big gradient is not half-written


def test_without_sgemm_the_step_steps_aside(monkeypatch):
    monkeypatch.setattr(train_step, "sgemm_pointer", lambda: None)
    model = build_model("fmnist_baseline", (1, 28, 28), 10)
    x = torch.rand(4, 1, 28, 28).permute(0, 2, 3, 1).contiguous()
    grads = [torch.empty_like(p) for p in model.parameters()]
    kernel = model.features[0].weight.detach().permute(2, 3, 1, 0).contiguous()
    assert train_step.run(x, kernel, model.features[0].bias.detach(), model.classifier[0], model.classifier[2],
                          torch.zeros(4, dtype=torch.int64), grads) is None


@needs_step
def test_an_included_kernel_is_part_of_the_build_hash(tmp_path, monkeypatch):
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    (source_dir / "inner.c").write_text("int inner(void) { return 1; }\n")
    (source_dir / "outer.c").write_text('#include "inner.c"\nint outer(void) { return inner(); }\n')
    first = native._source_text(source_dir / "outer.c")
    (source_dir / "inner.c").write_text("int inner(void) { return 2; }\n")
    assert native._source_text(source_dir / "outer.c") != first


@needs_step
def test_a_nan_weight_gives_a_nan_loss_as_autograd_does():
    model = build_model("fmnist_baseline", (1, 28, 28), 10)
    with torch.no_grad():
        model.features[0].weight[0, 0, 1, 1] = float("nan")
    loss, logits = model.train_step(torch.rand(4, 1, 28, 28), torch.arange(4))
    assert torch.isnan(loss) and torch.isnan(logits).all()
