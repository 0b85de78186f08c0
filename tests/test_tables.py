"""Messy real-world tables (fastai / Keras conventions): ids without extension in a sibling folder, junk
labels, per-image metadata, and group-aware splits and audits by a metadata column."""

from __future__ import annotations

import json
import posixpath
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelforge import train_test_split
from pixelforge.audit import run_audit
from pixelforge.cli import app
from pixelforge.data.read import read_dataset
from pixelforge.data.split import StratifiedKFold, assign_splits, group_ids, train_validation_test
from pixelforge.errors import LayoutError, ParameterError
from tests.train_helpers import one_thread  # noqa: F401 (autouse fixture)

runner = CliRunner()
CLASSES = ("dress", "pants", "shirt")
JUNK = {"Not sure": 2, "Skip": 3, "Other": 2}
SENDERS = 6


def _uuid(i: int) -> str:
    return f"{i:08x}-751a-4b74-8e9b-43af05deee22"


@pytest.fixture
def clothing(tmp_path):
    """tmp/images.csv (image,sender_id,label,kids) + tmp/images/<uuid>.jpg, like the public clothing dataset.

    12 images per class, sender i % 6, so each sender has images of every class; junk labels; two ids
    missing on disk; one id escaping with ../../ (the table's folder is the root). Returns (csv path, {id: (label, sender, kids)} of real rows).
    """
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    rows, truth = [], {}
    i = 0
    for label in CLASSES:
        for _ in range(12):
            colour = {"dress": (200, 40, 40), "pants": (40, 200, 40), "shirt": (40, 40, 200)}[label]
            img = np.clip(rng.normal(colour, 20, (10, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "images" / f"{_uuid(i)}.jpg")
            sender, kids = f"s{i % SENDERS}", ("" if i == 7 else "True" if i % 5 == 0 else "False")
            rows.append((_uuid(i), sender, label, kids))
            truth[_uuid(i)] = (label, sender, kids)
            i += 1
    for label, n in JUNK.items():
        for _ in range(n):
            Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "images" / f"{_uuid(i)}.jpg")
            rows.append((_uuid(i), f"s{i % SENDERS}", label, "False"))
            i += 1
    rows += [("deadbeef-missing-1", "s1", "shirt", "False"), ("deadbeef-missing-2", "s2", "dress", "")]
    rows.append(("../../outside", "s3", "pants", "False"))  # images/../../ climbs out of the table's folder
    (tmp_path.parent / "outside.jpg").write_bytes((tmp_path / "images" / f"{_uuid(0)}.jpg").read_bytes())
    lines = ["image,sender_id,label,kids"] + [",".join(r) for r in rows]
    (tmp_path / "images.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "images.csv", truth


def _stem(location: str) -> str:
    return posixpath.splitext(posixpath.basename(location))[0]


def _check_metadata(manifest, truth):
    assert list(manifest.metadata) == ["sender_id", "kids"]
    for row, location in enumerate(manifest.locations):
        label, sender, kids = truth[_stem(location)]
        assert (manifest.labels[row], manifest.metadata["sender_id"][row], manifest.metadata["kids"][row]) == \
            (label, sender, kids)


# ---- paths: folder, suffix, extension probing ------------------------------------------------------

def test_ids_resolve_through_folder_and_suffix(clothing):
    csv, truth = clothing
    m = read_dataset(csv, folder="images", suffix=".jpg")
    assert len(m) == 36 + sum(JUNK.values())
    assert m.classes == sorted([*CLASSES, *JUNK])
    assert all(loc.startswith("images/") and loc.endswith(".jpg") for loc in m.locations)
    reasons = [s.reason for s in m.skipped]
    assert sum("file not found" in r for r in reasons) == 2
    assert sum(r.startswith("refused:") and "escapes" in r for r in reasons) == 1
    assert m.load(0).shape == (10, 10, 3)


def test_without_folder_the_error_says_how_to_point_at_the_images(clothing):
    csv, _ = clothing
    with pytest.raises(LayoutError, match=r"no usable images.*-o folder=images.*suffix="):
        read_dataset(csv)


def test_ids_without_extension_are_matched_by_stem_with_a_note(clothing):
    csv, truth = clothing
    images = csv.parent / "images"
    (images / f"{_uuid(0)}.jpg").rename(images / f"{_uuid(0)}.PNG")  # any case, other extensions
    (images / f"{_uuid(1)}.jpg").rename(images / f"{_uuid(1)}.webp")
    m = read_dataset(csv, folder="images", exclude_labels="Not sure,Skip,Other")
    assert len(m) == 36
    assert {f"images/{_uuid(0)}.PNG", f"images/{_uuid(1)}.webp"} <= set(m.locations)
    note = next(n for n in m.notes if n.startswith("ids have no file extension"))
    assert "matched 43 file(s)" in note and ".jpg 41" in note and ".png 1" in note and ".webp 1" in note
    missing = [s.reason for s in m.skipped if "file not found" in s.reason]
    assert len(missing) == 2 and "also tried .jpg" in missing[0]
    _check_metadata(m, truth)


def test_directory_is_a_synonym_of_folder_and_they_must_agree(clothing):
    csv, _ = clothing
    assert read_dataset(csv, directory="images").locations == read_dataset(csv, folder="images").locations
    with pytest.raises(LayoutError, match="disagree"):
        read_dataset(csv, folder="images", directory="other")


def test_folder_may_not_climb_out_of_the_tables_folder_unless_absolute(clothing, tmp_path):
    csv, _ = clothing
    inner = tmp_path / "labels" / "images.csv"
    inner.parent.mkdir()
    inner.write_text(csv.read_text())
    with pytest.raises(LayoutError, match="escapes"):
        read_dataset(inner, folder="../images")
    with pytest.raises(LayoutError, match="no such folder"):
        read_dataset(csv, folder="nowhere")
    m = read_dataset(inner, folder=str(tmp_path / "images"), exclude_labels="Not sure,Skip,Other")
    assert len(m) == 36 and m.load(0).shape == (10, 10, 3)
    # rows still may not climb out of that folder
    assert any("escapes" in s.reason for s in m.skipped)


def test_dataframe_and_json_tables_read_the_same(clothing):
    csv, truth = clothing
    df = pd.read_csv(csv)  # kids: True / False / NaN
    from_df = read_dataset(df, x_col="image", y_col="label", directory=str(csv.parent / "images"), suffix=".jpg",
                           exclude_labels=["Not sure", "Skip", "Other"])
    assert len(from_df) == 36
    _check_metadata(from_df, truth)  # pandas' NaN for an empty kids cell is "" again
    probed = read_dataset(df, x_col="image", y_col="label", folder=str(csv.parent / "images"))
    assert len(probed) == 43 and any("ids have no file extension" in n for n in probed.notes)

    text = pd.read_csv(csv, dtype=str, keep_default_na=False)
    records = [{"image": r.image, "sender_id": r.sender_id, "label": r.label, **({"kids": r.kids} if r.kids else {})}
               for r in text.itertuples()]  # a record without "kids" has it missing ("")
    (csv.parent / "images.json").write_text(json.dumps(records))
    from_json = read_dataset(csv.parent / "images.json", folder="images", exclude_labels="Not sure,Skip,Other")
    assert len(from_json) == 36
    _check_metadata(from_json, truth)


def test_a_zipped_table_reads_the_same_and_folder_stays_inside_the_archive(clothing):
    csv, truth = clothing
    archive = csv.parent / "clothing.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(csv, "clothing/images.csv")
        for image in (csv.parent / "images").iterdir():
            zf.write(image, f"clothing/images/{image.name}")
    m = read_dataset(archive, folder="images", exclude_labels="Not sure,Skip,Other")
    assert len(m) == 36 and any("ids have no file extension" in n for n in m.notes)
    _check_metadata(m, truth)
    assert m.load(0).shape == (10, 10, 3)
    with pytest.raises(LayoutError, match="escapes"):
        read_dataset(archive, folder="../..")
    with pytest.raises(LayoutError, match="absolute"):
        read_dataset(archive, folder="/etc")


def test_metadata_follows_rows_through_subset_split_and_shard(clothing):
    csv, truth = clothing
    m = read_dataset(csv, folder="images", suffix=".jpg", exclude_labels="Not sure,Skip,Other")
    _check_metadata(m, truth)
    _check_metadata(m.subset(np.arange(len(m))[::3]), truth)
    _check_metadata(m.shard(1, 3), truth)
    split = assign_splits(m, seed=0)
    _check_metadata(split.split("test"), truth)
    train, test = train_test_split(m, seed=1)
    _check_metadata(train, truth)
    _check_metadata(test, truth)
    summary = m.summary()["metadata"]
    assert summary["sender_id"] == {"distinct": SENDERS, "missing": 0, "examples": ["s0", "s1", "s2"]}
    assert summary["kids"]["distinct"] == 2 and summary["kids"]["missing"] == 1


def test_embedded_pixel_tables_have_no_metadata(tmp_path):
    lines = ["label,pixel0,pixel1,pixel2,pixel3"] + [f"{i % 2},0,1,2,3" for i in range(4)]
    (tmp_path / "pixels.csv").write_text("\n".join(lines) + "\n")
    assert read_dataset(tmp_path / "pixels.csv").metadata == {}


def test_info_shows_the_metadata_columns(clothing):
    csv, _ = clothing
    args = ["info", str(csv), "-o", "folder=images", "-o", "suffix=.jpg", "-o", "exclude_labels=Not sure,Skip"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "per-image metadata" in result.output and "sender_id" in result.output and "kids" in result.output
    assert "5 image(s) left out by label (Skip 3, Not sure 2)" in result.output
    as_json = runner.invoke(app, [*args, "--json", "--sizes", "0"])
    report = json.loads(as_json.stdout)
    assert report["images"] == 38 and report["metadata"]["sender_id"]["distinct"] == SENDERS


# ---- label options -----------------------------------------------------------------------------------

def test_junk_labels_are_excluded_and_counted_not_listed(clothing):
    csv, _ = clothing
    m = read_dataset(csv, folder="images", suffix=".jpg", exclude_labels=["Not sure", "Skip"])
    assert m.classes == ["Other", *CLASSES] and len(m) == 38
    assert len(m.skipped) == 3  # the missing and escaping rows only: exclusions are a note
    assert "5 image(s) left out by label (Skip 3, Not sure 2)" in m.notes
    assert m.label_indices().max() == 3


def test_include_labels_keeps_only_those(clothing):
    csv, _ = clothing
    m = read_dataset(csv, folder="images", suffix=".jpg", include_labels="dress,shirt")
    assert m.classes == ["dress", "shirt"] and len(m) == 24
    assert "19 image(s) left out by label" in " ".join(m.notes)


def test_label_map_merges_classes(clothing):
    csv, _ = clothing
    m = read_dataset(csv, folder="images", suffix=".jpg", label_map="dress:top,shirt:top,Skip:Other",
                     exclude_labels="Not sure")
    assert m.classes == ["Other", "pants", "top"]
    assert m.class_counts() == {"Other": 5, "pants": 12, "top": 24}
    assert "label_map renamed dress → top, shirt → top, Skip → Other" in m.notes
    assert read_dataset(csv, folder="images", suffix=".jpg", label_map={"pants": "trousers"}).class_counts()[
        "trousers"] == 12


def test_min_per_class_drops_small_classes_with_a_note(clothing):
    csv, _ = clothing
    m = read_dataset(csv, folder="images", suffix=".jpg", min_per_class=3)
    assert m.classes == ["Skip", *CLASSES]
    assert any(n.startswith("min_per_class=3 dropped 2 class(es)") and "Not sure 2" in n and "Other 2" in n
               for n in m.notes)


def test_label_options_work_for_folders_too(tmp_path):
    for label, n in (("a", 3), ("b", 1), ("junk", 2)):
        for i in range(n):
            (tmp_path / "tree" / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "tree" / label / f"{i}.png")
    m = read_dataset(tmp_path / "tree", exclude_labels="junk", min_per_class=2)
    assert m.classes == ["a"] and len(m) == 3


def test_bad_and_unknown_options_are_clear_errors(clothing):
    csv, _ = clothing
    with pytest.raises(LayoutError, match="no option 'folders'.*exclude_labels"):
        read_dataset(csv, folders="images")
    with pytest.raises(ParameterError, match="old:new"):
        read_dataset(csv, folder="images", label_map="dress")
    with pytest.raises(ParameterError, match="min_per_class"):
        read_dataset(csv, folder="images", min_per_class="many")
    with pytest.raises(LayoutError, match="no images left"):
        read_dataset(csv, folder="images", include_labels="hat")
    result = runner.invoke(app, ["info", str(csv), "-o", "folders=images"])
    assert result.exit_code == 2 and "no option 'folders'" in result.output


# ---- group-aware splits ------------------------------------------------------------------------------

@pytest.fixture
def clean(clothing):
    csv, truth = clothing
    return read_dataset(csv, folder="images", suffix=".jpg", exclude_labels="Not sure,Skip,Other")


def _senders(manifest) -> set[str]:
    return set(manifest.metadata["sender_id"])


def test_group_ids_name_the_columns_and_give_empty_values_their_own_group(clean):
    ids = group_ids(clean, "sender_id")
    assert ids.shape == (36,) and len(set(ids.tolist())) == SENDERS
    assert group_ids(clean, None) is None
    with pytest.raises(ParameterError, match="no metadata column 'sender'.*sender_id, kids"):
        group_ids(clean, "sender")
    kids = group_ids(clean, "kids")
    assert len(set(kids.tolist())) == 3  # True, False, and the one empty value on its own
    assert "1 image(s) have no 'kids' value; each is a group of its own" in clean.notes


def test_train_test_split_by_group_column_keeps_senders_apart(clean):
    train, test = train_test_split(clean, test_size=0.25, seed=0, group_column="sender_id")
    assert len(train) + len(test) == 36 and len(test) > 0
    assert not _senders(train) & _senders(test)
    with pytest.raises(ParameterError, match="not both"):
        train_test_split(clean, groups=group_ids(clean, "sender_id"), group_column="sender_id")


def test_train_validation_test_and_kfold_with_groups_keep_senders_apart(clean):
    groups = group_ids(clean, "sender_id")
    train, validation, test, how = train_validation_test(clean, seed=0, groups=groups)
    assert test is None and "no group on both sides" in how
    assert not _senders(train) & _senders(validation)
    for fold_train, fold_val in StratifiedKFold(3, seed=0).split(clean, groups=groups):
        assert not _senders(fold_train) & _senders(fold_val)
    converted = assign_splits(clean, seed=0, group_column="sender_id")
    assert not _senders(converted.split("train")) & _senders(converted.split("test"))


def test_cli_train_with_group_column(clean, tmp_path):
    csv = tmp_path / "images.csv"
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(csv), "--out", str(out), "-o", "folder=images", "-o", "suffix=.jpg",
                                 "-o", "exclude_labels=Not sure,Skip,Other", "--group-column", "sender_id",
                                 "--model", "dnn", "--size", "16", "--epochs", "1", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "metrics.json").read_text())
    assert "by 'sender_id'" in summary["splits"] and summary["train_images"] + summary["validation_images"] == 36
    # the run's split is the seeded one the API gives: no sender on both sides
    train, validation, _, _ = train_validation_test(clean, seed=0, group_column="sender_id")
    assert (len(train), len(validation)) == (summary["train_images"], summary["validation_images"])
    assert not _senders(train) & _senders(validation)
    bad = runner.invoke(app, ["train", str(csv), "--out", str(tmp_path / "bad"), "-o", "folder=images",
                              "--group-column", "sender", "--epochs", "1"])
    assert bad.exit_code == 2 and "no metadata column 'sender'" in bad.output


def test_cli_cv_and_convert_with_group_column(clean, tmp_path, monkeypatch):
    import h5py

    from pixelforge.train import crossval

    csv = tmp_path / "images.csv"
    read = ["-o", "folder=images", "-o", "suffix=.jpg", "-o", "exclude_labels=Not sure,Skip,Other"]
    seen = []
    original = crossval.StratifiedKFold.split_indices

    def spy(self, labels, groups=None):
        seen.append(groups)
        return original(self, labels, groups)

    monkeypatch.setattr(crossval.StratifiedKFold, "split_indices", spy)
    result = runner.invoke(app, ["cv", str(csv), *read, "--group-column", "sender_id", "--folds", "3", "--epochs", "1",
                                 "--model", "dnn", "--size", "16", "--threads", "1", "--out", str(tmp_path / "cv"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert len(seen) == 1 and len(set(seen[0].tolist())) == SENDERS

    store = tmp_path / "store.h5"
    result = runner.invoke(app, ["convert", str(csv), str(store), *read, "--group-column", "sender_id",
                                 "--test-size", "0.3", "--json"])
    assert result.exit_code == 0, result.output
    sender_of = {_stem(loc): s for loc, s in zip(clean.locations, clean.metadata["sender_id"], strict=True)}
    with h5py.File(store) as f:
        parts = {}
        for source, split in zip(f["sources"].asstr()[:], f["splits"].asstr()[:], strict=True):
            parts.setdefault(split, set()).add(sender_of[_stem(source)])
    assert set(parts) == {"train", "test"} and not parts["train"] & parts["test"]


# ---- the audit's group leakage -----------------------------------------------------------------------

def _pre_split(clothing, leak: bool):
    """The table with a split column: senders s0-s3 train, s4-s5 test, and (leak) one s0 image in test."""
    csv, _ = clothing
    df = pd.read_csv(csv)
    df = df[df.label.isin(CLASSES)].copy()
    df["split"] = np.where(df.sender_id.isin(["s4", "s5"]), "test", "train")
    if leak:
        df.loc[df.index[df.sender_id == "s0"][0], "split"] = "test"
    df.to_csv(csv, index=False)
    return read_dataset(csv, folder="images", suffix=".jpg")


def test_audit_reports_groups_that_span_splits(clothing):
    m = _pre_split(clothing, leak=True)
    report = run_audit(m, checks="duplicates", group_column="sender_id")
    leak = report.by_check("duplicates", "group_leakage")
    assert len(leak) == 1 and leak[0].severity == "error"
    assert leak[0].values["groups"] == 1 and leak[0].values["images"] == 6
    assert leak[0].values["examples"] == {"s0": {"train": 5, "test": 1}}
    assert "1 sender_id group(s) span splits" in leak[0].title and "s0: 5 in train, 1 in test" in leak[0].message


def test_audit_is_quiet_when_groups_are_clean(clothing):
    m = _pre_split(clothing, leak=False)
    assert not run_audit(m, checks="duplicates", group_column="sender_id").by_check("duplicates", "group_leakage")
    with pytest.raises(ParameterError, match="no metadata column"):
        run_audit(m, checks="duplicates", group_column="photographer")


def test_cli_audit_with_group_column(clothing, tmp_path):
    _pre_split(clothing, leak=True)
    csv, _ = clothing
    result = runner.invoke(app, ["audit", str(csv), "--out", str(tmp_path / "report"), "--checks", "duplicates",
                                 "-o", "read.folder=images", "-o", "read.suffix=.jpg", "--group-column", "sender_id",
                                 "--json"])
    assert result.exit_code == 0, result.output
    codes = [f["code"] for f in json.loads(result.stdout)["findings"]]
    assert "group_leakage" in codes
