"""Fine-tuning and feature-extraction throughput on real photos: pixelforge vs the eager torch loop a
user would write, same machine, same run, same architecture.

    flock /tmp/pixelforge-heavy.lock python -m bench.transfer [--size 224] [--rounds 2] [--model resnet18]

Workload: clothing5's training photos (858 JPEGs, about 400x530 to 890x940) at ``--size`` px, RGB,
ImageNet mean/std, batch 32, SGD momentum 0.9.
Contenders:
  eager torch       a torch DataLoader (2 workers) over Pillow ``open/convert/resize`` + numpy
                    normalization, the model in fp32 NCHW; forward, cross-entropy, backward, step;
                    it decodes and resizes every photo every epoch
  eager torch bf16  the same loop under CPU bf16 autocast with channels_last (the best a user gets
                    by hand)
  pixelforge        ``Trainer.fit``, fp32 and bf16: a later epoch, served from the decoded uint8 cache
                    it keeps when the set fits in memory (normalization in the model's first op)
  … incl. decode    one whole ``fit`` of one epoch: model build, decoding every photo (loader workers,
                    JPEG draft decoding, area resize) and the epoch — the first-epoch cost
Features: ``forward_features`` of every photo under inference mode, same contenders.
Rounds interleave the contenders; the best round counts. Writes bench/results/transfer.json and .md.
torchvision is not used (its wheel here does not import): the eager loop runs pixelforge's ResNet-18,
which has torchvision's architecture and parameter names.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelforge.data.preprocess import Preprocess
from pixelforge.data.read import read_dataset
from pixelforge.models import build_model
from pixelforge.models.backbones import IMAGENET_MEAN, IMAGENET_STD
from pixelforge.train.features import Extractor, iterate_features
from pixelforge.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CLOTHING = ROOT.parent / "shared" / "datasets" / "clothing5"
RESULTS = ROOT / "bench" / "results"
BATCH = 32


class PillowPhotos(torch.utils.data.Dataset):
    """What a user writes without torchvision: Pillow decode + resize, numpy normalization."""

    def __init__(self, manifest, size: int):
        self.paths = [str(manifest.storage.local_path(loc)) for loc in manifest.locations]
        index = {name: i for i, name in enumerate(manifest.classes)}
        self.labels = [index[label] for label in manifest.labels]
        self.size = size
        self.mean = np.asarray(IMAGENET_MEAN, np.float32) * 255
        self.std = np.asarray(IMAGENET_STD, np.float32) * 255

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as img:
            array = np.asarray(img.convert("RGB").resize((self.size, self.size), Image.BILINEAR), np.float32)
        return torch.from_numpy(((array - self.mean) / self.std).transpose(2, 0, 1).copy()), self.labels[i]


def eager_epoch(manifest, model_name: str, size: int, bf16: bool) -> float:
    """Seconds for one training epoch of the plain torch loop (after one warm-up step)."""
    torch.manual_seed(0)
    model = build_model(model_name, (3, size, size), manifest.num_classes)
    model = model.to(memory_format=torch.channels_last if bf16 else torch.contiguous_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(PillowPhotos(manifest, size), batch_size=BATCH, shuffle=True,
                                         num_workers=2, persistent_workers=False)
    model.train()
    started = None
    for step, (x, y) in enumerate(loader):
        if step == 1:
            started = time.perf_counter()
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) * len(manifest) / (len(manifest) - BATCH)


def pixelforge_epoch(manifest, model_name: str, size: int, bf16: bool) -> float:
    """Seconds of pixelforge's second epoch (the first includes decoding into its cache)."""
    spec = Preprocess(size=size, channels=3, normalize="unit", standardize="channel",
                      mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    trainer = Trainer(model_name, spec, lr=0.01, momentum=0.9, optimizer="sgd", verbose=False,
                      precision="bf16" if bf16 else "fp32", threads=2)
    history = trainer.fit(manifest, epochs=2, batch_size=BATCH)
    return history.history["seconds"][-1]


def pixelforge_first_epoch(manifest, model_name: str, size: int, bf16: bool) -> float:
    """Seconds of a one-epoch ``fit`` from scratch, decoding included."""
    spec = Preprocess(size=size, channels=3, normalize="unit", standardize="channel",
                      mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    trainer = Trainer(model_name, spec, lr=0.01, momentum=0.9, optimizer="sgd", verbose=False,
                      precision="bf16" if bf16 else "fp32", threads=2)
    started = time.perf_counter()
    trainer.fit(manifest, epochs=1, batch_size=BATCH)
    return time.perf_counter() - started


def eager_features(manifest, model_name: str, size: int, bf16: bool) -> float:
    model = build_model(model_name, (3, size, size), manifest.num_classes).eval()
    loader = torch.utils.data.DataLoader(PillowPhotos(manifest, size), batch_size=64, num_workers=2)
    started = time.perf_counter()
    with torch.inference_mode():
        for x, _ in loader:
            if bf16:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model.forward_features(x)
    return time.perf_counter() - started


def pixelforge_features(manifest, model_name: str, size: int, bf16: bool) -> float:
    spec = Preprocess(size=size, channels=3, normalize="unit", standardize="channel",
                      mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))
    network = build_model(model_name, (3, size, size), manifest.num_classes).eval()
    extractor = Extractor(network, spec, model_name, None)
    started = time.perf_counter()
    for _ in iterate_features(manifest, extractor, batch_size=64, bf16=bf16):
        pass
    return time.perf_counter() - started


CONTENDERS = {
    "fine-tune": [("eager torch fp32", eager_epoch, False), ("eager torch bf16 channels_last", eager_epoch, True),
                  ("pixelforge fp32", pixelforge_epoch, False), ("pixelforge bf16", pixelforge_epoch, True),
                  ("pixelforge fp32 incl. decode", pixelforge_first_epoch, False),
                  ("pixelforge bf16 incl. decode", pixelforge_first_epoch, True)],
    "features": [("eager torch fp32", eager_features, False), ("eager torch bf16 channels_last", eager_features, True),
                 ("pixelforge fp32", pixelforge_features, False), ("pixelforge bf16", pixelforge_features, True)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="resnet18")
    args = parser.parse_args()
    torch.set_num_threads(2)
    manifest = read_dataset(CLOTHING).split("train")
    best: dict[tuple[str, str], float] = {}
    for round_ in range(args.rounds):
        for task, contenders in CONTENDERS.items():
            for name, run, bf16 in contenders:
                seconds = run(manifest, args.model, args.size, bf16)
                rate = len(manifest) / seconds
                best[task, name] = max(best.get((task, name), 0.0), rate)
                print(f"round {round_ + 1} {task:9s} {name:32s} {rate:8.1f} images/s", flush=True)
    rows = []
    for task, contenders in CONTENDERS.items():
        base = best[task, contenders[0][0]]
        for name, _, _ in contenders:
            rows.append({"task": task, "contender": name, "images_per_s": round(best[task, name], 1),
                         "vs_eager_fp32": round(best[task, name] / base, 2)})
    result = {"model": args.model, "size": args.size, "images": len(manifest), "batch": BATCH,
              "rounds": args.rounds, "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transfer.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Transfer learning speed: {args.model} on clothing5 at {args.size} px", "",
             f"{len(manifest)} training photos, batch {BATCH}, 2 threads, best of {args.rounds} interleaved rounds "
             "(`python -m bench.transfer`).", "",
             "| task | contender | images/s | vs eager torch fp32 |", "|---|---|---:|---:|"]
    lines += [f"| {r['task']} | {r['contender']} | {r['images_per_s']:,} | {r['vs_eager_fp32']}x |" for r in rows]
    (RESULTS / "transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
