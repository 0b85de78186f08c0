"""Training images/s of every zoo model on its natural data: pixelforge against eager torch and tf_keras.

    flock /tmp/pixelforge-heavy.lock .venv/bin/python -m bench.zoo_speed [--keras-python /tmp/tfvenv/bin/python]

One run, cases interleaved runner by runner (pixelforge, eager torch, tf_keras, then the next case; with
``--rounds`` > 1 the whole sweep repeats), so load from other processes hits every runner alike. Each
runner warms up on a few batches, then trains ``epochs`` timed epochs; its speed is that of its median
epoch (over all rounds). Every runner gets the same decoded uint8 images (real data from /tmp/ds or
the shared datasets: a seeded random subset of the training split), batch size and optimizer (the zoo
model's default), fp32, on ``--threads`` threads:

- pixelforge: ``Trainer(model).fit((x, y))`` on the uint8 array — its data pipeline included (seeded
  shuffle, batch gather, normalization in torch, running loss/accuracy); with 2 threads the trainer's
  thread tuner may run phases on 1 thread where that measures faster (as a user gets it);
- eager torch: the loop a user writes around the zoo model itself (``build_model``, same seed, so the
  very same architecture and initial weights) converted to torch's default contiguous (NCHW) layout,
  with pixelforge's C kernels off (``PIXELFORGE_NATIVE=0``): float32 tensors normalized up front,
  ``DataLoader(shuffle=True)``, torch.optim's SGD (or RMSprop with Keras' rho), ``loss.item()`` per
  step; in a fresh process (pixelforge's malloc tuning is process-wide);
- tf_keras: the same architecture in Keras (``bench/keras_train_peer.py``), in the interpreter given by
  ``--keras-python`` (a separate venv with tensorflow-cpu and tf-keras; skipped with a note when absent).

knn has no gradient steps: its row times ``predict`` of the held-out queries after ``fit`` (images/s of
queries), pixelforge's Trainer against the same search written in torch (``cdist`` + ``topk`` + vote).

Writes bench/results/zoo_speed.json and bench/results/zoo_speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
CACHE = Path("/tmp/ds")
RESULTS = ROOT / "bench" / "results"
PEER_SCRIPT = Path(__file__).with_name("keras_train_peer.py")
DEFAULT_KERAS_PYTHON = "/tmp/tfvenv/bin/python"

# (model, dataset, side in px, channels, training images, batch, timed epochs)
CASES = [
    ("fmnist_baseline", "fashion-mnist", 28, 1, 6144, 32, 3),
    ("dnn", "fashion-mnist", 28, 1, 6144, 32, 3),
    ("linear", "fashion-mnist", 28, 1, 6144, 32, 3),
    ("knn", "fashion-mnist", 28, 1, 6144, 1024, 3),
    ("shallownet", "mnist", 28, 1, 6144, 32, 3),
    ("lenet", "mnist", 28, 1, 4096, 32, 3),
    ("minivggnet", "cifar10", 32, 3, 2048, 64, 2),
    ("resnet", "cifar10", 32, 3, 2048, 64, 2),
    ("resnet", "clothing5", 64, 3, 512, 64, 2),
    ("resnet", "clothing5", 128, 3, 192, 64, 2),
]
KNN_QUERIES = 1024
BF16_MODELS = ("minivggnet", "resnet")  # compute-bound: also timed with --precision bf16 (opt-in)


def dataset_root(name: str) -> Path:
    """The dataset's folder: clothing5 is stored unpacked; the others are extracted once into /tmp/ds."""
    if (SHARED / name).is_dir():
        return SHARED / name
    target = CACHE / name
    if not (target / "train").is_dir():
        import fcntl

        CACHE.mkdir(parents=True, exist_ok=True)
        with open("/tmp/ds.lock", "w") as lock:  # other sessions extract into the same cache
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (target / "train").is_dir():
                with tarfile.open(SHARED / f"{name}.tar.gz") as tar:
                    tar.extractall(CACHE, filter="data")
    return target


def load_case(dataset: str, side: int, channels: int, images: int, extra: int = 0):
    """``images`` (+ ``extra`` held-out) training images, decoded to uint8 NHWC, a seeded random subset."""
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.data.read import read_dataset
    from pixelforge.train.data import prepare

    train = read_dataset(dataset_root(dataset)).split("train")
    pick = np.random.default_rng(0).permutation(len(train))[: images + extra]
    data, _ = prepare(train.subset(np.sort(pick)), Preprocess(size=side, channels=channels))
    order = np.random.default_rng(1).permutation(len(data))  # classes mixed before the train/query cut
    return data.x[order], data.y[order], len(data.classes)


def summary(n: int, epoch_seconds: list[float], **extra) -> dict:
    return {"images_per_s": n / float(np.median(epoch_seconds)), "epoch_seconds": epoch_seconds, **extra}


def warmup_rows(y, batch: int) -> np.ndarray:
    """About 2 batches of rows that include every class (so the warm-up fixes the class count)."""
    firsts = [int(np.flatnonzero(y == k)[0]) for k in np.unique(y)]
    return np.unique(np.concatenate([np.arange(min(batch * 2, len(y))), firsts]))


def optimizer_options(model: str) -> dict:
    from pixelforge.models import get_spec

    spec = get_spec(model)
    return {"name": spec.default_optimizer, **spec.optimizer_options}


def time_pixelforge(model: str, x, y, batch: int, epochs: int, precision: str = "fp32") -> dict:
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.train import Trainer

    trainer = Trainer(model, Preprocess(), seed=0, verbose=False, precision=precision)
    started = time.perf_counter()
    trainer.fit((x[warmup_rows(y, batch)], y[warmup_rows(y, batch)]), epochs=1, batch_size=batch)
    warmup = time.perf_counter() - started
    history = trainer.fit((x, y), epochs=epochs, batch_size=batch)
    return summary(len(x), history.history["seconds"][-epochs:], warmup_s=warmup,
                   parameters=sum(p.numel() for p in trainer.network.parameters()))


def time_pixelforge_knn(x, y, queries, threads: int, epochs: int) -> dict:
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.train import Trainer

    torch.set_num_threads(threads)
    trainer = Trainer("knn", Preprocess(), seed=0, verbose=False)
    started = time.perf_counter()
    trainer.fit((x, y), epochs=1)  # stores the images (and scores the training set, as fit reports accuracy)
    fit = time.perf_counter() - started
    trainer.predict(queries[:64])
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        trainer.predict(queries)
        seconds.append(time.perf_counter() - started)
    return summary(len(queries), seconds, fit_s=fit)


def time_eager_torch(model_name: str, x, y, classes: int, batch: int, threads: int, epochs: int) -> dict:
    """The user's loop around the zoo model; runs in a fresh process (see ``in_fresh_process``)."""
    os.environ["PIXELFORGE_NATIVE"] = "0"  # torch's own ops: no pixelforge C kernel in the peer
    import torch.nn.functional as F

    from pixelforge.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(model_name, (x.shape[3], x.shape[1], x.shape[2]), classes)
    model = model.to(memory_format=torch.contiguous_format)  # torch's default layout, as a user's model has
    options = optimizer_options(model_name)
    if options["name"] == "rmsprop":
        optimizer = torch.optim.RMSprop(model.parameters(), lr=options["lr"], alpha=0.9, eps=1e-7)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=options["lr"], momentum=options.get("momentum", 0.0),
                                    nesterov=bool(options.get("nesterov", False)))
    data = torch.utils.data.TensorDataset(
        torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255).contiguous(), torch.from_numpy(y)
    )
    model.train()

    def epoch(loader):
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()

    started = time.perf_counter()
    epoch(torch.utils.data.DataLoader(torch.utils.data.Subset(data, range(min(batch * 2, len(x)))), batch_size=batch))
    warmup = time.perf_counter() - started
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        epoch(torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True))
        seconds.append(time.perf_counter() - started)
    return summary(len(x), seconds, warmup_s=warmup)


def time_eager_torch_knn(x, y, queries, threads: int, epochs: int, k: int = 3) -> dict:
    torch.set_num_threads(threads)
    train = torch.from_numpy(x).flatten(1).float().div(255)
    labels = torch.from_numpy(y)
    classes = int(labels.max()) + 1

    def predict(q):
        q = torch.from_numpy(q).flatten(1).float().div(255)
        near = torch.cdist(q, train).topk(k, largest=False).indices
        return torch.nn.functional.one_hot(labels[near], classes).sum(1).float().div(k)

    predict(queries[:64])
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        predict(queries)
        seconds.append(time.perf_counter() - started)
    return summary(len(queries), seconds)


def in_fresh_process(func, *args):
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(func, args)


def time_keras(python: str, model: str, data_path: Path, n: int, batch: int, threads: int, epochs: int) -> dict:
    env = {**os.environ, "KERAS_FLAVOUR": "tf_keras", "CUDA_VISIBLE_DEVICES": ""}
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [python, str(PEER_SCRIPT), str(data_path), str(batch), str(threads), str(epochs), out.name, model,
                   json.dumps(optimizer_options(model))]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:300]}
        result = json.loads(Path(out.name).read_text())
        return summary(n, result.pop("epoch_seconds"), **result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/TF threads of every runner (on the shared 2-core machine, 2-thread peers "
                             "without pixelforge's thread tuner slow down 10x whenever another process runs)")
    parser.add_argument("--rounds", type=int, default=1, help="every runner runs this many times, interleaved")
    parser.add_argument("--models", default="", help="only these zoo models (comma-separated)")
    parser.add_argument("--keras-python", default=os.environ.get("PIXELFORGE_KERAS_PYTHON", DEFAULT_KERAS_PYTHON))
    parser.add_argument("--scale", type=float, default=1.0, help="scale every case's image count (a quick check)")
    parser.add_argument("--out", default="zoo_speed", help="result file stem under bench/results")
    parser.add_argument("--baseline", help="stem of an earlier run's json: its pixelforge speeds as a column")
    parser.add_argument("--render", action="store_true", help="only rewrite the markdown from --out's json")
    args = parser.parse_args()
    if args.render:
        done = json.loads((RESULTS / f"{args.out}.json").read_text())
        render(done["rows"], done["meta"], args.out, args.baseline)
        return
    torch.set_num_threads(args.threads)
    keras_python = args.keras_python if Path(args.keras_python).exists() else None
    notes = [] if keras_python else [f"tf_keras skipped: no interpreter at {args.keras_python} (use --keras-python)"]
    wanted = {m for m in args.models.split(",") if m}
    cases = [c for c in CASES if not wanted or c[0] in wanted]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        loaded = []
        for model, dataset, side, channels, images, batch, epochs in cases:
            extra = KNN_QUERIES if model == "knn" else 0
            images = max(batch, int(images * args.scale))
            x, y, classes = load_case(dataset, side, channels, images, extra)
            images = min(images, len(x) - extra) // batch * batch  # whole batches: no partial last step
            x, y, queries = x[:images], y[:images], x[images : images + extra]
            data_path = Path(tmp) / f"{len(loaded)}.npz"
            np.savez(data_path, x=x, y=y, classes=classes)
            loaded.append((model, dataset, side, batch, epochs, x, y, classes, queries, data_path))
        t = args.threads
        for _ in range(args.rounds):
            for model, dataset, side, batch, epochs, x, y, classes, queries, data_path in loaded:
                if model == "knn":
                    runs = {"pixelforge": (time_pixelforge_knn, x, y, queries, t, epochs),
                            "eager torch": (in_fresh_process, time_eager_torch_knn, x, y, queries, t, epochs)}
                else:
                    runs = {"pixelforge": (time_pixelforge, model, x, y, batch, epochs),
                            "eager torch": (in_fresh_process, time_eager_torch, model, x, y, classes, batch, t, epochs)}
                    if model in BF16_MODELS:
                        runs["pixelforge bf16"] = (time_pixelforge, model, x, y, batch, epochs, "bf16")
                    if keras_python:
                        runs["tf_keras"] = (time_keras, keras_python, model, data_path, len(x), batch, t, epochs)
                for runner, (func, *func_args) in runs.items():
                    result = func(*func_args)
                    rows.append({"model": model, "data": f"{dataset} {side}px", "images": len(x), "batch": batch,
                                 "runner": runner, "load_before": os.getloadavg()[0], **result})
                    print(json.dumps({k: v for k, v in rows[-1].items() if k != "epoch_seconds"}), flush=True)
    write_results(rows, notes, args)


def case_table(rows: list[dict]) -> dict[tuple, dict]:
    """(model, data) → images, batch, images/s per runner (median epoch over all rounds), errors."""
    cases: dict[tuple, dict] = {}
    for r in rows:
        case = cases.setdefault((r["model"], r["data"]), {"images": r["images"], "batch": r["batch"], "seconds": {}})
        if "epoch_seconds" in r:
            case["seconds"].setdefault(r["runner"], []).extend(r["epoch_seconds"])
        else:
            case.setdefault("errors", []).append(f"{r['model']} {r['data']} {r['runner']}: {r.get('error')}")
    for (model, _), case in cases.items():
        n = KNN_QUERIES if model == "knn" else case["images"]
        case["speed"] = {runner: n / float(np.median(s)) for runner, s in case["seconds"].items()}
    return cases


def write_results(rows: list[dict], notes: list[str], args) -> None:
    RESULTS.mkdir(exist_ok=True)
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
            "torch": torch.__version__, "rounds": args.rounds, "notes": notes}
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    render(rows, meta, args.out, args.baseline)


def render(rows: list[dict], meta: dict, out: str, baseline: str | None) -> None:
    """The markdown table; with ``baseline`` (the stem of an earlier run's json) a column of pixelforge's
    speed in that run and the change."""
    before = {}
    if baseline:
        old = json.loads((RESULTS / f"{baseline}.json").read_text())
        before = {key: case["speed"].get("pixelforge") for key, case in case_table(old["rows"]).items()}
    runners = ("pixelforge", "eager torch", "tf_keras")
    head = ("| model | data | images | batch | pixelforge | eager torch | tf_keras | vs torch | vs tf_keras "
            "| pixelforge bf16 (vs tf_keras) |")
    if before:
        head += f" pixelforge in {baseline} | change |"
    lines = [f"`python -m bench.zoo_speed` — {meta['threads']} thread(s), fp32, images/s of the median epoch "
             f"({meta['rounds']} round(s)); vs = pixelforge / peer; torch {meta['torch']}, {meta['cpus']} CPUs.", "",
             head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if before else "")]
    notes = list(meta.get("notes", []))
    for key, case in case_table(rows).items():
        speed = case["speed"]
        cells = [f"{speed[r]:,.0f}" if r in speed else "—" for r in runners]
        cells += [f"{speed['pixelforge'] / speed[r]:.2f}x" if "pixelforge" in speed and r in speed else "—"
                  for r in runners[1:]]
        bf16 = speed.get("pixelforge bf16")
        keras = f" ({bf16 / speed['tf_keras']:.2f}x)" if bf16 and "tf_keras" in speed else ""
        cells.append(f"{bf16:,.0f}{keras}" if bf16 else "—")
        if before:
            old = before.get(key)
            cells += [f"{old:,.0f}" if old else "—",
                      f"{speed['pixelforge'] / old - 1:+.0%}" if old and "pixelforge" in speed else "—"]
        lines.append(f"| {key[0]} | {key[1]} | {case['images']} | {case['batch']} | " + " | ".join(cells) + " |")
        notes += case.get("errors", [])
    lines += ["", "knn: queries/s of predict (1,024 held-out images against the stored training images); no "
              "Keras peer. With 2 threads pixelforge's thread tuner may use 1 of them where that measures faster "
              "(as a user gets it); the peers keep both. bf16: ``--precision bf16`` (autocast, opt-in; "
              "the peers stay fp32)."]
    lines += [f"- {n}" for n in notes]
    (RESULTS / f"{out}.md").write_text("\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
