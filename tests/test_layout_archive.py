"""Archives read in place: zip / tar / tar.gz / tar.bz2 / tar.xz, what they hold, and hostile members."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelforge import read_dataset
from pixelforge.cli import app
from pixelforge.data.layouts.archive import TarStorage, ZipStorage, open_archive, read_archive_layout
from pixelforge.data.loader import iterate_decoded
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import LayoutError, PixelforgeError
from tests.conftest import SHARED


def png_bytes(value: int, shape=(4, 4)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full(shape, value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# a small dataset as {member name: bytes}: wrapped in a folder, pre-split, 3 classes
TREE = {
    f"data/{split}/{label}/{i}.png": png_bytes(10 * i + 50 * k)
    for split, n in (("train", 3), ("test", 1))
    for k, label in enumerate(("cat", "dog", "fox"))
    for i in range(n)
}
TREE["data/README.txt"] = b"not an image"


def make_zip(path, members: dict, *, compression=zipfile.ZIP_DEFLATED, extra=None):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info, data in extra or []:
            zf.writestr(info, data)
    return path


def make_tar(path, members: dict, *, mode="w:gz", extra=()):
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"") if info.size == 0 else None)
    return path


ARCHIVE_KINDS = [("d.zip", None), ("d.tar", "w"), ("d.tar.gz", "w:gz"), ("d.tgz", "w:gz"), ("d.tar.bz2", "w:bz2"),
                 ("d.tar.xz", "w:xz")]


@pytest.fixture(params=ARCHIVE_KINDS, ids=[k for k, _ in ARCHIVE_KINDS])
def tree_archive(request, tmp_path):
    name, mode = request.param
    path = tmp_path / name
    return make_zip(path, TREE) if mode is None else make_tar(path, TREE, mode=mode)


def test_class_folders_inside_any_archive_read_in_place(tree_archive):
    m = read_dataset(tree_archive)
    assert m.layout == "archive"
    assert m.classes == ["cat", "dog", "fox"]
    assert m.counts_by_split() == {"train": {"cat": 3, "dog": 3, "fox": 3}, "test": {"cat": 1, "dog": 1, "fox": 1}}
    assert m.ignored == {"non_image": 1}
    i = m.locations.index("data/train/dog/2.png")
    np.testing.assert_array_equal(m.load(i)[:, :, 0], np.full((4, 4), 70, np.uint8))
    assert "!data/train/dog/2.png" in m.describe(i)


def test_archive_storages_pickle_without_handles_and_reopen(tree_archive):
    m = read_dataset(tree_archive)
    first = m.read(0)
    state = m.storage.__getstate__()
    assert all(state.get(k) is None for k in ("_zip", "_fd", "_stream", "_blob", "_lock"))
    clone = pickle.loads(pickle.dumps(m))
    assert clone.read(0) == first and clone.read(len(m) - 1) == m.read(len(m) - 1)


def _first_and_last(manifest):
    return manifest.read(0), manifest.read(len(manifest) - 1)


def test_archive_manifests_are_read_in_another_process(tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    manifests = [read_dataset(make_zip(tmp_path / "d.zip", TREE)), read_dataset(make_tar(tmp_path / "d.tar.gz", TREE)),
                 read_dataset(make_tar(tmp_path / "d.tar", TREE, mode="w"))]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_first_and_last, manifests))
    assert results == [_first_and_last(m) for m in manifests]


def test_compressed_tar_reads_past_the_memory_limit_by_seeking(tmp_path):
    path = make_tar(tmp_path / "d.tar.gz", TREE)
    kept = read_archive_layout(path)
    seeking = TarStorage(path, memory_limit=0)
    for loc in reversed(kept.locations):  # backwards: every read rewinds the stream
        assert seeking.read(loc) == kept.storage.read(loc)


def test_gzip_restart_points_give_random_access(tmp_path):
    from pixelforge.data.layouts.gzip_index import GzipIndexer

    rng = np.random.default_rng(0)
    data = rng.integers(0, 4, 1_000_000, dtype=np.uint8).tobytes()  # compressible, not trivial
    path = tmp_path / "d.gz"
    # two concatenated gzip members and zero padding, as some tools write them
    path.write_bytes(gzip.compress(data[:123_457], 1) + gzip.compress(data[123_457:], 1) + b"\0" * 512)
    indexer = GzipIndexer(path, spacing=20_000)
    assert b"".join(iter(lambda: indexer.read(7_000), b"")) == data
    index = indexer.index()
    assert len(index.points) > 5  # one per 64 KB input chunk once 20 KB of output went by
    for offset, size in [(0, 10), (999_990, 10), (123_400, 200), (500_000, 400_000), (999_999, 50)]:
        assert index.read(offset, size) == data[offset : offset + size]
    path.write_bytes(gzip.compress(data, 1)[:-5000])
    truncated = GzipIndexer(path)
    with pytest.raises(EOFError):
        while truncated.read(65536):
            pass


def test_open_archive_chooses_by_content_not_extension(tmp_path):
    zip_named_tar = make_zip(tmp_path / "d.tar", TREE)
    assert isinstance(open_archive(zip_named_tar), ZipStorage)
    tar_named_zip = make_tar(tmp_path / "d.zip", TREE)
    assert isinstance(open_archive(tar_named_zip), TarStorage)
    assert len(read_dataset(tar_named_zip)) == 12


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty file"), (b"hello, I am text", "neither a zip nor a tar"),
     (gzip.compress(b"label,path\n"), "gzip file that does not hold a tar"), (b"PK\x03\x04" + b"\0" * 40, "neither")],
)
def test_files_that_are_not_archives_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(content)
    with pytest.raises(LayoutError, match=message):
        read_dataset(path)


@pytest.mark.parametrize("name,mode", [("d.tar.gz", "w:gz"), ("d.tar", "w")])
def test_truncated_tar_keeps_what_was_read_and_reports_the_loss(tmp_path, name, mode):
    rng = np.random.default_rng(0)
    members = {f"r/{c}/{i}.png": png_bytes(int(rng.integers(0, 255)), (16, 16)) + rng.bytes(2000)
               for c in "ab" for i in range(20)}
    path = make_tar(tmp_path / name, members, mode=mode)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 + 700])
    m = read_dataset(path)
    assert 0 < len(m) < 40
    assert any("truncated" in s.reason for s in m.skipped)
    for i in range(len(m)):
        assert len(m.read(i)) > 0


def test_archive_with_nothing_usable_is_a_clear_error(tmp_path):
    path = make_zip(tmp_path / "d.zip", {"notes.txt": b"hi", "more/readme.md": b"x"})
    with pytest.raises(LayoutError, match="no class folders"):
        read_dataset(path)


# ---- hostile members ---------------------------------------------------------------------------------

def test_zip_members_escaping_the_root_or_links_are_refused(tmp_path):
    link = zipfile.ZipInfo("data/train/cat/link.png")
    link.external_attr = 0o120777 << 16
    members = dict(TREE, **{"../evil/cat/x.png": png_bytes(1), "/abs/cat/y.png": png_bytes(2)})
    path = make_zip(tmp_path / "d.zip", members, extra=[(link, "/etc/passwd")])
    m = read_dataset(path)
    assert len(m) == 12
    refused = {s.item.split("!", 1)[1]: s.reason for s in m.skipped}
    assert set(refused) == {"../evil/cat/x.png", "/abs/cat/y.png", "data/train/cat/link.png"}
    assert "escapes" in refused["../evil/cat/x.png"] and "absolute" in refused["/abs/cat/y.png"]
    assert "symbolic link" in refused["data/train/cat/link.png"]


def test_tar_links_devices_and_escaping_names_are_refused(tmp_path):
    def special(name, kind, linkname=""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        return info

    extra = [special("data/train/cat/sym.png", tarfile.SYMTYPE, "/etc/passwd"),
             special("data/train/cat/hard.png", tarfile.LNKTYPE, "data/train/cat/0.png"),
             special("data/train/cat/dev.png", tarfile.CHRTYPE), special("data/train/cat/fifo.png", tarfile.FIFOTYPE)]
    members = dict(TREE, **{"../../etc/cat/x.png": png_bytes(1), "/tmp/cat/y.png": png_bytes(2)})
    path = make_tar(tmp_path / "d.tar.gz", members, extra=extra)
    m = read_dataset(path)
    assert len(m) == 12 and len(m.skipped) == 6
    reasons = " | ".join(s.reason for s in m.skipped)
    for word in ("symbolic link", "hard link", "device, fifo", "escapes", "absolute"):
        assert word in reasons
    assert any("6 archive member(s) refused" in n for n in m.notes)


def test_zip_bomb_is_stopped_by_the_total_size_limit(tmp_path):
    path = make_zip(tmp_path / "bomb.zip", {f"b/{c}/{c}.png": b"\0" * 20_000_000 for c in "ab"})
    assert path.stat().st_size < 200_000
    with pytest.raises(LayoutError, match="archive bomb"):
        read_dataset(path, max_total_bytes=10_000_000)


def test_oversized_members_are_refused_as_skips(tmp_path):
    members = dict(TREE, **{"data/train/cat/huge.png": b"\0" * 300_000})
    for path in (make_zip(tmp_path / "d.zip", members), make_tar(tmp_path / "d.tar.gz", members)):
        m = read_dataset(path, max_member_bytes=100_000)
        assert len(m) == 12 and "over the member limit" in m.skipped[0].reason


def test_tar_bomb_is_stopped_by_the_total_size_limit(tmp_path):
    path = make_tar(tmp_path / "bomb.tar.gz", {f"b/{c}/{c}.png": b"\0" * 20_000_000 for c in "ab"})
    with pytest.raises(LayoutError, match="archive bomb"):
        read_dataset(path, max_total_bytes=10_000_000)


def test_corrupt_zip_member_is_a_counted_skip_in_the_loader(tmp_path):
    members = {f"d/{c}/{i}.png": png_bytes(i + 1) for c in "ab" for i in range(3)}
    path = make_zip(tmp_path / "d.zip", members, compression=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    target = members["d/a/1.png"]
    at = raw.find(target)
    raw[at + len(target) // 2] ^= 0xFF  # flip a byte inside one stored member: its CRC no longer matches
    path.write_bytes(bytes(raw))
    m = read_dataset(path)
    skipped = []
    batches = list(iterate_decoded(m, Preprocess(), batch_size=4, skipped=skipped, workers=2))
    assert sum(len(b[0]) for b in batches) == 5
    assert len(skipped) == 1 and "d/a/1.png" in skipped[0].item
    with pytest.raises(PixelforgeError, match="corrupt archive member"):
        m.read(m.locations.index("d/a/1.png"))


def test_truncated_png_member_is_a_counted_skip(tmp_path):
    members = {f"d/{c}/{i}.png": png_bytes(i + 1) for c in "ab" for i in range(2)}
    members["d/a/0.png"] = members["d/a/0.png"][:20]
    members["d/b/0.png"] = b""
    m = read_dataset(make_tar(tmp_path / "d.tar.gz", members))
    skipped = []
    list(iterate_decoded(m, Preprocess(), batch_size=8, skipped=skipped, workers=1))
    assert sorted(s.item.rsplit("!", 1)[1] for s in skipped) == ["d/a/0.png", "d/b/0.png"]


# ---- tables and arrays inside archives ---------------------------------------------------------------

def test_csv_inside_an_archive_resolves_paths_from_its_folder(tmp_path):
    members = {"set/imgs/1.png": png_bytes(1), "set/imgs/2.png": png_bytes(2), "set/imgs/3.png": png_bytes(3),
               "set/labels.csv": b"filename,label\nimgs/1.png,a\nimgs/2.png,b\nimgs/3.png,\nimgs/9.png,a\n"
                                 b"../../etc/passwd,a\n"}
    for path in (make_zip(tmp_path / "d.zip", members), make_tar(tmp_path / "d.tar.gz", members)):
        m = read_dataset(path)
        assert m.locations == ["set/imgs/1.png", "set/imgs/2.png"] and m.classes == ["a", "b"]
        assert len(m.skipped) == 3
        assert any("file not found" in s.reason for s in m.skipped)
        assert any(s.reason.startswith("refused:") for s in m.skipped)
        assert m.load(1)[0, 0, 0] == 2


def test_split_named_tables_inside_an_archive_are_combined(tmp_path):
    members = {f"imgs/{i}.png": png_bytes(i) for i in range(4)}
    members["train.csv"] = b"filepath,label\nimgs/0.png,x\nimgs/1.png,y\n"
    members["test.json"] = json.dumps([{"image": "imgs/2.png", "label": "x"}, {"image": "imgs/3.png", "label": "y"}]).encode()
    m = read_dataset(make_zip(tmp_path / "d.zip", members))
    assert m.counts_by_split() == {"train": {"x": 1, "y": 1}, "test": {"x": 1, "y": 1}}


def test_gzip_tables_inside_an_archive_read_like_plain_ones(tmp_path):
    members = {f"imgs/{i}.png": png_bytes(i) for i in range(4)}
    members["train.csv.gz"] = gzip.compress(b"filepath,label\nimgs/0.png,x\nimgs/1.png,y\n")
    members["test.tsv.gz"] = gzip.compress(b"filepath\tlabel\nimgs/2.png\tx\n") + gzip.compress(b"imgs/3.png\ty\n")
    for path in (make_zip(tmp_path / "d.zip", members), make_tar(tmp_path / "d.tar.gz", members)):
        m = read_dataset(path)
        assert m.counts_by_split() == {"train": {"x": 1, "y": 1}, "test": {"x": 1, "y": 1}}
        assert m.load(m.locations.index("imgs/3.png"))[0, 0, 0] == 3


@pytest.mark.parametrize("member,message", [
    (gzip.compress(b"filepath,label\nimgs/0.png,x\n")[:-6], "not a complete gzip file"),
    (b"filepath,label\nimgs/0.png,x\n", "not a gzip file"),
    (b"", "empty file"),
])
def test_bad_gzip_table_inside_an_archive_is_a_clear_error(tmp_path, member, message):
    path = make_zip(tmp_path / "d.zip", {"imgs/0.png": png_bytes(0), "labels.csv.gz": member})
    with pytest.raises(LayoutError, match=message):
        read_dataset(path)
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_gzip_table_that_decompresses_past_the_limit_is_refused(tmp_path, monkeypatch):
    from pixelforge.data.layouts import csv_table

    monkeypatch.setattr(csv_table, "MAX_TABLE_BYTES", 1000)
    bomb = gzip.compress(b"filepath,label\n" + b"imgs/0.png,x\n" * 500)
    path = make_zip(tmp_path / "d.zip", {"imgs/0.png": png_bytes(0), "labels.csv.gz": bomb})
    with pytest.raises(LayoutError, match="refused"):
        read_dataset(path)


def test_hdf5_inside_an_archive_says_to_extract_it(tmp_path):
    h5py = pytest.importorskip("h5py")
    store = tmp_path / "x.h5"
    with h5py.File(store, "w") as f:
        f["images"] = np.zeros((2, 4, 4), np.uint8)
        f["labels"] = np.array([0, 1])
    path = make_zip(tmp_path / "d.zip", {"data/x.h5": store.read_bytes()})
    for options in ({}, {"inner": "data/x.h5"}):
        with pytest.raises(LayoutError, match="extract it and read the .h5 file directly"):
            read_dataset(path, **options)


def test_inner_member_can_be_chosen(tmp_path):
    members = dict(TREE, **{"data/only_cats.csv": b"filepath,label\ntrain/cat/0.png,cat\n"})
    path = make_tar(tmp_path / "d.tar", members, mode="w")
    assert read_dataset(path).num_classes == 3
    m = read_dataset(path, inner="data/only_cats.csv")
    assert m.locations == ["data/train/cat/0.png"]
    with pytest.raises(LayoutError, match="no member"):
        read_dataset(path, inner="nope.csv")


def test_embedded_pixel_csv_and_npz_inside_archives(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 3), dtype=np.uint8)
    text = "label," + ",".join(f"pixel{i}" for i in range(9)) + "\n"
    text += "".join(f"{k % 2}," + ",".join(map(str, r)) + "\n" for k, r in enumerate(x.reshape(4, -1)))
    m = read_dataset(make_zip(tmp_path / "px.zip", {"px.csv": text.encode()}))
    np.testing.assert_array_equal(m.storage.images, x)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=np.array([0, 1, 1, 1]))
    m = read_dataset(make_tar(tmp_path / "n.tar.gz", {"arrays/d.npz": buf.getvalue()}))
    assert m.class_counts() == {"0": 1, "1": 3}


def test_one_class_archive_reads_with_a_note(tmp_path):
    m = read_dataset(make_zip(tmp_path / "d.zip", {"cat/1.png": png_bytes(1), "cat/2.png": png_bytes(2)}))
    assert m.classes == ["cat"] and any("only one class" in n for n in m.notes)


# ---- the real Fashion-MNIST archive ------------------------------------------------------------------

@pytest.fixture(scope="session")
def fashion_mnist_archive():
    path = SHARED / "fashion-mnist.tar.gz"
    if not path.exists():
        pytest.skip(f"{path} is absent (real datasets live in ../shared/datasets)")
    return path


def test_cli_info_reads_fashion_mnist_tar_gz_directly(fashion_mnist_archive):
    result = CliRunner().invoke(app, ["info", str(fashion_mnist_archive), "--json", "--sizes", "50"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layout"] == "archive" and report["images"] == 70_000
    assert report["splits"] == {"train": 60_000, "test": 10_000}
    assert report["counts_by_split"]["train"] == {str(k): 6000 for k in range(10)}
    assert report["counts_by_split"]["test"] == {str(k): 1000 for k in range(10)}
    assert report["image_sample"]["sizes"] == {"28x28": 50} and not report["skipped"]


def test_cli_bad_archive_exits_2_with_one_line(tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"this is no zip")
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "broken.zip" in result.stderr


@pytest.mark.slow
def test_every_fashion_mnist_member_decodes_like_the_extracted_png(fashion_mnist_archive, fashion_mnist_dir):
    m = read_dataset(fashion_mnist_archive)
    skipped = []
    total = 0
    for batch, _, rows in iterate_decoded(m, Preprocess(), batch_size=4096, skipped=skipped):
        total += len(batch)
        i = int(rows[-1])
        on_disk = np.asarray(Image.open(fashion_mnist_dir.parent / m.locations[i]))
        np.testing.assert_array_equal(batch[-1][:, :, 0], on_disk)
    assert total == 70_000 and not skipped


def test_mnist_train_csv_read_inside_the_real_archive():
    archive = SHARED / "mnist.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (real datasets live in ../shared/datasets)")
    m = read_dataset(archive, inner="mnist/train.csv")
    assert len(m) == 60_000 and m.num_classes == 10 and not m.skipped
    assert m.locations[0].startswith("mnist/train/") and m.load(0).shape == (28, 28, 1)


def test_unknown_options_are_clear_errors(tmp_path):
    path = make_zip(tmp_path / "d.zip", TREE)
    with pytest.raises(LayoutError, match="take no option 'colour'"):
        read_dataset(path, colour="red")
    with_table = make_zip(tmp_path / "t.zip", {"imgs/1.png": png_bytes(1), "t.csv": b"filepath,label\nimgs/1.png,a\n"})
    with pytest.raises(LayoutError, match="layout 'csv' has no option 'colour'; its options are path_column"):
        read_dataset(with_table, colour="red")
    result = CliRunner().invoke(app, ["info", str(with_table), "-o", "colour=red"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_loader_worker_processes_read_archive_members(tmp_path):
    from pixelforge.data.loader import load_arrays

    for path in (make_zip(tmp_path / "d.zip", TREE), make_tar(tmp_path / "d.tar.gz", TREE)):
        m = read_dataset(path)
        x_threads, y_threads = load_arrays(m, Preprocess(), executor="thread", workers=2)
        x_procs, y_procs = load_arrays(m, Preprocess(), executor="process", workers=2)
        np.testing.assert_array_equal(x_threads, x_procs)
        np.testing.assert_array_equal(y_threads, y_procs)
