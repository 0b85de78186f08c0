"""The dataset audit finds what was injected into synthetic shapes (recall and precision per defect
kind), stays quiet on clean data, and writes safe, complete reports."""

from __future__ import annotations

import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from pixelforge.audit import run_audit, write_reports
from pixelforge.audit.findings import flagged_locations
from pixelforge.audit.robust import robust_z
from pixelforge.audit.scan import sniff_format
from pixelforge.cli import app
from pixelforge.data.locations import ArrayStorage
from pixelforge.data.manifest import Manifest
from pixelforge.datasets import make_shapes
from pixelforge.datasets.shapes import DEFECTS

RECALL, PRECISION = 0.90, 0.80

# defect kind -> (check, finding code) whose flagged images are scored against the ground truth
IMAGE_KINDS = {
    "exact_duplicates": ("duplicates", "exact"),
    "near_duplicates": ("duplicates", "near"),
    "cross_split_duplicates": ("duplicates", "cross_split"),
    "label_errors": ("labels", "likely_mislabelled"),
    "dark": ("quality", "dark"),
    "blurry": ("quality", "blurry"),
}
CLASS_KINDS = {"imbalance": "imbalance", "background_shortcut": "shortcut"}


def recall_precision(truth: set, flagged: set) -> tuple[float, float]:
    hits = len(truth & flagged)
    return hits / max(1, len(truth)), (hits / len(flagged) if flagged else 0.0)


@pytest.fixture(scope="module")
def defective():
    data = make_shapes(200, seed=2, **DEFECTS)
    return data, run_audit(data.manifest, seed=0)


@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
def test_audit_finds_injected_image_defects_with_recall_and_precision(defective, kind):
    data, report = defective
    check, code = IMAGE_KINDS[kind]
    truth = set(data.truth[kind])
    assert truth, f"the generator injected no {kind}"
    flagged = flagged_locations(report.findings, data.manifest, check=check, code=code)
    if check == "duplicates":
        # a near copy of an image that also has an exact or cross-split copy is rightly grouped with
        # both; and the class drawn on one flat background (background_bias) holds mirrored look-alikes
        # a person would call copies too (no texture tells them apart): neither counts as a false alarm
        flagged -= {loc for kind in ("exact_duplicates", "near_duplicates", "cross_split_duplicates")
                    for loc in data.truth[kind]} - truth
        flat = set(DEFECTS["background_bias"])
        flagged -= {loc for loc, label in zip(data.manifest.locations, data.manifest.labels, strict=True)
                    if label in flat and loc not in truth}
    recall, precision = recall_precision(truth, flagged)
    assert recall >= RECALL, f"{kind}: recall {recall:.2f} ({len(truth & flagged)}/{len(truth)})"
    assert precision >= PRECISION, f"{kind}: precision {precision:.2f} ({len(truth & flagged)}/{len(flagged)})"


@pytest.mark.parametrize("kind", sorted(CLASS_KINDS))
def test_audit_finds_injected_class_defects(defective, kind):
    data, report = defective
    truth = set(data.truth[kind])
    flagged = {c for f in report.by_check(CLASS_KINDS[kind]) for c in f.classes}
    recall, precision = recall_precision(truth, flagged)
    assert recall >= RECALL and precision >= PRECISION, (kind, truth, flagged)


def test_leakage_is_an_error_and_label_rate_is_set_against_the_bar(defective):
    data, report = defective
    assert [f.severity for f in report.by_check("duplicates", "cross_split")] == ["error"]
    rate = report.by_check("labels", "error_rate")[0]
    assert rate.values["estimated_error_rate"] > 0.03 and rate.severity == "warning"
    mislabelled = report.by_check("labels", "likely_mislabelled")[0]
    right = [i for i in mislabelled.images if data.true_labels.get(data.manifest.locations[i])
             and mislabelled.notes[i].split("→ ")[1].startswith(data.true_labels[data.manifest.locations[i]])]
    assert len(right) >= 0.8 * len(mislabelled.images)  # suggested labels are mostly the true class


def test_clean_shapes_give_no_error_findings():
    data = make_shapes(100, seed=5)
    report = run_audit(data.manifest, seed=0)
    errors = [f.title for f in report.findings if f.severity == "error"]
    assert errors == []
    assert not report.by_check("shortcut")
    assert not report.by_check("duplicates", "exact") and not report.by_check("duplicates", "cross_split")
    near = report.by_check("duplicates", "near")  # random shapes may draw one look-alike pair, no more
    assert not near or len(near[0].groups) <= 1
    assert not report.by_check("labels", "likely_mislabelled") or len(
        report.by_check("labels", "likely_mislabelled")[0].images) <= 4


def test_files_on_disk_corrupt_and_wrong_extensions_are_found(tmp_path):
    data = make_shapes(25, seed=0, corrupt=6, wrong_extension=4, exact_duplicates=3, write_to=tmp_path / "s")
    report = run_audit(tmp_path / "s", checks="integrity,duplicates")
    m = data.manifest
    corrupt = flagged_locations(report.findings, m, check="integrity", code="unreadable") | flagged_locations(
        report.findings, m, check="integrity", code="zero_byte")
    assert recall_precision(set(data.truth["corrupt"]), corrupt) == (1.0, 1.0)
    wrong = flagged_locations(report.findings, m, check="integrity", code="wrong_extension")
    assert recall_precision(set(data.truth["wrong_extension"]), wrong) == (1.0, 1.0)
    exact = flagged_locations(report.findings, m, check="duplicates", code="exact")
    assert recall_precision(set(data.truth["exact_duplicates"]), exact) == (1.0, 1.0)
    assert report.checks == ["integrity", "duplicates"]


def test_size_imbalance_and_single_class_rules():
    images = np.zeros((12, 8, 8), np.uint8)
    one = Manifest([str(i) for i in range(12)], ["a"] * 12, ArrayStorage(images))
    report = run_audit(one, checks="size,imbalance")
    assert [f.code for f in report.findings if f.severity == "error"] == ["single_class"]
    labels = ["a"] * 100 + ["b"] * 100 + ["c"] * 9
    many = Manifest([str(i % 12) for i in range(209)], labels, ArrayStorage(images))
    report = run_audit(many, checks="size,imbalance")
    assert report.by_check("imbalance")[0].classes == ["c"]
    assert report.by_check("size", "small_classes")[0].severity == "warning"


def test_quality_thresholds_follow_the_dataset_not_fixed_levels():
    values = np.r_[np.full(50, 100.0) + np.arange(50) % 7, 10.0]
    assert robust_z(values)[-1] < -3.5 and np.all(np.abs(robust_z(values)[:-1]) < 3.5)
    # the same image is dark in a bright dataset and ordinary in a dark one
    rng = np.random.default_rng(0)
    dim = np.full((16, 16, 3), 40, np.uint8)
    bright = np.clip(rng.normal(170, 15, (40, 16, 16, 3)), 0, 255).astype(np.uint8)
    dark = np.clip(rng.normal(40, 5, (40, 16, 16, 3)), 0, 255).astype(np.uint8)
    for pool, expect in ((bright, True), (dark, False)):
        images = np.concatenate([pool, dim[None]])
        m = Manifest([str(i) for i in range(41)], ["a", "b"] * 20 + ["a"], ArrayStorage(images))
        flagged = flagged_locations(run_audit(m, checks="quality").findings, m, code="dark")
        assert ("40" in flagged) is expect


def test_sniff_format_reads_magic_bytes():
    assert sniff_format(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff_format(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_format(b"hello") == ""


def test_sample_audits_a_seeded_subset(defective):
    data, _ = defective
    a = run_audit(data.manifest, checks="stats", sample=50, seed=1)
    b = run_audit(data.manifest, checks="stats", sample=50, seed=1)
    assert len(a.manifest) == 50 and a.manifest.locations == b.manifest.locations
    assert a.sample == {"of": len(data.manifest), "size": 50, "seed": 1}


def test_reports_list_every_finding_with_paths_and_escape_html(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (30, 16, 16, 3), dtype=np.uint8)
    images[29] = images[0]
    evil = "<script>alert('x')</script>"
    m = Manifest([str(i) for i in range(30)], [evil] * 15 + ["ok & fine"] * 15, ArrayStorage(images, name="<b>arr"))
    report = run_audit(m, checks="stats,size,duplicates")
    paths = write_reports(report, tmp_path)
    page = paths["html"].read_text()
    assert evil not in page and "<b>arr" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and "ok &amp; fine" in page
    data = json.loads(paths["json"].read_text())
    assert data["classes"] == sorted([evil, "ok & fine"])
    exact = [f for f in data["findings"] if f["code"] == "exact"][0]
    assert {e["path"] for e in exact["images"]} == {"<b>arr[0]", "<b>arr[29]"}
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_exit_codes_follow_fail_on(tmp_path):
    root = tmp_path / "s"
    make_shapes(12, seed=0, corrupt=1, write_to=root)
    runner = CliRunner()
    args = ["audit", str(root), "--out", str(tmp_path / "out"), "--checks", "integrity,size"]
    assert runner.invoke(app, args + ["--fail-on", "error"]).exit_code == 1  # zero-byte file
    assert runner.invoke(app, args).exit_code == 0  # --fail-on none by default
    clean = tmp_path / "clean"
    make_shapes(12, seed=0, write_to=clean)
    args = ["audit", str(clean), "--out", str(tmp_path / "out2"), "--checks", "integrity,size"]
    assert runner.invoke(app, args + ["--fail-on", "error"]).exit_code == 0
    assert runner.invoke(app, args + ["--fail-on", "warning"]).exit_code == 1  # classes under 1,000
    result = runner.invoke(app, args + ["--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout[result.stdout.index("{"):])["checks"] == ["size", "integrity"]
    bad = runner.invoke(app, ["audit", str(clean), "--checks", "nonsense"])
    assert bad.exit_code == 2 and "unknown check" in bad.output


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def test_html_report_renders_in_headless_chromium(defective, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium) — cannot render the report")
    _, report = defective
    html_path = write_reports(report, tmp_path)["html"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'prof'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1200,3000", f"--screenshot={shot}", html_path.as_uri()],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run([browser, *flags, "--dump-dom", html_path.as_uri()],
                         check=True, capture_output=True, timeout=120, text=True).stdout
    for name in report.checks:
        assert f'id="check-{name}"' in dom
    assert dom.count("<img") >= 50 and 'id="montages"' in dom
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (3000, 1200)
    colourful = (img.max(-1).astype(int) - img.min(-1)) > 60  # thumbnails and badges, not just text
    assert colourful.mean() > 0.01


def test_candidate_search_finds_shifted_and_mirrored_copies_among_random_images():
    from pixelforge.audit.near import candidate_pairs

    rng = np.random.default_rng(0)
    base = rng.normal(128, 40, (300, 32, 32)).astype(np.float32)
    base = np.stack([cv2.GaussianBlur(g, (0, 0), 4.0) for g in base])  # smooth random "scenes"
    copies = [np.roll(base[k], (1, -2), (0, 1)) for k in range(10)] + [base[k][:, ::-1] for k in range(10, 20)]
    gray = np.concatenate([base, np.stack(copies)])
    found = {(int(a), int(b), int(m)) for a, b, m in candidate_pairs(gray, np.arange(len(gray))).tolist()}
    assert all((k, 300 + k, 0) in found for k in range(10))  # shifted copies, found as they are
    assert all((k, 300 + k, 1) in found for k in range(10, 20))  # mirror copies, found mirrored


def test_crowd_scores_are_each_images_best_other_match():
    from pixelforge.audit.near import crowd_scores

    pairs = np.array([[0, 1], [0, 2], [1, 2], [3, 4]])
    scores = np.array([0.99, 0.90, 0.80, 0.97])
    # pair (0, 1): 0's best other is 2 (0.90), 1's best other is 2 (0.80) -> 0.80; (3, 4): no others -> sparse
    assert np.allclose(crowd_scores(pairs, scores, sparse=0.5), [0.80, 0.80, 0.90, 0.5])


def test_integrity_flags_modes_alpha_16_bit_odd_and_tiny_sizes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "mixed"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            h, w = 60 + int(rng.integers(-4, 5)), 80 + int(rng.integers(-4, 5))
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (60, 80), dtype=np.uint8)).save(root / "a" / "gray.png")
    Image.fromarray(rng.integers(0, 255, (60, 80, 4), dtype=np.uint8), "RGBA").save(root / "a" / "alpha.png")
    Image.fromarray(rng.integers(0, 65535, (60, 80), dtype=np.uint16)).save(root / "b" / "deep.png")
    Image.fromarray(rng.integers(0, 255, (60, 400, 3), dtype=np.uint8)).save(root / "b" / "panorama.png")
    Image.fromarray(rng.integers(0, 255, (8, 10, 3), dtype=np.uint8)).save(root / "b" / "tiny.png")
    report = run_audit(root, checks="integrity")
    m = report.manifest
    found = {f.code: {m.locations[i] for i in f.images} for f in report.findings}
    assert found["mixed_modes"] == {"a/gray.png", "b/deep.png"}
    assert found["alpha"] == {"a/alpha.png"} and found["sixteen_bit"] == {"b/deep.png"}
    assert found["odd_sizes"] == {"b/panorama.png"} and found["tiny"] == {"b/tiny.png"}


@pytest.mark.slow
def test_audit_of_clothing5_completes_with_every_check(clothing5_dir, tmp_path):
    report = run_audit(clothing5_dir, seed=0)
    assert report.manifest.num_classes == 5 and report.scan.ok.all()
    assert set(report.checks) == {"stats", "size", "imbalance", "integrity", "quality", "duplicates",
                                  "variation", "shortcut", "labels"}
    paths = write_reports(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert 0 <= data["details"]["labels"]["estimated_error_rate"] < 0.5


@pytest.mark.slow
def test_audit_of_a_fashion_mnist_sample_estimates_its_label_error_rate(fashion_mnist_dir):
    report = run_audit(fashion_mnist_dir, sample=5000, seed=0, checks="duplicates,labels")
    labels = report.extras["labels"]
    assert labels["oof_accuracy"] > 0.8 and 0.005 < labels["estimated_error_rate"] < 0.15


def test_a_failing_check_becomes_an_error_finding_and_the_others_still_report(monkeypatch):
    import pixelforge.audit.checks.quality as quality
    from pixelforge.errors import debug_flag

    def broken(ctx):
        raise KeyError("a bug")

    monkeypatch.setattr(quality, "check_quality", broken)
    monkeypatch.delenv("PIXELFORGE_DEBUG", raising=False)
    data = make_shapes(20, seed=1)
    report = run_audit(data.manifest, checks="size,quality")
    failed = report.by_check("quality", "check_failed")
    assert failed and failed[0].severity == "error" and "KeyError" in failed[0].message
    assert report.by_check("size")  # the other check still reported
    monkeypatch.setitem(debug_flag, "on", True)  # --debug: the traceback instead
    with pytest.raises(KeyError):
        run_audit(data.manifest, checks="quality")
