"""``--engine ray`` (data.ray_engine): a local 2-CPU Ray decodes for convert and scans for the audit,
and the results equal the local engine's — the same store, byte for byte in every dataset, and the
same findings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pixelforge.errors import PixelforgeError

ray = pytest.importorskip("ray")

from pixelforge.cli import app  # noqa: E402
from pixelforge.data import ray_engine  # noqa: E402
from pixelforge.datasets.fashion import SAMPLE_PATH  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    info = ray_engine.start(num_cpus=2)
    yield info
    ray_engine.stop()


def _double(offset, x):
    return (x * 2 + offset, __import__("os").getpid())


def test_ray_map_keeps_item_order_in_groups(local_ray):
    assert local_ray["cpus"] == 2 and local_ray["nodes"] == 1
    out = list(ray_engine.ray_map(_double, range(103), context=(1,), ahead=3, group=10))
    assert [v for v, _ in out] == [x * 2 + 1 for x in range(103)]
    assert {pid for _, pid in out} != {__import__("os").getpid()}  # ran in Ray's workers, not here


def _h5_contents(path):
    import h5py

    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        out.update({f"@{k}": v for k, v in f.attrs.items()})
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        va, vb = a[key], b[key]
        assert np.array_equal(np.asarray(va), np.asarray(vb)), key


def test_convert_on_ray_writes_the_same_store(local_ray, tmp_path):
    from pixelforge.data.read import read_dataset
    from pixelforge.data.store import write_store

    manifest = read_dataset(str(SAMPLE_PATH))
    local = write_store(manifest, tmp_path / "local.h5")
    on_ray = write_store(manifest, tmp_path / "ray.h5", engine="ray")
    assert on_ray.images == local.images == 3600
    _same(_h5_contents(tmp_path / "local.h5"), _h5_contents(tmp_path / "ray.h5"))


def test_convert_cli_with_shards_on_ray(local_ray, tmp_path):
    runner = CliRunner()
    args = ["convert", str(SAMPLE_PATH), str(tmp_path / "local"), "--shards", "2", "--json"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args[:2], str(tmp_path / "ray"), *args[3:], "--engine", "ray"])
    assert result.exit_code == 0, result.output
    for name in ("shard-00000-of-00002.h5", "shard-00001-of-00002.h5"):
        _same(_h5_contents(tmp_path / "local" / name), _h5_contents(tmp_path / "ray" / name))
    index = [json.loads((tmp_path / where / "index.json").read_text()) for where in ("local", "ray")]
    assert index[0]["shards"] == index[1]["shards"] and index[0]["preprocess"] == index[1]["preprocess"]


def test_audit_on_ray_gives_the_same_findings(local_ray):
    from pixelforge.audit.report import report_dict
    from pixelforge.audit.runner import run_audit

    checks = "stats,size,imbalance,integrity,quality,duplicates,variation"
    local = report_dict(run_audit(str(SAMPLE_PATH), checks=checks, sample=1500))
    on_ray = report_dict(run_audit(str(SAMPLE_PATH), checks=checks, sample=1500, engine="ray"))
    assert json.dumps(local["findings"], sort_keys=True) == json.dumps(on_ray["findings"], sort_keys=True)
    assert local["stats"] == on_ray["stats"]


def test_engine_errors_are_one_line(monkeypatch, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["convert", str(SAMPLE_PATH), str(tmp_path / "x.h5"), "--engine", "spark"])
    assert result.exit_code == 2 and "--engine must be one of local, ray" in result.output
    result = runner.invoke(app, ["convert", str(SAMPLE_PATH), str(tmp_path / "x.h5"), "--address", "auto"])
    assert result.exit_code == 2 and "--address goes with --engine ray" in result.output
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(PixelforgeError, match=r"pip install 'pixelforge\[ray\]'"):
        ray_engine.start()
    assert not (tmp_path / "x.h5").exists()
