"""JSON layout: records, label → paths mappings, split mappings, and bad documents or rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pixelforge import read_dataset
from pixelforge.cli import app
from pixelforge.errors import LayoutError
from tests.conftest import write_png


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(3)
    for name in ("a1", "a2", "b1", "b2", "b3"):
        write_png(tmp_path / "img" / f"{name}.png", rng.integers(0, 256, (5, 5), dtype=np.uint8))
    return tmp_path


def dump(path, doc):
    path.write_text(json.dumps(doc))
    return path


def test_list_of_records(images):
    doc = [{"image": f"img/{n}.png", "label": n[0]} for n in ("a1", "a2", "b1")]
    m = read_dataset(dump(images / "d.json", doc))
    assert m.layout == "json"
    assert m.class_counts() == {"a": 2, "b": 1}
    assert m.load(2).shape == (5, 5, 1)


def test_record_keys_are_detected_or_given(images):
    doc = {"images": [{"File_Name": "img/a1.png", "Category": "x", "Subset": "train"},
                      {"File_Name": "img/b1.png", "Category": "y", "Subset": "test"}]}
    m = read_dataset(dump(images / "d.json", doc))
    assert m.classes == ["x", "y"] and m.split_names == ["train", "test"]
    doc2 = [{"pic": "img/a1.png", "kind": "p"}, {"pic": "img/b2.png", "kind": "q"}]
    assert read_dataset(dump(images / "e.json", doc2), image_key="pic", label_key="kind").classes == ["p", "q"]


def test_label_to_paths_mapping(images):
    m = read_dataset(dump(images / "d.json", {"a": ["img/a1.png", "img/a2.png"], "b": ["img/b1.png"]}))
    assert m.class_counts() == {"a": 2, "b": 1}


def test_split_mapping_of_label_mappings(images):
    doc = {"train": {"a": ["img/a1.png"], "b": ["img/b1.png", "img/b2.png"]}, "val": {"a": ["img/a2.png"]}}
    m = read_dataset(dump(images / "d.json", doc))
    assert m.counts_by_split() == {"train": {"a": 1, "b": 2}, "validation": {"a": 1, "b": 0}}


def test_bad_rows_are_counted_skips(images):
    doc = [
        {"image": "img/a1.png", "label": "a"},
        {"image": "img/missing.png", "label": "a"},
        {"image": "img/b1.png", "label": ""},
        {"image": "img/b2.png", "label": None},
        {"image": "img/b3.png"},
        {"image": "img/b3.png", "label": ["a", "b"]},
        {"label": "b"},
        "img/b3.png",
        {"image": "../../etc/passwd", "label": "b"},
        {"image": "/etc/passwd", "label": "b"},
        {"image": "https://example.org/x.png", "label": "b"},
        {"image": "img/b3.png", "label": 7},
    ]
    m = read_dataset(dump(images / "d.json", doc))
    assert m.locations == ["img/a1.png", "img/b3.png"] and m.labels == ["a", "7"]
    assert len(m.skipped) == 10
    reasons = [s.reason for s in m.skipped]
    assert sum("empty or missing label" in r for r in reasons) == 3
    assert sum(r.startswith("refused:") for r in reasons) == 2
    assert any("file not found" in r for r in reasons) and any("multi-label" in r for r in reasons)
    assert any("URL among local paths" in r for r in reasons)


def test_all_url_records_use_url_storage(tmp_path):
    doc = [{"url": "https://example.org/a.png", "label": "a"}, {"url": "http://example.org/b.png", "label": "b"}]
    m = read_dataset(dump(tmp_path / "d.json", doc))
    assert m.storage.kind == "url" and len(m) == 2


def test_one_class_json_notes_it(images):
    m = read_dataset(dump(images / "d.json", {"only": ["img/a1.png", "img/a2.png"]}))
    assert m.classes == ["only"] and any("only one class" in n for n in m.notes)


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty file"), (b"[{\"image\": \"a.png\", ", "invalid JSON"), (b"\xff\xd8\xff\xe0JFIF", "not UTF-8"),
     (b"42", "expected a list of records"), (b"[]", "no usable images"), (b"[" * 100000 + b"]" * 100000, "nested too deeply")],
)
def test_unreadable_json_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(LayoutError, match=message):
        read_dataset(path)


def test_cli_info_json_and_bad_json(images):
    path = dump(images / "d.json", {"a": ["img/a1.png"], "b": ["img/b1.png"]})
    result = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["class_counts"] == {"a": 1, "b": 1}
    (images / "bad.json").write_text("{nope")
    bad = CliRunner().invoke(app, ["info", str(images / "bad.json")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert len(bad.stderr.strip().splitlines()) == 1 and "invalid JSON" in bad.stderr
