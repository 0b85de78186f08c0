"""Fuzzed readers: mutated images, tables, archives and HDF5 files, through read_dataset and the loader.

The property, for every reader: a call ends in a Manifest whose skips are counted and named, or in one
PixelforgeError — never another exception, never a hang, never an image silently dropped (rows in =
rows read + rows skipped, and every row read decodes or is a named skip).

The seeds are real files from ../shared/datasets when present (Fashion-MNIST PNGs, clothing5 JPEGs),
else generated images. The default suite runs a few examples per reader; ``make test-fuzz`` runs many
(``PIXELFORGE_FUZZ_EXAMPLES``, default 300 there). Failing inputs found by fuzzing are kept as explicit
regression tests at the end of this file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import tarfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pixelforge.data.decode import decode_image
from pixelforge.data.loader import iterate_decoded
from pixelforge.data.preprocess import Preprocess
from pixelforge.data.read import read_dataset
from pixelforge.errors import DecodeError, PixelforgeError
from tests.conftest import SHARED

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("PIXELFORGE_FUZZ_EXAMPLES", "8"))
fuzzed = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 8,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                         HealthCheck.data_too_large])
CASE_SECONDS = 20  # one case (read + decode every row) that takes longer counts as a hang


class Hang(Exception):
    pass


@contextmanager
def time_box(seconds: int = CASE_SECONDS):
    """Fail a case that runs too long (a reader stuck on a pipe, a decoder in a loop)."""
    def alarm(signum, frame):
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_source(source, rows_in: int | None = None, **options):
    """Read ``source`` and decode every row; returns the Manifest (None after a PixelforgeError)."""
    with time_box():
        try:
            manifest = read_dataset(source, **options)
        except PixelforgeError:
            return None
        if rows_in is not None:
            assert len(manifest) + len(manifest.skipped) + sum(manifest.ignored.values()) == rows_in
        skipped = []
        decoded = 0
        spec = Preprocess(size=(8, 8), channels=3)
        try:
            for batch, labels, rows in iterate_decoded(manifest, spec, 16, skipped=skipped, workers=1):
                assert batch.dtype in (np.uint8, np.uint16) and batch.shape[1:] == (8, 8, 3)
                assert len(labels) == len(rows) == len(batch)
                decoded += len(rows)
        except PixelforgeError:
            return manifest
        assert decoded + len(skipped) == len(manifest), "an image was dropped without a skip"
        assert all(s.item and s.reason for s in skipped)
        return manifest


# ---- seed images -------------------------------------------------------------------------------
def _generated(fmt: str, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(len(fmt))
    img = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def _real_seeds() -> list[bytes]:
    seeds = []
    archive = SHARED / "fashion-mnist.tar.gz"
    if archive.exists():
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.name.endswith(".png"):
                    seeds.append(tar.extractfile(member).read())
                    if len(seeds) == 3:
                        break
    clothing = SHARED / "clothing5" / "test"
    if clothing.is_dir():
        jpegs = sorted(clothing.rglob("*.jpg"))[:2]
        seeds.extend(p.read_bytes() for p in jpegs if p.stat().st_size < 200_000)
    return seeds


SEEDS = _real_seeds() + [_generated("PNG"), _generated("JPEG"), _generated("GIF", "P"), _generated("TIFF"),
                         _generated("PNG", "LA"), _generated("BMP")]
EXTENSIONS = {b"\x89PNG": ".png", b"\xff\xd8": ".jpg", b"GIF8": ".gif", b"II*\x00": ".tif", b"BM": ".bmp"}


def _extension(data: bytes) -> str:
    return next((ext for magic, ext in EXTENSIONS.items() if data.startswith(magic)), ".png")


@st.composite
def mutated_images(draw) -> bytes:
    """A seed image with byte flips, a truncation, an insertion or a splice of another seed."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "splice", "zero"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "splice":
            data[position:] = draw(st.sampled_from(SEEDS))[position:]
        elif kind == "zero":
            data[position : position + 16] = bytes(min(16, len(data) - position))
    return bytes(data)


@fuzzed
@given(st.lists(mutated_images(), min_size=1, max_size=4))
def test_mutated_images_decode_or_raise_decode_error(blobs):
    for data in blobs:
        with time_box():
            for backend in ("pillow", "opencv"):
                try:
                    arr = decode_image(data, backend=backend)
                except DecodeError:
                    continue
                assert arr.dtype in (np.uint8, np.uint16) and arr.ndim == 3 and arr.size > 0


@fuzzed
@given(blobs=st.lists(mutated_images(), min_size=1, max_size=6))
def test_a_folder_of_mutated_images_is_read_with_every_image_counted(tmp_path_factory, blobs):
    root = tmp_path_factory.mktemp("tree")
    for i, data in enumerate(blobs):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        (folder / f"{i}{_extension(data)}").write_bytes(data)
    check_source(root, rows_in=len(blobs))


# ---- tables ------------------------------------------------------------------------------------
ODD_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
FIELD = st.one_of(ODD_TEXT, st.just(""), st.just("\x00"), st.just('"'), st.just("a,b"), st.just("x\ny"),
                  st.builds(lambda n: "z" * n, st.integers(10_000, 200_000)),
                  st.sampled_from(["good.png", "missing.png", "../escape.png", "/etc/passwd", "sub/good.png",
                                   "http://example.invalid/x.png", "good", "bad.png"]))


def _image_folder(root: Path) -> None:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for name in ("good.png", "sub/good.png"):
        (root / name).write_bytes(SEEDS[0])
    (root / "bad.png").write_bytes(SEEDS[0][:40])


@fuzzed
@given(rows=st.lists(st.tuples(FIELD, FIELD), max_size=8), delimiter=st.sampled_from([",", "\t", ";", "|"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]),
       quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, csv.QUOTE_NONE]),
       blank_lines=st.integers(0, 3), ragged=st.booleans(), suffix=st.sampled_from([".csv", ".tsv", ".csv.gz"]))
def test_random_csv_tables_end_in_a_manifest_or_one_error(tmp_path_factory, rows, delimiter, encoding, quoting,
                                                          blank_lines, ragged, suffix):
    root = tmp_path_factory.mktemp("csv")
    _image_folder(root)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, escapechar="\\")
    writer.writerow(["filename", "label"])
    for i, (path, label) in enumerate(rows):
        writer.writerow([path, label, "extra"] if ragged and i % 2 else [path, label])
    text = buffer.getvalue() + "\n" * blank_lines
    data = text.encode(encoding, "replace")
    table = root / f"table{suffix}"
    table.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    check_source(table)


@fuzzed
@given(rows=st.lists(st.tuples(st.sampled_from(["good.png", "missing.png", "../up.png", "bad.png", "", "sub/good.png"]),
                               st.sampled_from(["cat", "dog", "", " ", "ça", "a\tb"]),
                               st.booleans()), min_size=1, max_size=10))
def test_every_row_of_a_plain_csv_is_read_or_skipped(tmp_path_factory, rows):
    root = tmp_path_factory.mktemp("plain")
    _image_folder(root)
    lines = ["filename,label"] + [f'"{p}","{label}"' + (",extra" if ragged else "") for p, label, ragged in rows]
    table = root / "table.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    check_source(table, rows_in=len(rows))


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT
    | st.sampled_from(["good.png", "missing.png", "../x.png", "bad.png"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["filename", "label", "path", "image", "class", "split", "x"]) | ODD_TEXT, inner, max_size=4),
    max_leaves=20,
)


@fuzzed
@given(doc=JSON_VALUE, encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]), cut=st.integers(0, 5))
def test_random_json_documents_end_in_a_manifest_or_one_error(tmp_path_factory, doc, encoding, cut):
    root = tmp_path_factory.mktemp("json")
    _image_folder(root)
    text = json.dumps(doc, ensure_ascii=False)
    data = text.encode(encoding, "replace")
    (root / "table.json").write_bytes(data[: len(data) - cut] if cut else data)
    check_source(root / "table.json")


# ---- archives ----------------------------------------------------------------------------------
MEMBER_NAME = st.one_of(
    st.sampled_from(["cat/a.png", "dog/b.jpg", "cat/a.png", "../evil.png", "/abs/x.png", "c\\d/e.png",
                     "cat/", "cat//x.png", "./cat/./y.png", "dog/" + "n" * 200 + ".png", "ça/é.png",
                     "cat/inner.zip", "cat/.hidden.png", "__MACOSX/cat/a.png", "labels.csv", "x.json"]),
    st.builds(lambda a, b: f"{a}/{b}.png", ODD_TEXT, ODD_TEXT),
)


def _inner_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as inner:
        inner.writestr("cat/in.png", SEEDS[0])
        inner.writestr("dog/in.png", SEEDS[0])
    return buffer.getvalue()


@fuzzed
@given(members=st.lists(st.tuples(MEMBER_NAME, st.one_of(mutated_images(), st.sampled_from(SEEDS),
                                                         st.just(b""), st.just(b"filename,label\ncat/a.png,cat\n"))),
                        min_size=1, max_size=6),
       kind=st.sampled_from(["zip", "tar", "tar.gz"]), links=st.booleans(), nested=st.booleans())
def test_random_archives_end_in_a_manifest_or_one_error(tmp_path_factory, members, kind, links, nested):
    root = tmp_path_factory.mktemp("archive")
    path = root / f"data.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members:
                if name.split("\x00")[0] in ("", "/"):
                    continue  # zipfile cuts a name at NUL and cannot write an empty one
                archive.writestr(name, data)  # duplicates allowed: zip keeps both entries
            if nested:
                archive.writestr("cat/inner.zip", _inner_zip())
    else:
        with tarfile.open(path, "w:gz" if kind.endswith("gz") else "w") as archive:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            if links:
                for link_type, target in ((tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, members[0][0]),
                                          (tarfile.FIFOTYPE, ""), (tarfile.SYMTYPE, "loop.png")):
                    info = tarfile.TarInfo(f"cat/link{link_type.decode()}.png" if link_type != tarfile.SYMTYPE
                                           or target != "loop.png" else "cat/loop.png")
                    info.type, info.linkname = link_type, target
                    archive.addfile(info)
            if nested:
                info = tarfile.TarInfo("cat/inner.zip")
                inner = _inner_zip()
                info.size = len(inner)
                archive.addfile(info, io.BytesIO(inner))
    check_source(path)


@fuzzed
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=6),
       fmt=st.sampled_from(["zip", "tar.gz", "csv.gz", "h5", "npz"]))
def test_byte_flipped_containers_end_in_a_manifest_or_one_error(tmp_path_factory, flips, fmt):
    root = tmp_path_factory.mktemp("flipped")
    _image_folder(root)
    path = root / f"data.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("cat/a.png", SEEDS[0])
            archive.writestr("dog/b.png", SEEDS[0])
    elif fmt == "tar.gz":
        with tarfile.open(path, "w:gz") as archive:
            for name in ("cat/a.png", "dog/b.png"):
                info = tarfile.TarInfo(name)
                info.size = len(SEEDS[0])
                archive.addfile(info, io.BytesIO(SEEDS[0]))
    elif fmt == "csv.gz":
        path.write_bytes(gzip.compress(b"filename,label\ngood.png,cat\nsub/good.png,dog\n"))
    elif fmt == "npz":
        np.savez(path, x=np.zeros((4, 6, 6), np.uint8), y=np.array([0, 1, 0, 1]))
    else:
        with h5py.File(path, "w") as f:
            f["images"] = np.zeros((4, 6, 6), np.uint8)
            f["labels"] = np.array([0, 1, 0, 1])
    data = bytearray(path.read_bytes())
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    path.write_bytes(bytes(data))
    check_source(path)


# ---- HDF5 with odd dtypes and shapes -------------------------------------------------------------
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int64, np.float32, np.float64, np.bool_, np.complex64])
SHAPES = st.lists(st.integers(0, 7), min_size=0, max_size=5).map(tuple)


@fuzzed
@given(image_dtype=DTYPES, image_shape=SHAPES, label_dtype=st.one_of(DTYPES, st.just("str")), n_labels=st.integers(0, 8),
       grouped=st.booleans())
def test_hdf5_files_with_odd_dtypes_and_shapes_end_in_a_manifest_or_one_error(
        tmp_path_factory, image_dtype, image_shape, label_dtype, n_labels, grouped):
    path = tmp_path_factory.mktemp("h5") / "data.h5"
    images = (np.arange(int(np.prod(image_shape)), dtype=np.int64) % 7).astype(image_dtype).reshape(image_shape)
    with h5py.File(path, "w") as f:
        if grouped:
            f.create_group("cat")["x"] = images
            f.create_group("dog")["y"] = images
        else:
            f["images"] = images
            if label_dtype == "str":
                f["labels"] = np.array([f"c{i % 3}" for i in range(n_labels)], dtype=object).astype("S")
            else:
                f["labels"] = (np.arange(n_labels) % 2).astype(label_dtype)
    check_source(path)


# ---- regression tests for inputs fuzzing found ------------------------------------------------------
def test_a_tiff_claiming_a_huge_width_is_a_decode_error_with_opencv():
    data = bytearray(_generated("TIFF"))
    width_tag = data.index(b"\x00\x01\x04\x00\x01\x00\x00\x00")  # tag 256 (width), LONG, count 1
    data[width_tag + 10] = 0x10  # found by fuzzing: width 1,048,586 made cv2.imdecode assert, not fail
    for backend in ("opencv", "pillow"):
        with pytest.raises(DecodeError):
            decode_image(bytes(data), backend=backend)


def test_an_hdf5_file_with_a_flipped_dataspace_bit_is_one_layout_error(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((4, 6, 6), np.uint8)
        f["labels"] = np.array([0, 1, 0, 1])
    data = bytearray(path.read_bytes())
    data[int(0.375 * len(data))] ^= 1  # found by fuzzing: h5py raised KeyError opening "images"
    path.write_bytes(bytes(data))
    with pytest.raises(PixelforgeError):
        read_dataset(path)


def test_an_empty_image_in_an_hdf5_class_group_is_a_named_skip(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:  # found by fuzzing: a (0, 0) dataset reached cv2.resize
        f.create_group("cat")["x"] = np.zeros((0, 0), np.uint8)
        f.create_group("dog")["y"] = np.zeros((4, 4), np.uint8)
    manifest = check_source(path)
    skipped = []
    list(iterate_decoded(manifest, Preprocess(size=(8, 8)), skipped=skipped, workers=1))
    assert [s.reason for s in skipped] == ["image has no pixels (shape (0, 0))"]


@pytest.mark.parametrize("fmt, where, bit", [("zip", 0.904296875, 6), ("npz", 0.830078125, 0)])
def test_a_zip_or_npz_with_a_flipped_version_or_method_is_one_error(tmp_path_factory, fmt, where, bit):
    # found by fuzzing: zipfile raised NotImplementedError ("zip file version 8.4", "compression method")
    test_byte_flipped_containers_end_in_a_manifest_or_one_error.hypothesis.inner_test(
        tmp_path_factory, [(where, bit)], fmt)
