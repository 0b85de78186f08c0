"""Pre-trained weights from anywhere, safely: find them, read them, fit them into a backbone.

- :func:`resolve_weights`: a local file, a pixelforge run folder (``model.safetensors``), an http(s) URL
  or ``hf://owner/repo[@revision][/path/file]`` → a local file. Downloads go through
  :func:`pixelforge.data.layouts.remote.fetch` (timeouts, size limit, http(s)-only redirects, one retry)
  into a staging folder and are moved into the cache (``$PIXELFORGE_CACHE/weights`` or
  ``~/.cache/pixelforge/weights``) only once complete and verified: the SHA-256 when given, and
  torchvision's convention of a file name ending in ``-<first 8+ hex digits of its SHA-256>.pth``
  (checked on downloads only: a local file may have been renamed). Files of one remote folder share a
  cache folder, so a Hugging Face repository's ``config.json`` lies beside its weights.
- :func:`read_state_dict`: safetensors, or a torch file read with ``weights_only=True`` (plain tensors and
  containers only: no code from the file ever runs).
- :func:`load_pretrained`: every body tensor must fit; the head is kept when it fits and re-initialized
  otherwise; the first convolution is adapted to the model's channel count; timm's names are converted.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import torch
from torch import nn

from pixelforge.atomic import sha256_file
from pixelforge.data.layouts import remote
from pixelforge.errors import PixelforgeError

DEFAULT_TIMEOUT = 600.0  # seconds for a whole download
DEFAULT_MAX_BYTES = 2 * 1024**3
READ_TIMEOUT = 30.0  # seconds without a byte before a connection counts as stalled
HF_ENDPOINT = "https://huggingface.co"
HF_DEFAULT_FILE = "model.safetensors"
RUN_WEIGHTS_FILE = "model.safetensors"  # what a pixelforge run folder holds (train/saved.py)
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema")  # training checkpoints nest the weights here
# torchvision's download convention: resnet18-f37072fd.pth carries the start of the file's SHA-256
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_HF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# ---- finding the file -----------------------------------------------------------------------------

def resolve_weights(source: str | os.PathLike, *, sha256: str | None = None,
                    cache_dir: str | os.PathLike | None = None, timeout: float = DEFAULT_TIMEOUT,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """The local weights file for ``source`` (downloaded into the cache the first time).

    ``sha256``: the expected SHA-256 (64 hex digits) of the file; ``timeout``: the time limit for a
    whole download, in seconds; ``max_bytes``: the largest download accepted.
    """
    expected = _check_sha256(sha256)
    text = os.fspath(source)
    if text.startswith("hf://"):
        url = hf_url(text)
    elif text.lower().startswith(("http://", "https://")):
        url = remote.check_url(text)
    else:
        return _local_weights(Path(text), expected)
    return _download_weights(url, expected, Path(cache_dir) if cache_dir else remote.cache_dir() / "weights",
                             timeout=timeout, max_bytes=max_bytes)


def hf_url(source: str) -> str:
    """``hf://owner/repo[@revision][/path/in/repo]`` → its download URL on ``$HF_ENDPOINT`` (default
    huggingface.co); the file is ``model.safetensors`` when no path is given."""
    parts = source[len("hf://"):].strip("/").split("/")
    if len(parts) < 2:
        raise PixelforgeError(f"{source}: expected hf://owner/repo or hf://owner/repo/path/to/file")
    owner, repo, path = parts[0], parts[1], parts[2:] or [HF_DEFAULT_FILE]
    repo, _, revision = repo.partition("@")
    revision = revision or "main"
    for name in (owner, repo, revision, *path):
        if not _HF_NAME.match(name) or name in (".", ".."):
            raise PixelforgeError(f"{source}: {name!r} is not a valid Hugging Face name or path part")
    endpoint = os.environ.get("HF_ENDPOINT", "").strip() or HF_ENDPOINT
    url = f"{endpoint.rstrip('/')}/{owner}/{repo}/resolve/{quote(revision)}/{'/'.join(quote(p) for p in path)}"
    return remote.check_url(url)


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = str(sha256).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise PixelforgeError(f"sha256 expects 64 hexadecimal digits; got {sha256!r}")
    return value



def _local_weights(path: Path, expected: str | None) -> Path:
    if path.is_dir():
        folder, path = path, path / RUN_WEIGHTS_FILE
        if not path.is_file():
            raise PixelforgeError(f"{folder}: a folder of weights must hold {RUN_WEIGHTS_FILE} (a pixelforge run folder)")
        expected = expected or _recorded_sha256(folder)
    elif not path.is_file():
        raise PixelforgeError(f"{path}: no such weights file")
    if expected:
        _verify(path, expected, str(path))
    return path


def _recorded_sha256(folder: Path) -> str | None:
    """The SHA-256 a pixelforge run folder's model.json vouches for, when it has one."""
    try:
        weights = json.loads((folder / "model.json").read_text(encoding="utf-8")).get("weights", {})
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(weights, dict) and weights.get("file") == RUN_WEIGHTS_FILE:
        value = str(weights.get("sha256", "")).lower()
        return value if re.fullmatch(r"[0-9a-f]{64}", value) else None
    return None


def _verify(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if not actual.startswith(expected):
        raise PixelforgeError(f"{what}: checksum mismatch (SHA-256 {actual[:16]}…, expected {expected[:16]}…); "
                              "the file is corrupt or not the one expected")


def _download_weights(url: str, expected: str | None, root: Path, *, timeout: float, max_bytes: int) -> Path:
    parts = urlsplit(url)
    name = posixpath.basename(unquote(parts.path)) or "weights"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "weights"
    # one cache folder per remote folder, so files of one repository (weights, config.json) sit together
    folder = f"{parts.scheme}://{parts.netloc}{posixpath.dirname(parts.path)}?{parts.query}"
    target = root / hashlib.sha256(folder.encode("utf-8")).hexdigest()[:16] / name
    if target.is_file():
        try:
            if expected:
                _verify(target, expected, url)
            return target
        except PixelforgeError:
            target.unlink()  # a stale or damaged copy: fetch it again
    root.mkdir(parents=True, exist_ok=True)
    # Download into a staging folder beside the cache and move it in only once verified, so a failed,
    # truncated or wrong download never leaves a file where the next call would trust it.
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        path = remote.fetch(url, timeout=min(READ_TIMEOUT, timeout), max_bytes=max_bytes, cache=False,
                            directory=staging, total_timeout=timeout)
        if expected:
            _verify(path, expected, url)
        in_name = None if expected else _HASH_IN_NAME.search(name)
        # a date or a step counter (model-20240101.pth) is all digits: only a hex hash has a letter
        if in_name and any(c in "abcdef" for c in in_name.group(1)):
            _verify(path, in_name.group(1), f"{url} (its name carries the start of its SHA-256)")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# ---- reading it -----------------------------------------------------------------------------------

def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Parameter name → tensor from a ``.safetensors`` file or a torch file (``.pth``/``.pt``/``.bin``/
    ``.ckpt``), unwrapping a training checkpoint's ``state_dict``/``model``/``state_dict_ema`` and
    DataParallel's ``module.`` prefix. A torch file holding anything but tensors and plain containers
    is refused without running it."""
    path = Path(path)
    if not path.is_file():
        raise PixelforgeError(f"{path}: no such weights file")
    if _is_torch_file(path):
        data = _read_torch(path)
    else:
        data = _read_safetensors(path)
    return _tensor_mapping(data, path)


def _is_torch_file(path: Path) -> bool:
    if path.suffix.lower() in TORCH_SUFFIXES:
        return True
    if path.suffix.lower() == ".safetensors":
        return False
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"  # a torch zip archive, or a raw pickle


def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise PixelforgeError(f"{path}: not a readable safetensors file ({exc})") from None


def _read_torch(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds; all mean "not loadable safely"
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
        if "Weights only load failed" in text:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            detail = f" (it refers to {found.group(1)})" if found else ""
            raise PixelforgeError(
                f"{path}: refused: the file holds Python objects other than tensors{detail}, and unpickling "
                "them could run code; only plain state dicts are read") from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise PixelforgeError(f"{path}: not a readable PyTorch weights file ({first[:200]})") from None


def _tensor_mapping(data, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(data, Mapping) and not any(isinstance(v, torch.Tensor) for v in data.values()):
        for key in WRAPPER_KEYS:
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data:
        raise PixelforgeError(f"{path}: expected a mapping of parameter names to tensors (a state dict); "
                              f"found {type(data).__name__}{' (empty)' if isinstance(data, Mapping) else ''}")
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise PixelforgeError(f"{path}: expected a mapping of parameter names to tensors; "
                              f"{len(bad)} entries are not tensors: {', '.join(bad[:5])}")
    for prefix in ("module.", "_orig_mod."):  # DataParallel/DDP and torch.compile wrappers
        if all(k.startswith(prefix) for k in data):
            data = {k[len(prefix):]: v for k, v in data.items()}
    return dict(data)


# ---- fitting it into a model ----------------------------------------------------------------------

def load_pretrained(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Load ``state_dict`` into ``model``: the body strictly, the head only when its shape fits.

    Returns a report: ``loaded`` (tensors copied), ``head`` ("loaded" or why it was re-initialized),
    ``input_conv`` (how the first convolution was adapted, or None), ``renamed`` (the naming
    convention converted, or None) and ``messages`` (all of it, as sentences).
    PixelforgeError when a body tensor is missing, unexpected or of another shape.
    """
    own = model.state_dict()
    what = (getattr(model, "config", None) or {}).get("name") or type(model).__name__
    weights = dict(state_dict)
    messages: list[str] = []
    renamed = None
    timm_names = model.timm_module_names() if hasattr(model, "timm_module_names") else {}
    if timm_names and "conv_stem.weight" in weights and "conv_stem.weight" not in own:
        weights = _rename(weights, timm_names, own, what)
        renamed = "timm"
        messages.append("converted timm's parameter names to torchvision's")

    input_conv = _adapt_input_conv(model, own, weights)
    if input_conv:
        messages.append(input_conv)

    head_keys = {k for k in own if _is_head(k, head_prefixes(model))}
    missing = [k for k in own if k not in head_keys and k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in own]
    mismatched = [f"{k}: weights {tuple(weights[k].shape)}, model {tuple(own[k].shape)}"
                  for k in own if k not in head_keys and k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("with another shape", mismatched)):
            if keys:
                problems.append(f"{len(keys)} {label} ({'; '.join(keys[:4])}{'; …' if len(keys) > 4 else ''})")
        hint = " — are they weights for another architecture?" if len(missing) > len(own) // 2 else ""
        raise PixelforgeError(f"these weights do not fit {what}: {', '.join(problems)}{hint}")

    head_fits = all(k in weights and weights[k].shape == own[k].shape for k in head_keys)
    final = {}
    for key, tensor in own.items():
        if key in head_keys and not head_fits:
            final[key] = tensor  # keep the fresh head
        else:
            # old checkpoints (torchvision's 2017 ResNets) have no num_batches_tracked; keep the model's
            final[key] = weights.get(key, tensor)
    model.load_state_dict(final, strict=True)

    if head_fits or not head_keys:
        head = "loaded"
    else:
        head = _head_message(own, weights, head_keys)
    messages.append(f"head {head}")
    if renamed == "timm" and getattr(model, "timm_bn_eps", None) is not None:
        model.set_bn_eps(model.timm_bn_eps)
        messages.append(f"batch-norm eps set to {model.timm_bn_eps:g}, as timm trains this model")
    loaded = sum(1 for k in own if k in weights and (head_fits or k not in head_keys))
    return {"loaded": loaded, "head": head, "input_conv": input_conv, "renamed": renamed, "messages": messages}


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """The classifier's key prefixes: a backbone's own, else the last dense or convolution layer (so any
    zoo model can start from weights trained for another class count)."""
    own = getattr(model, "head_prefixes", None)
    if own:
        return tuple(own)
    names = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return (names[-1],) if names else ()


def _is_head(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _head_message(own: dict, weights: dict, head_keys: set) -> str:
    weight_key = next((k for k in sorted(head_keys) if k.endswith(".weight")), None)
    if weight_key is None or weight_key not in weights:
        return "re-initialized (the weights have no classifier)"
    new, old = own[weight_key].shape[0], weights[weight_key].shape[0]
    return f"re-initialized for {new} classes (weights had {old})"


def _rename(weights: dict, names: dict[str, str], own: dict, what: str) -> dict:
    """Map each ``module.tensor`` key through ``names`` (module → module); 1x1 conv kernels become
    linear weights where the model has a Linear (timm's conv_head is torchvision's classifier.0)."""
    out, unknown = {}, []
    for key, tensor in weights.items():
        module, _, leaf = key.rpartition(".")
        if module not in names:
            unknown.append(key)
            continue
        new = f"{names[module]}.{leaf}"
        if new in own and tensor.dim() == 4 and own[new].dim() == 2 and tensor.shape[2:] == (1, 1):
            tensor = tensor.flatten(1)
        out[new] = tensor
    if unknown:
        raise PixelforgeError(f"these timm weights do not fit {what}: {len(unknown)} parameters it does not "
                              f"have ({'; '.join(unknown[:4])}{'; …' if len(unknown) > 4 else ''})")
    return out


def _adapt_input_conv(model: nn.Module, own: dict, weights: dict) -> str | None:
    """Fit the first convolution's kernel to the model's input channels: summed over RGB for one
    channel, else repeated and rescaled (as timm's adapt_input_conv), so responses keep their scale."""
    name = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    key = f"{name}.weight"
    if name is None or key not in weights or key not in own:
        return None
    have, want = weights[key], own[key]
    if have.dim() != 4 or have.shape[1] == want.shape[1] or have.shape[0] != want.shape[0] \
            or have.shape[2:] != want.shape[2:]:
        return None  # nothing to adapt, or a real mismatch that the shape check reports
    channels, source = want.shape[1], have.shape[1]
    kernel = have.float()
    if channels == 1:
        kernel = kernel.sum(dim=1, keepdim=True)
        how = "summed over its"
    else:
        kernel = kernel.repeat(1, -(-channels // source), 1, 1)[:, :channels] * (source / channels)
        how = "repeated and rescaled from its"
    weights[key] = kernel.to(have.dtype)
    return f"first convolution ({key}) {how} {source} input channels to {channels}"
