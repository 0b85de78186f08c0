"""The fused conv 3x3 → max-pool 2x2 → ReLU kernel against torch's own ops, and its fallbacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from pixelforge.models import build_model, native
from pixelforge.models.native.conv_pool import available, fused_conv_pool_relu

needs_kernel = pytest.mark.skipif(not available(), reason=f"kernel not built: {native.why_unavailable('conv_pool')}")


def reference(x, weight, bias):
    return F.relu(F.max_pool2d(F.conv2d(x, weight, bias), 2))


@needs_kernel
@pytest.mark.parametrize(("batch", "channels", "height", "width", "filters"), [
    (5, 1, 28, 28, 32),   # the Fashion-MNIST baseline
    (3, 3, 33, 31, 16),   # colour, odd sizes (the pool floors)
    (4, 2, 9, 8, 7),      # a width that is not a multiple of 16: the scalar path
    (2, 1, 4, 4, 64),     # the smallest input
    (3, 1, 12, 12, 48),   # a multiple of 16 without its own specialization
])
def test_values_and_gradients_match_torch(batch, channels, height, width, filters):
    gen = torch.Generator().manual_seed(batch * 100 + filters)
    x = torch.randn(batch, channels, height, width, generator=gen)
    weight = torch.randn(filters, channels, 3, 3, generator=gen, requires_grad=True)
    bias = torch.randn(filters, generator=gen, requires_grad=True)
    expected = reference(x, weight, bias)
    grad = torch.randn(expected.shape, generator=gen)
    dw, db = torch.autograd.grad(expected, (weight, bias), grad)

    out = fused_conv_pool_relu(x, weight, bias)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    dw2, db2 = torch.autograd.grad(out, (weight, bias), grad)
    torch.testing.assert_close(dw2, dw, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(db2, db, rtol=1e-4, atol=1e-4)


@needs_kernel
def test_ties_go_to_the_first_window_position_like_torch():
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 1:5, 1:5] = 1.0  # a flat patch: all four conv outputs of some windows are equal
    weight = torch.ones(2, 1, 3, 3, requires_grad=True)
    bias = torch.tensor([0.5, -20.0], requires_grad=True)  # second filter: all outputs clipped by ReLU
    grad = torch.arange(8.0).reshape(1, 2, 2, 2)
    expected = torch.autograd.grad(reference(x, weight, bias), (weight, bias), grad)
    got = torch.autograd.grad(fused_conv_pool_relu(x, weight, bias), (weight, bias), grad)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    assert got[1][1] == 0  # nothing flows back through outputs ReLU zeroed


@needs_kernel
def test_threads_do_not_change_the_result():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(64, 1, 28, 28, generator=gen)
    weight = torch.randn(32, 1, 3, 3, generator=gen, requires_grad=True)
    bias = torch.randn(32, generator=gen, requires_grad=True)
    grad = torch.randn(64, 32, 13, 13, generator=gen)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            out = fused_conv_pool_relu(x, weight, bias)
            results.append((out, *torch.autograd.grad(out, (weight, bias), grad)))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(results[0], results[2], strict=True):
        assert torch.equal(a, b)  # same thread count, same bits
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-3)  # summation order only


def test_falls_back_where_the_kernel_does_not_apply():
    x = torch.rand(2, 1, 10, 10)
    weight, bias = torch.randn(4, 1, 3, 3), torch.randn(4)
    assert fused_conv_pool_relu(x.double(), weight.double(), bias.double()) is None
    assert fused_conv_pool_relu(x.requires_grad_(), weight, bias) is None  # input gradient: torch's ops
    assert fused_conv_pool_relu(x.detach(), torch.randn(4, 1, 5, 5), bias) is None
    assert fused_conv_pool_relu(x.detach(), weight, None) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused_conv_pool_relu(x.detach(), weight, bias) is None


@needs_kernel
@pytest.mark.parametrize("training", [True, False])
def test_fmnist_baseline_gives_the_same_numbers_with_and_without_the_kernel(monkeypatch, training):
    from pixelforge.models.native import conv_pool

    torch.manual_seed(0)
    model = build_model("fmnist_baseline", (1, 28, 28), 10).train(training)
    x = torch.rand(16, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.arange(16) % 10

    def loss_and_grads():
        loss = F.cross_entropy(model(x), y)
        return loss, torch.autograd.grad(loss, list(model.parameters()))

    loss, fused = loss_and_grads()
    monkeypatch.setattr(conv_pool, "fused_conv_pool_relu", lambda *args: None)  # torch's ops
    loss_ref, plain = loss_and_grads()
    torch.testing.assert_close(loss, loss_ref)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@needs_kernel
def test_hooked_layers_run_one_by_one_so_the_summary_sees_them():
    from pixelforge.models.summary import summarize

    model = build_model("fmnist_baseline", (1, 28, 28), 10)
    shapes = {row["name"]: row["output_shape"] for row in summarize(model, (1, 28, 28))}
    assert shapes["features.0"] == [32, 26, 26] and shapes["features.1"] == [32, 13, 13]  # conv, then pool


def test_disabled_kernel_leaves_training_working(tmp_path):
    """PIXELFORGE_NATIVE=0 (or no compiler): the torch path trains the same model."""
    code = (
        "import numpy as np\n"
        "from pixelforge.models.native.conv_pool import available\n"
        "from pixelforge.train import Trainer\n"
        "assert not available()\n"
        "x = np.random.default_rng(0).integers(0, 255, (64, 28, 28, 1), dtype=np.uint8)\n"
        "h = Trainer('fmnist_baseline', seed=0, verbose=False).fit((x, np.arange(64) % 4), epochs=1)\n"
        "assert np.isfinite(h.history['loss'][0])\n"
    )
    env = {"PIXELFORGE_NATIVE": "0", "PIXELFORGE_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_broken_compiler_gives_none_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(native, "_LOADED", {})
    monkeypatch.setattr(native, "_ERRORS", {})
    assert native.load("conv_pool") is None
    assert "no-such-compiler" in native.why_unavailable("conv_pool")
    assert not list(tmp_path.rglob("*.so"))  # no half-built library left behind


@needs_kernel
def test_the_build_is_cached_by_source_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_LOADED", {})
    assert native.load("conv_pool") is not None
    built = list((tmp_path / "native").glob("conv_pool-*.so"))
    assert len(built) == 1 and not list((tmp_path / "native").glob(".*"))  # no temporary left
    stamp = built[0].stat().st_mtime_ns
    monkeypatch.setattr(native, "_LOADED", {})
    assert native.load("conv_pool") is not None
    assert built[0].stat().st_mtime_ns == stamp  # loaded again, not rebuilt


@needs_kernel
@pytest.mark.parametrize("path", ["one_call", "c_head", "torch_head"])
def test_hand_written_gradients_match_autograd(monkeypatch, path):
    from pixelforge.models.native import softmax_head, train_step

    if path != "one_call":  # kernel by kernel, as where torch ships no sgemm
        monkeypatch.setattr(train_step, "sgemm_pointer", lambda: None)
    if path == "torch_head":  # the softmax head's torch fallback
        monkeypatch.setattr(softmax_head, "head_gradients", lambda *args: None)
    torch.manual_seed(1)
    model = build_model("fmnist_baseline", (3, 20, 18), 7, filters=16, units=24)
    x = torch.rand(12, 3, 20, 18)
    y = torch.arange(12) % 7
    model.train()
    F.cross_entropy(model(x), y).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    loss, logits = model.train_step(x, y)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y))
    for got, want in zip([p.grad for p in model.parameters()], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert build_model("fmnist_baseline", (1, 28, 28), 10, l2=1e-4).train_step(torch.rand(2, 1, 28, 28),
                                                                          torch.zeros(2, dtype=torch.long)) is None


@needs_kernel
def test_bf16_hand_written_gradients_are_close_to_float32_and_stay_float32():
    torch.manual_seed(2)
    model = build_model("fmnist_baseline", (1, 28, 28), 10)
    x, y = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    model.train_step(x, y)
    exact = [p.grad.clone() for p in model.parameters()]
    loss, logits = model.train_step(x, y, bf16=True)
    assert logits.dtype == torch.float32 and torch.isfinite(loss)
    for got, want in zip([p.grad for p in model.parameters()], exact, strict=True):
        assert got.dtype == torch.float32
        cosine = F.cosine_similarity(got.flatten(), want.flatten(), dim=0)
        assert cosine > 0.999, cosine  # bfloat16 inputs: ~3 significant digits, same direction
    assert not torch.equal(model.classifier[0].weight.grad, exact[2])  # the products did run in bfloat16


@needs_kernel
def test_bf16_training_uses_the_hand_written_path(monkeypatch):
    import numpy as np

    from pixelforge.models.fmnist_baseline import FashionBaseline
    from pixelforge.train import Trainer

    calls = []
    original = FashionBaseline.train_step
    monkeypatch.setattr(FashionBaseline, "train_step",
                        lambda self, x, labels, bf16=False: calls.append(bf16) or original(self, x, labels, bf16))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8), np.arange(64) % 4
    history = Trainer("fmnist_baseline", seed=0, verbose=False, precision="bf16").fit((x, y), epochs=3, batch_size=16)
    assert calls and all(calls)
    assert history.history["loss"][-1] < history.history["loss"][0]


@needs_kernel
def test_trainer_with_hand_written_gradients_matches_autograd_training(monkeypatch):
    import numpy as np

    from pixelforge.models.fmnist_baseline import FashionBaseline
    from pixelforge.train import Trainer

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 28, 28, 1), dtype=np.uint8)
    y = np.arange(96) % 3

    def train():
        trainer = Trainer("fmnist_baseline", seed=4, verbose=False)
        history = trainer.fit((x, y), epochs=2, batch_size=16)
        return history.history["loss"], [p.detach().clone() for p in trainer.network.parameters()]

    fast_loss, fast_weights = train()
    monkeypatch.setattr(FashionBaseline, "train_step", lambda self, x, labels, bf16=False: None)  # autograd path
    slow_loss, slow_weights = train()
    np.testing.assert_allclose(fast_loss, slow_loss, rtol=1e-4)
    for a, b in zip(fast_weights, slow_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


@needs_kernel
def test_cnn_first_block_uses_the_kernel_with_the_same_training_gradients(monkeypatch):
    from pixelforge.models.native import conv_pool

    torch.manual_seed(2)
    model = build_model("cnn", (1, 28, 28), 10)
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    model.train()

    def grads():
        model.zero_grad()
        torch.manual_seed(5)  # the same dropout masks in both passes
        F.cross_entropy(model(x), y).backward()
        return [p.grad.clone() for p in model.parameters()]

    fused = grads()
    monkeypatch.setattr(conv_pool, "fused_conv_pool_relu", lambda *args: None)  # torch's ops
    plain = grads()
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@needs_kernel
@pytest.mark.parametrize("n,h,k", [(1, 3, 2), (32, 100, 10), (7, 24, 13)])
def test_softmax_head_matches_torch(n, h, k):
    from pixelforge.models.fmnist_baseline import FashionBaseline
    from pixelforge.models.native import softmax_head

    torch.manual_seed(n)
    hid = torch.randn(n, h).relu_()
    output = torch.nn.Linear(h, k)
    labels = torch.randint(0, k, (n,))
    want = [torch.empty(k, h), torch.empty(k), torch.empty(h)]
    ref_grads = [None, None, None, want[2], want[0], want[1]]
    with torch.no_grad():
        ref_loss, ref_logits, ref_d_hid = FashionBaseline._head(hid, output, labels, ref_grads)
    got = [torch.empty(k, h), torch.empty(k), torch.empty(h)]
    loss, logits, d_hid = softmax_head.head_gradients(hid, output.weight.detach(), output.bias.detach(), labels, *got)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(d_hid, ref_d_hid, rtol=1e-5, atol=1e-7)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    params = (output.weight.detach(), output.bias.detach())
    with pytest.raises(ValueError, match="labels must be in"):
        softmax_head.head_gradients(hid, *params, labels + k, *got)
    for bad in (labels.repeat(2), labels.float(), torch.nn.functional.one_hot(labels, k)):
        with pytest.raises(ValueError, match="class indices"):
            softmax_head.head_gradients(hid, *params, bad, *got)
