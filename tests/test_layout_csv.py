"""CSV layout: path columns, URL columns, embedded pixels, and every kind of bad row or file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pixelforge import read_dataset
from pixelforge.cli import app
from pixelforge.data.layouts.csv_table import read_csv_layout
from pixelforge.data.loader import iterate_decoded
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import LayoutError, PixelforgeError
from tests.conftest import write_png


@pytest.fixture
def table_dir(tmp_path):
    """images/<label>_<i>.png for cat x3, dog x2 (flat folder: labels only in the CSV)."""
    rng = np.random.default_rng(1)
    for label, n in (("cat", 3), ("dog", 2)):
        for i in range(n):
            write_png(tmp_path / "images" / f"{label}_{i}.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    return tmp_path


def write(path, text: str):
    path.write_text(text)
    return path


def rows(*names):
    return "".join(f"images/{n}.png,{n.split('_')[0]}\n" for n in names)


def test_path_column_relative_to_the_csv_folder(table_dir):
    csv = write(table_dir / "labels.csv", "filepath,label\n" + rows("cat_0", "cat_1", "cat_2", "dog_0", "dog_1"))
    m = read_dataset(csv)
    assert m.layout == "csv"
    assert m.class_counts() == {"cat": 3, "dog": 2}
    assert m.load(0).shape == (6, 5, 3)
    assert not m.skipped and not m.is_split


def test_csv_is_found_from_another_working_folder(table_dir, monkeypatch, tmp_path_factory):
    csv = write(table_dir / "labels.csv", "filepath,label\n" + rows("cat_0", "dog_0"))
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert len(read_dataset(str(csv))) == 2


@pytest.mark.parametrize(
    "header,delimiter,suffix",
    [("filename,class", ",", ".csv"), ("image;category", ";", ".csv"), ("Path\tTarget", "\t", ".tsv"),
     ("img|y", "|", ".csv")],
)
def test_column_names_and_delimiters_are_detected(table_dir, header, delimiter, suffix):
    body = "".join(f"images/{n}.png{delimiter}{n[:3]}\n" for n in ("cat_0", "dog_0", "dog_1"))
    m = read_dataset(write(table_dir / f"t{suffix}", header + "\n" + body))
    assert m.class_counts() == {"cat": 1, "dog": 2}


def test_columns_can_be_named_explicitly(table_dir):
    csv = write(table_dir / "t.csv", "id,pic,kind,label\n1,images/cat_0.png,feline,x\n2,images/dog_0.png,canine,x\n")
    m = read_dataset(csv, path_column="pic", label_column="KIND")
    assert m.classes == ["canine", "feline"]
    with pytest.raises(LayoutError, match="no label column 'nope'"):
        read_dataset(csv, path_column="pic", label_column="nope")


def test_split_column_sets_splits(table_dir):
    csv = write(table_dir / "t.csv", "file,label,subset\nimages/cat_0.png,cat,train\nimages/cat_1.png,cat,val\n"
                "images/dog_0.png,dog,training\nimages/dog_1.png,dog,test\n")
    m = read_dataset(csv)
    assert m.split_names == ["train", "validation", "test"]
    assert m.counts_by_split()["train"] == {"cat": 1, "dog": 1}


def test_missing_files_and_empty_labels_are_counted_skips_with_reasons(table_dir):
    csv = write(table_dir / "t.csv", "filepath,label\nimages/cat_0.png,cat\nimages/ghost.png,cat\n"
                "images/dog_0.png,\nimages/dog_1.png,dog\n,dog\n")
    m = read_dataset(csv)
    assert len(m) == 2
    reasons = {s.item.rsplit(" ", 1)[-1]: s.reason for s in m.skipped}
    assert "file not found" in reasons["3"] and "ghost.png" in reasons["3"]
    assert "empty value in label column" in reasons["4"]
    assert "empty value in column 'filepath'" in reasons["6"]
    assert any("3 row(s) skipped" in n for n in m.notes)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "images/../../outside.png", "C:/Windows/x.png"])
def test_paths_escaping_the_root_are_refused(table_dir, bad):
    (table_dir.parent / "outside.png").write_bytes(b"x")
    csv = write(table_dir / "t.csv", f"filepath,label\nimages/cat_0.png,cat\n{bad},dog\n")
    m = read_dataset(csv)
    assert m.locations == ["images/cat_0.png"]
    assert len(m.skipped) == 1 and m.skipped[0].reason.startswith("refused:")


def test_one_class_dataset_reads_with_a_note(table_dir):
    m = read_dataset(write(table_dir / "t.csv", "filepath,label\n" + rows("cat_0", "cat_1")))
    assert m.classes == ["cat"]
    assert any("only one class" in n for n in m.notes)


def test_numeric_labels_sort_numerically(table_dir):
    body = "".join(f"images/cat_0.png,{k}\n" for k in (10, 2, 1))
    assert read_dataset(write(table_dir / "t.csv", "filepath,label\n" + body)).classes == ["1", "2", "10"]


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty file"), (b"\n\n", "empty CSV"), (b"filepath,label\n", "no usable images"),
     (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\xff\xfe", "not UTF-8"), (b"just_one_column\nx\n", "only one column"),
     (b"a,b\n1,2\n", "no label column"), (b"name,label\nx,1\n", "no path, URL or pixel columns")],
)
def test_unreadable_csv_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(LayoutError, match=message):
        read_dataset(path)


def test_truncated_path_csv_skips_the_cut_row(table_dir):
    text = "filepath,label\n" + rows("cat_0", "dog_0") + "images/dog_1.pn"
    m = read_dataset(write(table_dir / "t.csv", text))
    assert len(m) == 2 and len(m.skipped) == 1


def test_url_column_reads_through_url_storage(tmp_path):
    csv = write(tmp_path / "t.csv", "url,label\nhttp://127.0.0.1:9/a.png,a\nhttps://example.org/b.png,b\n"
                "ftp://example.org/c.png,c\nfile:///etc/passwd,d\n")
    m = read_dataset(csv)
    assert m.storage.kind == "url"
    assert m.locations == ["http://127.0.0.1:9/a.png", "https://example.org/b.png"]
    assert len(m.skipped) == 2
    assert all("unsupported URL scheme" in s.reason for s in m.skipped)


def test_corrupt_image_in_a_csv_is_a_counted_skip_in_the_loader(table_dir):
    (table_dir / "images" / "cat_1.png").write_bytes((table_dir / "images" / "cat_1.png").read_bytes()[:30])
    (table_dir / "images" / "cat_2.png").write_bytes(b"")
    m = read_dataset(write(table_dir / "t.csv", "filepath,label\n" + rows("cat_0", "cat_1", "cat_2", "dog_0")))
    skipped = []
    batches = list(iterate_decoded(m, Preprocess(), batch_size=8, skipped=skipped, workers=2))
    assert sum(len(b[0]) for b in batches) == 2
    assert len(skipped) == 2 and any("0 bytes" in s.reason for s in skipped)
    with pytest.raises(PixelforgeError, match="cat_1.png"):
        list(iterate_decoded(m, Preprocess(), batch_size=8, on_error="fail", workers=1))


# ---- embedded pixels ---------------------------------------------------------------------------------

def pixel_csv(path, images: np.ndarray, labels, *, header=True, extra=""):
    flat = images.reshape(len(images), -1)
    lines = []
    if header:
        lines.append("label," + ",".join(f"pixel{i}" for i in range(flat.shape[1])))
    lines += [f"{lab}," + ",".join(map(str, row)) for lab, row in zip(labels, flat, strict=True)]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_embedded_pixels_become_an_array_storage(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 3, 30)
    m = read_dataset(pixel_csv(tmp_path / "px.csv", x, y))
    assert m.storage.kind == "array"
    assert len(m) == 30 and m.class_counts() == {str(k): int((y == k).sum()) for k in range(3)}
    np.testing.assert_array_equal(m.storage.images, x)
    assert m.load(3).shape == (28, 28, 1)


def test_embedded_rgb_pixels_are_inferred_from_three_squares(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
    m = read_dataset(pixel_csv(tmp_path / "px.csv", x, ["a", "b", "a", "b"]))
    np.testing.assert_array_equal(m.storage.images, x)
    assert any("RGB" in n for n in m.notes)


def test_embedded_planar_rgb_with_pixel_order_chw(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    planar = x.transpose(0, 3, 1, 2)
    m = read_dataset(pixel_csv(tmp_path / "px.csv", planar, ["a", "b"]), pixel_order="chw")
    np.testing.assert_array_equal(m.storage.images, x)


def test_embedded_pixels_with_a_given_shape_and_split_column(tmp_path):
    x = np.arange(2 * 4 * 8, dtype=np.uint8).reshape(2, 4, 8)
    text = "label,split," + ",".join(f"p{i}" for i in range(32)) + "\n"
    text += "".join(f"{lab},{s}," + ",".join(map(str, r)) + "\n" for lab, s, r in zip("ab", ("train", "test"), x.reshape(2, -1), strict=True))
    m = read_dataset(write(tmp_path / "px.csv", text), pixel_shape="4x8")
    np.testing.assert_array_equal(m.storage.images, x)
    assert m.split_names == ["train", "test"]
    with pytest.raises(LayoutError, match="neither a square"):
        read_dataset(tmp_path / "px.csv")


def test_headerless_pixel_csv_reads_label_first(tmp_path):
    x = np.random.default_rng(2).integers(0, 256, (5, 4, 4), dtype=np.uint8)
    m = read_dataset(pixel_csv(tmp_path / "px.csv", x, [1, 2, 1, 2, 1], header=False))
    np.testing.assert_array_equal(m.storage.images, x)
    assert m.class_counts() == {"1": 3, "2": 2}


def test_unit_range_pixels_are_scaled_to_uint8(tmp_path):
    text = "label," + ",".join(f"pixel{i}" for i in range(4)) + "\na,0,0.5,1.0,0.25\nb,1,1,0,0\n"
    m = read_dataset(write(tmp_path / "px.csv", text))
    np.testing.assert_array_equal(m.storage.images[0].ravel(), [0, 128, 255, 64])
    assert any("scaled by 255" in n for n in m.notes)


def test_bad_pixel_rows_are_counted_skips(tmp_path):
    header = "label," + ",".join(f"pixel{i}" for i in range(4)) + "\n"
    body = ("a,1,2,3,4\n"      # good
            "b,1,2,300,4\n"    # out of range
            "c,1,x,3,4\n"      # not a number
            "d,1,,3,4\n"       # empty value
            ",1,2,3,4\n"       # empty label
            "e,1,2,3\n"        # too few fields
            "f,1,2,3,4,5\n"    # too many
            "g,9,8,7,6\n"      # good
            "h,1,2")           # truncated last line
    m = read_dataset(write(tmp_path / "px.csv", header + body))
    assert m.labels == ["a", "g"]
    assert len(m.skipped) == 7
    reasons = " | ".join(s.reason for s in m.skipped)
    assert "0..255" in reasons and "non-numeric" in reasons and "empty value in label" in reasons
    assert "truncated or malformed" in reasons


@pytest.mark.parametrize("shape,message", [("100000x100000", "over the limit"), ("3x3", "needs 9 values"),
                                           ("28x28x7", "HxWxC"), ("axb", "not like")])
def test_bad_or_huge_pixel_shapes_are_clear_errors(tmp_path, shape, message):
    x = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(LayoutError, match=message):
        read_dataset(pixel_csv(tmp_path / "px.csv", x, ["a", "b"]), pixel_shape=shape)


def test_huge_pixel_count_without_shape_is_a_clear_error(tmp_path):
    path = tmp_path / "px.csv"
    path.write_text("label," + ",".join(f"pixel{i}" for i in range(1001)) + "\n")
    with pytest.raises(LayoutError, match="1001 pixel columns"):
        read_dataset(path)


def test_reader_is_callable_directly_with_a_storage(table_dir):
    from pixelforge.data.locations import FileStorage

    write(table_dir / "sub.csv", "filepath,label\ncat_0.png,cat\n../images/dog_0.png,dog\n")
    m = read_csv_layout("sub.csv", storage=FileStorage(table_dir), member_prefix="images")
    assert m.locations == ["images/cat_0.png", "images/dog_0.png"]


# ---- real data and the command line -----------------------------------------------------------------

def test_mnist_train_csv_has_60000_rows_in_10_classes(mnist_dir):
    m = read_dataset(mnist_dir / "train.csv")
    assert len(m) == 60_000 and m.num_classes == 10 and not m.skipped
    assert m.class_counts()["1"] == 6742
    assert m.load(0).shape == (28, 28, 1)


def test_cli_info_on_mnist_csv_json(mnist_dir):
    result = CliRunner().invoke(app, ["info", str(mnist_dir / "test.csv"), "--json", "--sizes", "20"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 10_000 and len(report["classes"]) == 10
    assert report["image_sample"]["sizes"] == {"28x28": 20}


def test_cli_info_on_embedded_pixel_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    y = np.repeat(["shirt", "shoe"], 20)
    path = pixel_csv(tmp_path / "px.csv", x, y)
    result = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["class_counts"] == {"shirt": 20, "shoe": 20}
    human = CliRunner().invoke(app, ["info", str(path)])
    assert human.exit_code == 0 and "shirt" in human.stdout


def test_cli_bad_csv_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "bad.csv" in message and "UTF-8" in message


def test_unknown_reader_option_is_a_clear_error(table_dir):
    csv = write(table_dir / "t.csv", "filepath,label\n" + rows("cat_0"))
    with pytest.raises(LayoutError, match="layout 'csv' has no option 'path_col'; its options are path_column"):
        read_dataset(csv, path_col="file")


def test_embedded_pixel_csv_of_the_fashion_sample_keeps_counts_splits_and_pixels(tmp_path):
    from pixelforge.datasets import load_fashion_sample

    sample = load_fashion_sample()
    images = np.stack([sample.load(i)[:, :, 0] for i in range(len(sample))])
    path = tmp_path / "fashion.csv"
    with open(path, "w") as fh:
        fh.write("label,split," + ",".join(f"pixel{i}" for i in range(784)) + "\n")
        for label, split, img in zip(sample.labels, sample.splits, images, strict=True):
            fh.write(f'"{label}",{split},' + ",".join(map(str, img.ravel())) + "\n")
    m = read_dataset(path)
    assert m.counts_by_split() == sample.counts_by_split()
    assert m.classes == sorted(sample.classes) and not m.skipped
    np.testing.assert_array_equal(m.storage.images, images)
    result = CliRunner().invoke(app, ["info", str(path), "--json", "--sizes", "10"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["splits"] == {"train": 3000, "test": 600}


def test_gzipped_pixel_csv_reads_like_the_plain_one(tmp_path):
    import gzip

    x = np.random.default_rng(4).integers(0, 256, (12, 6, 6), dtype=np.uint8)
    plain = pixel_csv(tmp_path / "px.csv", x, [0, 1, 2] * 4)
    packed = tmp_path / "px.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    m = read_dataset(packed)
    np.testing.assert_array_equal(m.storage.images, x)
    assert m.class_counts() == read_dataset(plain).class_counts()


def test_gzipped_tsv_of_paths_resolves_against_its_folder(table_dir):
    import gzip

    text = "file\tlabel\n" + rows("cat_0", "cat_1", "dog_0").replace(",", "\t")
    (table_dir / "list.tsv.gz").write_bytes(gzip.compress(text.encode()))
    m = read_dataset(table_dir / "list.tsv.gz")
    assert m.class_counts() == {"cat": 2, "dog": 1}
    assert m.load(0).shape == (6, 5, 3)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty file"),
    (b"label,p0\na,1\n", "not a complete gzip file"),            # plain text named .csv.gz
    ("gzip-cut", "not a complete gzip file"),                   # truncated
    ("gzip-empty", "empty CSV"),                                # a valid gzip of nothing
])
def test_bad_gzipped_csv_files_are_clear_errors(tmp_path, content, message):
    import gzip

    whole = gzip.compress(b"label," + b",".join(b"p%d" % i for i in range(16)) + b"\n" + b"a," * 16 + b"1\n")
    data = {"gzip-cut": whole[: len(whole) // 2], "gzip-empty": gzip.compress(b"")}.get(content, content)
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(data)
    with pytest.raises(LayoutError, match=message):
        read_dataset(path)
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
