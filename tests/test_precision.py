"""--precision auto: bf16 where the CPU multiplies bfloat16 natively, fp32 elsewhere, recorded in model.json."""

from __future__ import annotations

import pytest

from pixelforge.train import speed
from pixelforge.train.trainer import Trainer


def cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 {flags}\n\n")
    return str(path)


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    assert speed.native_bf16(cpuinfo(tmp_path, "avx512f amx_bf16 amx_tile"))
    assert speed.native_bf16(cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert not speed.native_bf16(cpuinfo(tmp_path, "avx512f avx512bw"))
    assert not speed.native_bf16(str(tmp_path / "missing"))


def test_auto_resolves_by_the_cpu_and_is_recorded(monkeypatch):
    monkeypatch.setattr(speed, "native_bf16", lambda: True)
    trainer = Trainer("dnn", precision="auto", verbose=False)
    assert trainer.precision == "bf16"
    assert trainer.run_config()["precision"] == "bf16" and trainer.run_config()["precision_requested"] == "auto"
    assert trainer.get_config()["precision"] == "auto"  # a rebuilt trainer decides again on its own machine
    monkeypatch.setattr(speed, "native_bf16", lambda: False)
    assert Trainer("dnn", precision="auto", verbose=False).precision == "fp32"
    assert Trainer("dnn", precision="fp32", verbose=False).precision == "fp32"


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="fp32, bf16, auto"):
        Trainer("dnn", precision="fp16")
