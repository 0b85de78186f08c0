"""The Trainer: Keras' vocabulary (``fit``/``evaluate``/``predict``, callbacks, History), torch inside.

The hot loop is short on purpose: gather a uint8 batch, (augment it), run the model with its batch
transform in front (normalization happens in torch, on the batch), cross-entropy, backward, step.
A model with a hand-written ``train_step(x, labels)`` (fmnist_baseline) replaces forward + autograd.
Running loss/accuracy stay tensors; Python floats are made only when a callback asks for them.

Reproducibility: the weights come from ``torch.manual_seed(seed)``; epoch ``e`` shuffles with
``default_rng([seed, e])``, augments batch ``b`` with ``default_rng([seed, e, b])`` and reseeds
torch (dropout) from ``(seed, e)`` — so a run resumed at epoch ``e`` continues exactly like an
uninterrupted one.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pixelforge import __version__
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import ParameterError, PixelforgeError
from pixelforge.train import distributed
from pixelforge.train.data import ArrayData, complete_spec, prepare
from pixelforge.train.normalize import BatchTransform, PreprocessedModel, to_tensor
from pixelforge.train.optimizers import build_optimizer
from pixelforge.train.schedules import Schedule
from pixelforge.train.speed import ThreadTuner, auto_threads, resolve_precision, tune_malloc


class TrainingDiverged(PixelforgeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(PixelforgeError):
    """Ctrl-C during training; the last checkpoint is kept."""


class History:
    """Keras' History: ``history[metric]`` is a list with one value per epoch."""

    def __init__(self, history: dict | None = None):
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (history or {}).items()}

    @property
    def epoch(self) -> list[int]:
        return list(range(len(self.history.get("loss", []))))

    def append(self, logs: dict) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __repr__(self) -> str:
        return f"History({len(self.epoch)} epochs, metrics={list(self.history)})"


class RunningMetrics:
    """Epoch-so-far loss and accuracy, kept as tensors; ``.loss``/``.accuracy`` convert on demand."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        n = len(labels)
        self.loss_sum.add_(loss.detach(), alpha=n)
        self.correct += (logits.detach().argmax(1) == labels).sum()
        self.seen += n

    @property
    def loss(self) -> float:
        return float(self.loss_sum) / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        return int(self.correct) / max(self.seen, 1)


def resolve_device(device: str | None) -> torch.device:
    """The torch device for "cpu", "cuda", "cuda:N" or "auto"; a GPU asked for and not visible is an error."""
    name = (device or "cpu").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ParameterError(f"--device must be cpu, cuda, cuda:N or auto, got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ParameterError(f"--device must be cpu, cuda, cuda:N or auto, got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise ParameterError(f"--device {device}: torch sees no CUDA GPU here (torch {torch.__version__}, {build})")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ParameterError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) visible")
    return resolved


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class Trainer:
    """Train a zoo model on a Manifest or (x, y) arrays.

    model: a zoo name (see ``pixelforge models``) or a model from ``build_model``.
    preprocess: the Preprocess spec (size/channels default to the data's own).
    optimizer: "auto" (the model's default, e.g. sgd lr 0.01 momentum 0.9 for fmnist_baseline),
        "sgd", "adam" or "rmsprop"; lr/momentum None take the defaults.
    schedule: None, a Schedule or a spec string ("cosine", "step:every=10,factor=0.5", …).
    augment: None, an augmentation spec (string/dict) or a Pipeline; applied to each uint8 batch.
    compile: run the model through ``torch.compile`` (a one-off compile cost; on CPU it measured
        slower than eager for the small zoo models, so it is off by default).
    threads: torch CPU threads; "auto" takes the cores idle now (see ``speed.auto_threads``).
    adaptive_threads: while training on more than one thread, time steps on those threads and on one and
        keep the faster, probing again every few seconds (``speed.ThreadTuner``): on shared or virtual
        cores one thread can be the faster. Off for bit-reproducible multi-threaded runs.
    precision: "fp32" (default, like Keras) or "bf16": matrix products on bfloat16 inputs with float32
        weights, gradients and loss — under CPU autocast, or for fmnist_baseline in its hand-written
        pass (its dense layer's three products; 1.3-1.5x the fp32 speed at batch 256 on AVX-512 BF16);
        slightly different numbers. "auto": bf16 on CPUs that multiply bfloat16 natively (AMX or
        AVX-512 BF16), fp32 elsewhere; model.json records the choice.
    pretrained: start from these weights (a .safetensors/.pth file, a pixelforge model folder, an
        http(s) URL or ``hf://owner/repo[/file]``; ``pretrained_sha256`` checks the file). The head is
        replaced when the class count differs; the weights' preprocessing fills what ``preprocess``
        leaves open (see ``train.transfer``).
    freeze: train only the head; ``unfreeze_after=N``: the head for N epochs, then every layer.
    layer_lr_ratio: with pretrained weights, the first layers learn at this fraction of ``lr`` (the
        head at ``lr``, the groups between on a log scale); default 0.1.
    device: "cpu" (default), "cuda" / "cuda:N" (a CUDA build of torch and a GPU), or "auto" (cuda when
        one is visible); batches are gathered on the CPU and moved per step; saved weights are CPU tensors.

    Started by torchrun (WORLD_SIZE > 1 in the environment), the trainer trains data-parallel: see
    ``train.distributed`` for what each rank reads, how batches and metrics are shared, and who writes.
    """

    def __init__(self, model="fmnist_baseline", preprocess: Preprocess | None = None, *, model_params=None,
                 optimizer: str = "auto", lr: float | None = None, momentum: float | None = None,
                 nesterov: bool = False, weight_decay: float = 0.0, schedule=None, augment=None,
                 seed: int = 0, compile: bool = False, threads: int | str | None = None, verbose: bool = True,
                 memory_budget: int | None = None, workers: int | None = None, console=None,
                 precision: str = "fp32", adaptive_threads: bool = True, pretrained: str | None = None,
                 pretrained_sha256: str | None = None, freeze: bool = False, unfreeze_after: int | None = None,
                 layer_lr_ratio: float | None = None, device: str = "cpu"):
        self.model_name = model if isinstance(model, str) else model.config["name"]
        self.network = None if isinstance(model, str) else model
        self.model_params = dict(model_params or {})
        # the trainer fits statistics into its own copy: the caller's spec is a parameter, never changed
        self.preprocess = copy.deepcopy(preprocess) if preprocess is not None else Preprocess()
        self.optimizer_name, self.lr, self.momentum = optimizer, lr, momentum
        self.nesterov, self.weight_decay = nesterov, weight_decay
        self.schedule = Schedule.parse(schedule)
        self.augment_spec = augment
        self.pipeline = self._pipeline(augment)
        self.seed = int(seed)
        self.compile = compile
        self.verbose = verbose
        self.memory_budget, self.workers = memory_budget, workers
        self.console = console
        self.requested_precision = precision
        self.precision = resolve_precision(precision)  # "auto" → bf16 on CPUs with native bf16, else fp32
        self.requested_device = device
        self.device = resolve_device(device)
        self.ranks = distributed.setup(self.device.type)
        if self.ranks.active and self.device.type == "cuda":  # one GPU per rank on its node
            import os

            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        # timing the thread count per rank would make ranks wait on each other's probes
        self.adaptive_threads = adaptive_threads and not self.ranks.active
        self.threads = threads
        self.transfer = self._transfer(pretrained, pretrained_sha256, freeze, unfreeze_after, layer_lr_ratio)
        self.transfer_report: dict | None = None
        self._tuner: ThreadTuner | None = None
        tune_malloc()
        if threads == "auto":
            threads = auto_threads()
        if threads:
            torch.set_num_threads(int(threads))
        self.optimizer = None
        self.classes: list[str] | None = None
        self.history = History()
        self.callbacks: list = []
        self.stop_training = False
        self.initial_epoch = 0
        self.epochs = 0
        self.steps_per_epoch = 0
        self.batch_size = 32
        self._net = None
        self._train_net = None  # the network wrapped in DistributedDataParallel when ranks share the work
        self._class_weight = None
        self._resuming = False
        if not isinstance(model, str) and self.network is not None:
            from pixelforge.models import get_spec

            get_spec(self.model_name)  # a model saved later must be rebuildable by name

    # ---- configuration (scikit-learn / Keras style) -------------------------------------------
    def get_config(self) -> dict:
        """The constructor's parameters as plain JSON values; ``Trainer.from_config`` rebuilds an
        untrained trainer with them (a fitted spec keeps its statistics)."""
        return {
            "model": self.model_name, "preprocess": self.preprocess.to_dict(), "model_params": dict(self.model_params),
            "optimizer": self.optimizer_name, "lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
            "weight_decay": self.weight_decay, "schedule": self.schedule.to_dict(), "augment": self.augment_dict(),
            "seed": self.seed, "compile": bool(self.compile), "threads": self.threads, "verbose": self.verbose,
            "memory_budget": self.memory_budget, "workers": self.workers, "precision": self.requested_precision,
            "adaptive_threads": self.adaptive_threads,
            "pretrained": self.transfer.source if self.transfer else None,
            "pretrained_sha256": self.transfer.sha256 if self.transfer else None,
            "freeze": bool(self.transfer and self.transfer.freeze),
            "unfreeze_after": self.transfer.unfreeze_after if self.transfer else None,
            "layer_lr_ratio": self.transfer.layer_lr_ratio if self.transfer else None,
            "device": self.requested_device,
        }

    @classmethod
    def from_config(cls, config: dict) -> Trainer:
        from pixelforge.errors import check_keys

        known = set(inspect.signature(cls).parameters) - {"console"}  # the constructor's parameters
        check_keys(config, known, "Trainer config")
        config = dict(config)
        if config.get("preprocess") is not None and not isinstance(config["preprocess"], Preprocess):
            config["preprocess"] = Preprocess.from_dict(config["preprocess"])
        model = config.pop("model", "fmnist_baseline")
        preprocess = config.pop("preprocess", None)
        return cls(model, preprocess, **config)

    # ---- setup --------------------------------------------------------------------------------
    def _transfer(self, pretrained, sha256, freeze, unfreeze_after, layer_lr_ratio):
        from pixelforge.train.transfer import DEFAULT_LAYER_LR_RATIO, Transfer, default_preprocess

        if not pretrained:
            if freeze or unfreeze_after is not None:
                raise ParameterError("freezing layers needs pre-trained weights: pass pretrained= (--pretrained)")
            return None
        transfer = Transfer(str(pretrained), sha256, bool(freeze), unfreeze_after,
                            DEFAULT_LAYER_LR_RATIO if layer_lr_ratio is None else layer_lr_ratio)
        self.preprocess = default_preprocess(self.preprocess, self.model_name, transfer.source)
        return transfer

    @staticmethod
    def _pipeline(augment):
        if augment is None or augment == "" or augment == {}:
            return None
        from pixelforge.augment import Pipeline

        pipeline = Pipeline.from_spec(augment)
        if not pipeline.after_normalization.is_identity:
            raise PixelforgeError(
                "normalization inside --augment is not supported by the trainer; use --standardize instead"
            )
        return None if pipeline.is_identity else pipeline

    def log(self, message: str) -> None:
        if self.verbose and self.ranks.chief:
            from rich.console import Console

            (self.console or Console(stderr=True)).print(message, highlight=False)

    def _fit_statistics(self, data) -> None:
        from pixelforge.data.preprocess import _iterate_batches
        from pixelforge.data.stats import RunningStats

        spec = self.preprocess
        if spec.standardize not in ("global", "channel", "pixel") or spec.mean is not None:
            return
        source = (data.x[i : i + 4096] for i in range(0, len(data), 4096)) if isinstance(data, ArrayData) else data.manifest
        stats = RunningStats()
        for batch in _iterate_batches(spec, source, 1024):
            stats.update(spec.scale(batch))
        if self.ranks.active:  # the statistics of the whole training split, not of this rank's part
            total = distributed.all_sum(np.concatenate([[stats.count], stats._sum.ravel(), stats._sumsq.ravel()]),
                                        self.ranks)
            size = stats._sum.size
            stats.count = int(total[0])
            stats._sum = total[1 : 1 + size].reshape(stats._sum.shape)
            stats._sumsq = total[1 + size :].reshape(stats._sum.shape)
        if stats.count == 0:
            raise PixelforgeError("cannot fit statistics on zero images")
        spec.set_statistics(stats)

    def build(self, image_shape: tuple[int, int, int], classes: list[str]) -> None:
        """Build the network (seeded) for HWC ``image_shape`` and the classes; set up the optimizer."""
        from pixelforge.models import build_model

        h, w, c = image_shape
        if self.network is None:
            torch.manual_seed(self.seed)
            self.network = build_model(self.model_name, (c, h, w), len(classes), **self.model_params)
        elif list(self.network.config["input_shape"]) != [c, h, w] or self.network.config["num_classes"] != len(classes):
            raise PixelforgeError(
                f"the model expects input {self.network.config['input_shape']} and "
                f"{self.network.config['num_classes']} classes; the data has {[c, h, w]} and {len(classes)}"
            )
        if self.transfer is not None and self.transfer_report is None and not self._resuming:
            from pixelforge.train.transfer import load_source

            # a resumed run takes every weight from its checkpoint: the source may be gone or offline
            self.transfer_report = load_source(self.network, self.transfer.source, self.transfer.sha256)
            self.log(f"pre-trained weights: {self.transfer.source}"
                     + "".join(f"; {note}" for note in self.transfer_report.get("messages", [])))
        self.classes = list(classes)
        self.network.to(self.device)
        self._net = PreprocessedModel(BatchTransform(self.preprocess), self.network).to(self.device)
        if self.compile:
            self._net = torch.compile(self._net, dynamic=False)
        self._train_net = self._net
        if self.ranks.active and getattr(self.network, "trainable_by_gradient", True):
            from torch.nn.parallel import DistributedDataParallel

            # frozen layers (transfer) have parameters without gradients in some epochs
            self._train_net = DistributedDataParallel(
                self._net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.transfer is not None)
        if getattr(self.network, "trainable_by_gradient", True) and self.optimizer is None:
            self.optimizer = self._build_optimizer()

    def _build_optimizer(self):
        name = self.optimizer_name
        options = {}
        if name in (None, "auto"):
            name = getattr(self.network, "default_optimizer", None) or "sgd"
            options = dict(getattr(self.network, "default_optimizer_options", {}) or {})
        lr = self.lr if self.lr is not None else options.get("lr")
        momentum = self.momentum if self.momentum is not None else options.get("momentum", 0.0)
        self.resolved_optimizer = {"name": name, "lr": lr, "momentum": momentum, "nesterov": self.nesterov,
                                   "weight_decay": self.weight_decay}
        params = self.network.parameters()
        factors = None
        if self.transfer is not None:  # one parameter group per layer group, slower towards the input
            from pixelforge.train.transfer import group_lr_factors, layer_groups

            groups = layer_groups(self.network)
            params = [{"params": group} for group in groups]
            factors = group_lr_factors(len(groups), self.transfer.layer_lr_ratio)
        optimizer = build_optimizer(name, params, lr, momentum, self.nesterov, self.weight_decay)
        for group, factor in zip(optimizer.param_groups, factors or [], strict=False):
            group["lr"] *= factor
        self.resolved_optimizer["lr"] = optimizer.param_groups[-1]["lr"]
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
        return optimizer

    def run_config(self) -> dict:
        """How this run was set up (saved in checkpoints and model.json)."""
        return {
            "model": self.model_name, "model_params": self.model_params,
            "optimizer": getattr(self, "resolved_optimizer", {"name": self.optimizer_name}),
            "schedule": self.schedule.to_dict(), "seed": self.seed, "epochs": self.epochs,
            "batch_size": self.batch_size, "augment": self.augment_dict(),
            "compile": bool(self.compile), "precision": self.precision,
            "precision_requested": self.requested_precision, "pixelforge_version": __version__,
            "device": str(self.device), "processes": self.ranks.world,
            "transfer": None if self.transfer is None else {
                "pretrained": self.transfer.source, "freeze": self.transfer.freeze,
                "unfreeze_after": self.transfer.unfreeze_after, "layer_lr_ratio": self.transfer.layer_lr_ratio,
                "loaded": self.transfer_report},
        }

    def augment_dict(self):
        return None if self.pipeline is None else self.pipeline.to_dict()

    # ---- fit ----------------------------------------------------------------------------------
    def fit(self, train, validation=None, epochs: int = 10, batch_size: int = 32, callbacks=None,
            validation_split: float | None = None, shuffle: bool = True, resume_from=None,
            class_weight=None) -> History:
        """Train for ``epochs`` epochs; returns the History (loss, accuracy, val_loss, val_accuracy, lr).

        class_weight: as in Keras, ``{class index: weight}`` scaling each image's loss (e.g. so a rare
        class is learnt rather than ignored); "balanced" weighs classes by n / (k * count)."""
        if epochs < 1 or batch_size < 1:
            raise PixelforgeError(f"epochs and batch size must be >= 1, got {epochs} and {batch_size}")
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        if self.ranks.active:
            train, validation = self._rank_parts(train, validation)
        train_data, self.preprocess = prepare(train, self.preprocess, self.classes, self.memory_budget, self.workers)
        if len(train_data) == 0:
            raise PixelforgeError("no training images")
        self._report_skips(train_data, "training")
        if validation is None and validation_split:
            if not isinstance(train_data, ArrayData):
                raise PixelforgeError("validation_split needs data that fits in memory; pass validation data instead")
            from pixelforge.data.split import stratified_holdout

            keep, held = stratified_holdout(train_data.y, validation_split, self.seed)
            train_data, validation = train_data.subset(keep), train_data.subset(held)
        self._fit_statistics(train_data)
        self._resuming = resume_from is not None
        self.build(train_data.image_shape, train_data.classes)
        self._class_weight = self._class_weights(class_weight, train_data)
        val_data = None
        if validation is not None:
            val_data, _ = prepare(validation, self.preprocess, self.classes, self.memory_budget, self.workers)
            self._report_skips(val_data, "validation")
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            cb.set_trainer(self)
        self.initial_epoch = 0
        if resume_from is not None:
            self._resume(resume_from)
        if not getattr(self.network, "trainable_by_gradient", True):
            return self._fit_closed_form(train_data, val_data)
        self.steps_per_epoch = math.ceil(len(train_data) / self.batch_size)
        if self.ranks.active:  # the rank with the most images sets the pace (the others join early)
            local = distributed.local_batch_size(self.batch_size, self.ranks)
            self.steps_per_epoch = math.ceil(distributed.all_max(len(train_data), self.ranks) / local)
        self.stop_training = False
        if self.adaptive_threads:
            self._tuner = ThreadTuner(torch.get_num_threads())
        callbacks = self._active_callbacks()
        try:
            for cb in callbacks:
                cb.on_train_begin()
            for epoch in range(self.initial_epoch, self.epochs):
                logs = self._run_epoch(train_data, val_data, epoch, shuffle)
                self.history.append(logs)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            for cb in callbacks:
                cb.on_train_end()
        except KeyboardInterrupt:
            done = len(self.history.epoch)
            raise TrainingInterrupted(
                f"training interrupted during epoch {done + 1}; the checkpoint of epoch {done} is kept"
                if done else "training interrupted during the first epoch; nothing was saved"
            ) from None
        finally:
            if self._tuner is not None:
                self._tuner.close()
                self._tuner = None
            for cb in self.callbacks:
                cb.close()
        return self.history

    def _active_callbacks(self) -> list:
        """Every callback on rank 0; on the other ranks only those that decide (early stopping), not
        those that write the run folder or print."""
        if self.ranks.chief:
            return self.callbacks
        return [cb for cb in self.callbacks if not getattr(cb, "rank_zero_only", False)]

    def _rank_parts(self, train, validation):
        """This rank's part of the training (and validation) data; the spec's size and channels and
        the class list are fixed from the whole data first, so that every rank agrees on them."""
        from pixelforge.data.manifest import Manifest
        from pixelforge.train.data import class_indices

        if not isinstance(train, Manifest):
            train, self.preprocess = prepare(train, self.preprocess, self.classes)
        else:
            if len(train) == 0:
                raise PixelforgeError("no training images")
            self.preprocess = complete_spec(self.preprocess, self.preprocess.load(train, 0))
            if "polarity" in self.preprocess.canonical and self.preprocess.polarity is None:
                self.preprocess = self.preprocess.fit_polarity(train)  # the whole data's, the same on every rank
        if self.classes is None:
            self.classes = list(train.classes)
        parts = []
        for data in (train, validation):
            if data is None:
                parts.append(None)
                continue
            labels = class_indices(data, self.classes) if isinstance(data, Manifest) else None
            if labels is None:
                data, _ = prepare(data, self.preprocess, self.classes)
                labels = data.y
            rows = distributed.rank_rows(labels, self.ranks, self.seed)
            parts.append(data.subset(rows))
        return parts[0], parts[1]

    def _class_weights(self, class_weight, data) -> torch.Tensor | None:
        if class_weight is None:
            return None
        k = len(self.classes)
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise PixelforgeError(f'class_weight must be a dict or "balanced", got {class_weight!r}')
            counts = distributed.all_sum(np.bincount(data.y, minlength=k), self.ranks)
            weights = counts.sum() / (k * np.maximum(counts, 1))
        else:
            weights = np.ones(k)
            for key, value in dict(class_weight).items():
                index = self.classes.index(key) if isinstance(key, str) and key in self.classes else int(key)
                if not 0 <= index < k:
                    raise PixelforgeError(f"class_weight names class {key!r}; classes are 0..{k - 1}")
                weights[index] = float(value)
        return torch.tensor(weights, dtype=torch.float32, device=self.device)

    def _report_skips(self, data, what: str) -> None:
        for skip in data.skipped[:5]:
            self.log(f"[yellow]skipped[/] {skip.item}: {skip.reason}")
        if len(data.skipped) > 5:
            self.log(f"[yellow]… {len(data.skipped) - 5} more {what} images skipped[/]")

    def _run_epoch(self, train_data, val_data, epoch: int, shuffle: bool) -> dict:
        for cb in self._active_callbacks():
            cb.on_epoch_begin(epoch)
        started = time.perf_counter()
        ranks = self.ranks
        torch.manual_seed(_epoch_seed(self.seed, epoch) + ranks.rank)  # dropout differs between ranks
        n = len(train_data)
        shuffling = [self.seed, epoch, ranks.rank] if ranks.active else [self.seed, epoch]
        order = np.random.default_rng(shuffling).permutation(n) if shuffle else np.arange(n)
        running = self.train_epoch(train_data, order, epoch)
        if ranks.active:  # every rank logs the sums over all ranks
            loss_sum, correct, seen = distributed.all_sum(
                [float(running.loss_sum), int(running.correct), running.seen], ranks)
            running.loss_sum, running.correct, running.seen = torch.tensor(loss_sum), torch.tensor(int(correct)), int(seen)
        logs = {"loss": running.loss, "accuracy": running.accuracy}
        if val_data is not None:
            scores = self.evaluate(val_data)
            if ranks.active:
                m = len(val_data)
                loss_sum, correct, seen = distributed.all_sum([scores["loss"] * m, scores["accuracy"] * m, m], ranks)
                scores = {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1)}
            logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        logs["lr"] = self.optimizer.param_groups[-1]["lr"]  # the head's (earlier layer groups learn slower)
        logs["seconds"] = time.perf_counter() - started
        return logs

    def train_epoch(self, data, order: np.ndarray, epoch: int) -> RunningMetrics:
        """One pass over ``data`` in ``order``; the hot loop."""
        from contextlib import nullcontext

        net, optimizer, pipeline = self._train_net, self.optimizer, self.pipeline
        ranks = self.ranks
        net.train()
        if self.transfer is not None:
            self._transfer_phase(epoch)
        device = self.device
        running = RunningMetrics(device)
        penalty = self.network.regularization_loss() if hasattr(self.network, "regularization_loss") else None
        regularized = penalty is not None and penalty.requires_grad
        scheduled = self.schedule.name != "constant"
        class_weight = self._class_weight
        bf16 = self.precision == "bf16"
        # a model may compute its gradients by hand (same numbers, no autograd graph): not compiled
        # (class weights take the autograd path: the hand-written step has none)
        # (and a frozen body too: the hand-written step writes every gradient)
        frozen = self.transfer is not None and self.transfer.frozen_at(epoch)
        # (and data-parallel runs: DDP shares the gradients autograd computes)
        # (and GPUs: the hand-written steps are CPU code)
        manual = (None if self.compile or class_weight is not None or frozen or ranks.active or device.type != "cpu"
                  else getattr(self.network, "train_step", None))
        transform = self._net.transform
        total = self.steps_per_epoch * self.epochs
        base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        step = epoch * self.steps_per_epoch
        tuner = self._tuner
        if tuner is not None:
            tuner.pause()  # the validation pass since the last step is not a step
        batch_size = distributed.local_batch_size(self.batch_size, ranks)
        # a rank out of batches joins early; DDP then shadows the others' gradient reductions
        joined = net.join() if ranks.active else nullcontext()
        batch_callbacks = self._active_callbacks()
        b = 0
        with joined:
            for b, (images, labels) in enumerate(data.batches(batch_size, order)):
                if pipeline is not None:
                    seeds = [self.seed, epoch, b, ranks.rank] if ranks.active else [self.seed, epoch, b]
                    images = pipeline(images, np.random.default_rng(seeds))
                if scheduled:
                    for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                        group["lr"] = self.schedule.lr_at(step, self.steps_per_epoch, total, base)
                x, y = to_tensor(images), torch.from_numpy(labels)
                if device.type != "cpu":
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                done = manual(transform(x), y, bf16=bf16) if manual is not None else None
                if done is not None:  # the model wrote its own gradients (see FashionBaseline.train_step)
                    loss, logits = done
                else:
                    # (a disabled autocast still costs ~8 us per step: none at all in fp32)
                    with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
                        logits = net(x)
                    loss = F.cross_entropy(logits.float(), y, weight=class_weight)
                    if regularized:
                        loss = loss + self.network.regularization_loss()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                optimizer.step()
                running.add(loss, logits, y)
                if tuner is not None:
                    tuner.step_done()
                step += 1
                if b % 64 == 63 and not torch.isfinite(running.loss_sum):
                    self._diverged(epoch, b)
                for cb in batch_callbacks:
                    cb.on_train_batch_end(b, running)
        if not math.isfinite(running.loss):
            self._diverged(epoch, b)
        return running

    def _transfer_phase(self, epoch: int) -> None:
        """Freeze or unfreeze the body for this epoch; batch norm that must keep its statistics to eval."""
        from pixelforge.train.transfer import hold_batch_norm, layer_groups, set_frozen

        groups = layer_groups(self.network)
        frozen = self.transfer.frozen_at(epoch)
        set_frozen(groups, frozen)
        held = hold_batch_norm(self.network, groups, frozen, self.batch_size)
        if epoch == self.initial_epoch or (self.transfer.unfreeze_after == epoch and epoch > 0):
            what = "the head only (the body is frozen)" if frozen else "every layer"
            note = f"; {held} batch-norm layers keep their pre-trained statistics" if held else ""
            self.log(f"epoch {epoch + 1}: training {what}{note}")

    def _diverged(self, epoch: int, batch: int):
        done = len(self.history.epoch)
        kept = f"the checkpoint of epoch {done} is kept" if done else "no checkpoint was written yet"
        raise TrainingDiverged(
            f"loss became NaN/infinite in epoch {epoch + 1} (by batch {batch + 1}); training stopped, {kept}; "
            "try a lower --lr, another optimizer, or --standardize"
        )

    def _fit_closed_form(self, train_data, val_data) -> History:
        """Models without gradient training (knn): one pass that stores or solves, then scores."""
        if self.ranks.active:
            raise PixelforgeError(f"{self.model_name} is fitted in one pass, not by gradient steps: "
                                  "train it with one process (without --nproc / torchrun)")
        xs = [self._net.transform(to_tensor(images).to(self.device)) for images, _ in train_data.batches(4096)]
        ys = [torch.from_numpy(labels).to(self.device) for _, labels in train_data.batches(4096)]
        self.network.fit_arrays(torch.cat(xs), torch.cat(ys))
        logs = {}
        scores = self.evaluate(train_data)
        logs.update(loss=scores["loss"], accuracy=scores["accuracy"])
        if val_data is not None:
            scores = self.evaluate(val_data)
            logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        self.history.append(logs)
        for cb in self._active_callbacks():
            cb.on_epoch_end(0, logs)
        return self.history

    def _resume(self, run_dir) -> None:
        from pixelforge.train.checkpoint import load_training_state, restore_optimizer
        from pixelforge.train.saved import load_weights

        tensors, meta = load_training_state(run_dir)
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        load_weights(self.network, weights, f"{run_dir}/checkpoint")
        if self.optimizer is not None:
            restore_optimizer(self.optimizer, tensors, meta["optimizer"])
        self.history = History(meta.get("history"))
        self.initial_epoch = int(meta["epochs_done"])
        states = meta.get("callbacks") or []
        for cb, state in zip(self.callbacks, states, strict=False):
            cb.load_state_dict(state)
            if hasattr(cb, "recover_best_weights"):
                cb.recover_best_weights(run_dir)
        if self.initial_epoch >= self.epochs:
            self.log(f"the checkpoint already has {self.initial_epoch} epochs (asked for {self.epochs}); nothing to do")
        else:
            self.log(f"resuming after epoch {self.initial_epoch}")

    # ---- evaluate / predict -------------------------------------------------------------------
    def _logits(self, data, batch_size: int = 1024) -> tuple[torch.Tensor, np.ndarray]:
        if self._net is None:
            raise PixelforgeError("the model is not trained yet: call fit() first")
        if isinstance(data, np.ndarray):
            data = (data, np.zeros(len(data), dtype=np.int64))
            data, _ = prepare(data, self.preprocess, self.classes)
        else:
            data, _ = prepare(data, self.preprocess, self.classes, self.memory_budget, self.workers)
        self._net.eval()
        outs, labels = [], []
        with torch.inference_mode():
            for images, y in data.batches(batch_size):
                outs.append(self._net(to_tensor(images).to(self.device)).float().cpu())
                labels.append(y)
        return torch.cat(outs), np.concatenate(labels)

    def evaluate(self, data, batch_size: int = 1024) -> dict:
        """Mean cross-entropy loss and accuracy on ``data`` (Manifest, (x, y) or prepared data)."""
        logits, labels = self._logits(data, batch_size)
        y = torch.from_numpy(labels)
        return {
            "loss": float(F.cross_entropy(logits, y)),
            "accuracy": float((logits.argmax(1) == y).double().mean()),
        }

    def predict(self, data, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities, one row per image (Manifest, (x, y), or an NHWC uint8 array)."""
        logits, _ = self._logits(data, batch_size)
        return torch.softmax(logits, dim=1).numpy()

    def save(self, run_dir, metrics: dict | None = None) -> Path:
        """Write ``model.safetensors`` + ``model.json`` into ``run_dir``."""
        from pixelforge.train.saved import save_model

        if self.network is None:
            raise PixelforgeError("nothing to save: the model is not trained yet")
        return save_model(run_dir, self.network, classes=self.classes, preprocess=self.preprocess,
                          augment=self.augment_dict(), metrics=metrics, training=self.run_config())
