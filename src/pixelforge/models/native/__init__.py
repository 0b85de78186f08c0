"""Small C kernels for hot layers, compiled on first use with the system C compiler.

A kernel is a plain C file next to this module, built with ``cc -O3 -march=native -fopenmp`` into a
per-user cache (``$PIXELFORGE_CACHE`` or ``~/.cache/pixelforge``) under a name that hashes the source,
flags and machine, and loaded with ctypes (no Python headers, no code from model files). Where no
compiler is found or the build fails, ``load`` returns None and callers use their torch path; set
``PIXELFORGE_NATIVE=0`` to force that.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

FLAGS = ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c11", "-ffp-contract=fast"]
LIBS = ["-lm"]  # after the source: linkers that drop unused libraries read them in order
_LOCK = threading.Lock()
_LOADED: dict[str, ctypes.CDLL | None] = {}
_ERRORS: dict[str, str] = {}
_SIGNATURES: dict[str, dict[str, tuple[list, object]]] = {}

FLOAT_P, BYTE_P, INT64_P = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_int64)


def pointer(tensor, kind=FLOAT_P):
    """A ctypes pointer to a (contiguous) tensor's data."""
    return ctypes.cast(tensor.data_ptr(), kind)


def declare(name: str, signatures: dict[str, tuple[list, object]]) -> None:
    """Record library ``name``'s C functions as {function: (argtypes, restype)}; they are set on the
    library when it loads (and at once if it already has)."""
    with _LOCK:
        _SIGNATURES[name] = signatures
        if _LOADED.get(name) is not None:
            _apply_signatures(_LOADED[name], signatures)


def _apply_signatures(lib: ctypes.CDLL, signatures: dict[str, tuple[list, object]]) -> None:
    for function, (argtypes, restype) in signatures.items():
        getattr(lib, function).argtypes = argtypes
        getattr(lib, function).restype = restype


def cache_dir() -> Path:
    root = os.environ.get("PIXELFORGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pixelforge")
    return Path(root) / "native"


def enabled() -> bool:
    return os.environ.get("PIXELFORGE_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cpu_flags() -> str:
    """The CPU's feature flags (what -march=native compiles for), so a cache shared across machines stays right."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def _source_text(source: Path) -> bytes:
    """The source and every kernel file it includes with ``#include "name.c"`` (so the build hash changes
    when an included kernel does)."""
    text = source.read_bytes()
    for included in re.findall(rb'^#include "([\w.]+)"', text, flags=re.MULTILINE):
        text += _source_text(source.with_name(included.decode()))
    return text


def _build(name: str) -> Path:
    source = Path(__file__).with_name(f"{name}.c")
    compiler = _compiler()
    if compiler is None:
        raise OSError("no C compiler (cc/gcc) found")
    key = hashlib.sha256(
        _source_text(source) + " ".join([compiler, *FLAGS, *LIBS, platform.machine(), _cpu_flags()]).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:  # built under a temporary name and renamed: a concurrent or killed build never leaves half a file
        done = subprocess.run([compiler, *FLAGS, "-o", tmp, str(source), *LIBS], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise OSError(f"{compiler} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def load(name: str) -> ctypes.CDLL | None:
    """The compiled kernel library ``name`` (built if needed), or None where it cannot be built."""
    if not enabled():
        return None
    with _LOCK:
        if name not in _LOADED:
            try:
                import torch  # noqa: F401  (torch's OpenMP runtime first: the kernel then shares its threads)

                lib = ctypes.CDLL(str(_build(name)))
                _apply_signatures(lib, _SIGNATURES.get(name, {}))
                _LOADED[name] = lib
            except (OSError, subprocess.SubprocessError) as exc:
                _LOADED[name], _ERRORS[name] = None, str(exc)
        return _LOADED[name]


def why_unavailable(name: str) -> str | None:
    """The reason ``load(name)`` returned None (None when it loaded or was not tried)."""
    return _ERRORS.get(name) if enabled() else "disabled by PIXELFORGE_NATIVE=0"
