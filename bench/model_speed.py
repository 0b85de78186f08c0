"""Training-step throughput (forward + backward + SGD step, images/s) of the zoo's fmnist_baseline.

Compares, in one run, memory formats and torch.compile so the trainer can pick the fastest: synthetic
28x28x1 batches (no data pipeline: this isolates the model), 2 threads, best of several timed rounds.

    flock /tmp/pixelforge-heavy.lock python -m bench.model_speed [--quick]

Writes bench/results/model_speed.json and bench/results/model_speed.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from pixelforge.models import build_model

RESULTS = Path(__file__).parent / "results"


VARIANTS = {
    "plain": "a plain torch.nn.Sequential in Keras' order (conv-relu-pool), NCHW, eager",
    "eager": "the zoo model (pool before ReLU), NCHW, eager",
    "eager_channels_last": "the zoo model, channels_last, eager",
    "compile_channels_last": "the zoo model, channels_last, torch.compile(model)",
    "compile_step_channels_last": "the zoo model, channels_last, torch.compile of forward+backward+SGD step",
    "bf16_channels_last": "the zoo model, channels_last, eager, CPU autocast bfloat16",
}


def plain_model() -> nn.Module:
    """What one writes by hand from the Keras definition: the eager-torch peer."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(5408, 100), nn.ReLU(), nn.Linear(100, 10),
    )


def make_step(model, variant: str):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    forward = torch.compile(model) if variant.startswith("compile_channels") else model
    bf16 = variant.startswith("bf16")

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return torch.compile(step) if variant.startswith("compile_step") else step


def prepare(variant: str, batch: int):
    """Model, data and a step function for one variant; the first three steps (compile included) timed."""
    torch.manual_seed(0)
    channels_last = "channels_last" in variant
    model = plain_model() if variant == "plain" else build_model("fmnist_baseline", (1, 28, 28), 10)
    model.train()
    x = torch.rand(batch, 1, 28, 28)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    step = make_step(model, variant)
    start = time.perf_counter()
    for _ in range(3):
        step(x, y)
    return step, x, y, time.perf_counter() - start


def images_per_second(step, x, y, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(x, y)
        n += 1
    return n * len(x) / (time.perf_counter() - start)


def measure_all(variants: list[str], batch: int, seconds: float, rounds: int) -> list[dict]:
    """Rounds interleave the variants so that load from other processes hits them alike; best round kept."""
    prepared = {v: prepare(v, batch) for v in variants}
    best = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for v in variants:
            step, x, y, _ = prepared[v]
            best[v] = max(best[v], images_per_second(step, x, y, seconds))
    return [{"variant": v, "batch": batch, "images_per_s": round(best[v]), "warmup_s": round(prepared[v][3], 2)}
            for v in variants]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short rounds (smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds, rounds = (0.5, 2) if args.quick else (1.0, 5)
    variants = args.variants.split(",")
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant}; choose from {', '.join(VARIANTS)}")
    rows = []
    for batch in (32, 256):
        rows += measure_all(variants, batch, seconds, rounds)
        print(rows[-len(variants):], flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {"variants": VARIANTS, "torch": torch.__version__, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
            "model": "fmnist_baseline", "step": "forward + cross-entropy + backward + SGD(momentum 0.9)"}
    (RESULTS / "model_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    plain = {r["batch"]: r["images_per_s"] for r in rows if r["variant"] == "plain"}
    lines = ["| variant | batch | images/s | vs plain | first 3 steps (s) |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['images_per_s'] / plain[r['batch']]:.2f}x" if plain.get(r["batch"]) else ""
        lines.append(f"| {r['variant']} | {r['batch']} | {r['images_per_s']:,} | {ratio} | {r['warmup_s']} |")
    (RESULTS / "model_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
