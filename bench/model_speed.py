"""Training-step throughput (forward + backward + SGD step) of the zoo's fmnist_baseline, model only.

Synthetic 28x28x1 batches (the data pipeline is the trainer's bench, bench/train_speed), 2 threads.
Variants run interleaved, one step each in turn, so load from other processes hits them alike; each
reports images/s from its median step time and from its fastest step (the figure on an idle machine).

    flock /tmp/pixelforge-heavy.lock .venv/bin/python -m bench.model_speed [--steps 200]

Writes bench/results/model_speed.json and bench/results/model_speed.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pixelforge.models import build_model
from pixelforge.models.native import train_step

ONE_CALL_STEP = train_step.run

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "plain": "torch.nn.Sequential written from the Keras definition (conv-relu-pool, NCHW)",
    "zoo_contiguous": "the zoo model converted to contiguous (NCHW) weights, NCHW input (C kernel included)",
    "zoo_torch_ops": "the zoo model as built (channels-last weights), NHWC batch viewed as NCHW, torch's conv/pool ops",
    "zoo": "as zoo_torch_ops with conv-pool-ReLU as the C kernel (models/native), autograd for the rest",
    "zoo_gradients_by_kernel": "as zoo with the hand-written backward pass, kernel by kernel (torch ops between C calls)",
    "zoo_gradients": "as zoo_gradients_by_kernel as one C call per step (models/native/train_step; what the trainer runs)",
    "zoo_gradients_bf16": "as zoo_gradients with the dense layer's products on bfloat16 inputs (--precision bf16)",
    "zoo_bf16": "as zoo, under torch.autocast('cpu', bfloat16)",
    "zoo_compile": "as zoo, through torch.compile(model)",
}


def plain_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(5408, 100), nn.ReLU(), nn.Linear(100, 10),
    )


def prepare(variant: str, batch: int):
    """A step function for ``variant`` and the seconds its first three steps took (compilation included)."""
    torch.manual_seed(0)
    model = plain_model() if variant == "plain" else build_model("fmnist_baseline", (1, 28, 28), 10)
    x = torch.rand(batch, 28, 28, 1)  # NHWC, as decoded images arrive
    if variant in ("plain", "zoo_contiguous"):
        model, x = model.to(memory_format=torch.contiguous_format), x.permute(0, 3, 1, 2).contiguous()
    else:
        x = x.permute(0, 3, 1, 2)
    y = torch.randint(0, 10, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=variant.startswith("zoo"))
    forward = torch.compile(model) if variant == "zoo_compile" else model
    bf16 = variant == "zoo_bf16"

    if variant == "zoo_torch_ops":
        def forward(batch):
            return model.classifier(model.features(batch))

    def step():
        if variant.startswith("zoo_gradients"):
            # the kernel-by-kernel path is what train_step() runs where the one-call step is unavailable
            train_step.run = (lambda *args: None) if variant == "zoo_gradients_by_kernel" else ONE_CALL_STEP
            model.train_step(x, y, bf16=variant.endswith("bf16"))
            optimizer.step()
            return
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    for _ in range(3):
        step()
    return step, time.perf_counter() - start


def measure(variants: list[str], batch: int, steps: int) -> list[dict]:
    prepared = {v: prepare(v, batch) for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(steps):
        for v in variants:
            start = time.perf_counter()
            prepared[v][0]()
            times[v].append(time.perf_counter() - start)
    rows = []
    for v in variants:
        ordered = sorted(times[v])
        rows.append({"variant": v, "batch": batch, "images_per_s_median": round(batch / ordered[len(ordered) // 2]),
                     "images_per_s_best": round(batch / ordered[0]), "first_3_steps_s": round(prepared[v][1], 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200, help="timed steps per variant and batch size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    variants = args.variants.split(",")
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    rows = []
    for batch in (32, 256):
        rows += measure(variants, batch, args.steps)
        print(json.dumps(rows[-len(variants):]), flush=True)
    meta = {"model": "fmnist_baseline", "step": "forward + cross-entropy + backward + SGD(lr 0.01, momentum 0.9)",
            "variants": VARIANTS, "torch": torch.__version__, "threads": args.threads,
            "machine": platform.machine(), "steps": args.steps}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "model_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    plain = {r["batch"]: r["images_per_s_median"] for r in rows if r["variant"] == "plain"}
    lines = ["| variant | batch | images/s (median step) | vs plain | images/s (fastest step) | first 3 steps (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['images_per_s_median'] / plain[r['batch']]:.2f}x" if plain.get(r["batch"]) else ""
        lines.append(f"| {r['variant']} | {r['batch']} | {r['images_per_s_median']:,} | {ratio} | "
                     f"{r['images_per_s_best']:,} | {r['first_3_steps_s']} |")
    (RESULTS / "model_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
