"""The loader: same batches in the same order whatever the executor, every skip counted."""

from __future__ import annotations

import numpy as np
import pytest

from pixelforge import read_dataset
from pixelforge.data.loader import choose_executor, chunk_size, iterate_decoded, load_arrays
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from tests.conftest import write_png


@pytest.fixture
def tree(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "t"
    for label in ("a", "b", "c"):
        for i in range(23):
            write_png(root / label / f"{i:02d}.png", rng.integers(0, 256, (9, 7), dtype=np.uint8))
    (root / "b" / "05x.png").write_bytes(b"")  # sorted between 05 and 06
    (root / "c" / "bad.png").write_bytes(b"GIF89a nonsense")
    return root


def _collect(manifest, **kwargs):
    skipped = []
    out = list(iterate_decoded(manifest, Preprocess(), skipped=skipped, **kwargs))
    return out, skipped


@pytest.mark.parametrize(("executor", "workers", "chunk_rows"),
                         [("thread", 1, 5), ("thread", 2, 3), ("process", 2, 7), ("auto", 2, None)])
def test_every_executor_gives_the_same_batches_in_row_order(tree, executor, workers, chunk_rows):
    m = read_dataset(tree)
    reference, ref_skips = _collect(m, batch_size=16, workers=1)
    out, skips = _collect(m, batch_size=16, workers=workers, executor=executor, chunk_rows=chunk_rows)
    assert [len(b) for b, _, _ in out] == [16, 16, 16, 16, 5]  # 69 decodable of 71
    for (x, y, rows), (rx, ry, rrows) in zip(out, reference, strict=True):
        assert np.array_equal(x, rx) and np.array_equal(y, ry) and np.array_equal(rows, rrows)
    all_rows = np.concatenate([rows for _, _, rows in out])
    assert np.all(np.diff(all_rows) > 0)
    assert sorted(s.item.rsplit("/", 1)[-1] for s in skips) == ["05x.png", "bad.png"] == sorted(
        s.item.rsplit("/", 1)[-1] for s in ref_skips)
    assert all(not s.reason.startswith("/") for s in skips)  # the reason does not repeat the file name


def test_labels_and_rows_match_the_manifest(tree):
    m = read_dataset(tree)
    for x, y, rows in iterate_decoded(m, Preprocess(), batch_size=10, executor="process", workers=2, chunk_rows=4):
        assert np.array_equal(y, m.label_indices()[rows])
        for img, i in zip(x, rows, strict=True):
            assert np.array_equal(img, m.load(int(i)))


def test_indices_pick_and_order_rows(tree):
    m = read_dataset(tree)
    order = np.array([40, 3, 17, 3])
    x, y, rows = next(iterate_decoded(m, Preprocess(), batch_size=8, indices=order, workers=2))
    assert list(rows) == [40, 3, 17, 3]


def test_fail_names_the_first_broken_file(tree):
    m = read_dataset(tree)
    with pytest.raises(PixelforgeError, match=r"05x\.png: empty file"):
        for _ in iterate_decoded(m, Preprocess(), on_error="fail", workers=2, executor="process", chunk_rows=8):
            pass


def test_mixed_shapes_name_the_odd_file(tmp_path):
    write_png(tmp_path / "m" / "a" / "0.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "m" / "a" / "1.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "m" / "b" / "0.png", np.zeros((4, 4, 3), np.uint8))
    m = read_dataset(tmp_path / "m")
    for chunk_rows in (1, 8):
        with pytest.raises(PixelforgeError, match=r"b/0\.png: shape \(4, 4, 3\).*give a size"):
            list(iterate_decoded(m, Preprocess(), chunk_rows=chunk_rows, workers=1))
    x, _ = load_arrays(m, Preprocess(channels=1))
    assert x.shape == (3, 4, 4, 1)


def test_auto_executor_policy(tree, monkeypatch):
    import pixelforge.data.loader as loader

    monkeypatch.setattr(loader, "fork_is_safe", lambda: True)
    m = read_dataset(tree)
    assert choose_executor(m, 10, 2) == "thread"  # too few rows to pay for processes
    assert choose_executor(m, 100_000, 2) == "process"  # many small files
    assert choose_executor(m, 100_000, 1) == "thread"
    from pixelforge.datasets import load_fashion_sample

    assert choose_executor(load_fashion_sample(), 100_000, 2) == "thread"  # arrays: nothing to decode
    with pytest.raises(ValueError, match="executor must be"):
        choose_executor(m, 10, 2, "gpu")


def test_chunk_size_bounds_bytes_in_flight():
    assert chunk_size(Preprocess(), "process") == 256
    assert chunk_size(Preprocess(size=(512, 512), channels=3), "process") * 512 * 512 * 3 <= 8 << 20
    assert chunk_size(Preprocess(size=(28, 28), channels=1), "thread") == 32


def test_load_arrays_with_nothing_decodable(tmp_path):
    (tmp_path / "e" / "a").mkdir(parents=True)
    (tmp_path / "e" / "a" / "x.png").write_bytes(b"")
    with pytest.raises(PixelforgeError, match="no image could be decoded"):
        load_arrays(read_dataset(tmp_path / "e"), Preprocess())


def test_no_fork_while_another_thread_runs(tree):
    """A child forked while another thread is inside OpenCV can hang: auto then uses threads."""
    import threading

    # Other tests may leave idle pools (e.g. the augment engine's threads): compare with this baseline.
    alone = threading.active_count() == 1
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert choose_executor(read_dataset(tree), 100_000, 2) == "thread"
    finally:
        release.set()
        other.join()
    assert choose_executor(read_dataset(tree), 100_000, 2) == ("process" if alone else "thread")


def test_explicit_processes_work_after_opencv_started_its_pool(tree):
    import cv2

    cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (999, 999), interpolation=cv2.INTER_AREA)
    m = read_dataset(tree)
    x, _ = load_arrays(m, Preprocess(size=(5, 5)), executor="process", workers=2, chunk_rows=8)
    assert x.shape == (69, 5, 5, 1)
