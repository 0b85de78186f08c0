"""pixelforge browse in a real browser (Playwright driving the system chromium): filter to an audit
finding, relabel two images and exclude one with the keyboard, reload, and train on the decisions."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from pixelforge.cli import app

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("uvicorn")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")

runner = CliRunner()


@pytest.fixture
def shapes_with_audit(tmp_path):
    from pixelforge.datasets.shapes import make_shapes

    data = tmp_path / "shapes"
    make_shapes(10, size=16, seed=0, dark=3, exact_duplicates=1, write_to=data)
    result = runner.invoke(app, ["audit", str(data), "--out", str(tmp_path / "audit"), "--checks", "quality,duplicates"])
    assert result.exit_code == 0, result.output
    return data, tmp_path / "audit"


def test_decisions_made_with_the_keyboard_survive_a_reload_and_training_honours_them(shapes_with_audit, tmp_path):
    from pixelforge.browse.server import Background
    from pixelforge.browse.session import Session
    from pixelforge.data.read import read_dataset

    data, audit = shapes_with_audit
    curation = tmp_path / "decisions.jsonl"
    manifest = read_dataset(data)
    session = Session(manifest, curation, audit=audit)
    dark = next(f for f in session.audit.findings if f.code == "dark")
    with Background(session) as url, playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url)
            assert page.locator("#grid .tile").count() == len(manifest)
            with page.expect_navigation():
                page.select_option("#finding", str(dark.id))  # the select submits the filter form itself
            tiles = page.locator("#grid .tile")
            assert tiles.count() == len(dark.rows) == 3
            keys = [tiles.nth(i).get_attribute("data-key") for i in range(3)]
            labels = [tiles.nth(i).locator(".lab").inner_text() for i in range(3)]
            target = next(c for c in session.classes if c not in labels[:2])
            digit = str(session.classes.index(target) + 1)

            page.keyboard.press("ArrowRight")  # focus the first image
            page.keyboard.press(" ")  # select it
            page.keyboard.press("ArrowRight")
            page.keyboard.press(" ")
            page.keyboard.press(digit)  # relabel both
            playwright.expect(page.locator("#status")).to_have_text(re.compile(r"^relabelled 2 image"))
            page.keyboard.press("Escape")  # clear the selection
            page.keyboard.press("ArrowRight")
            page.keyboard.press("x")  # exclude the focused one
            playwright.expect(page.locator("#status")).to_have_text(re.compile(r"^excluded 1 image"))

            page.reload()
            tiles = page.locator("#grid .tile")
            for i in (0, 1):
                assert "relabelled" in tiles.nth(i).get_attribute("class")
                assert tiles.nth(i).locator(".lab").inner_text() == target
                assert tiles.nth(i).locator(".orig").inner_text() == labels[i]
            assert "excluded" in tiles.nth(2).get_attribute("class")
            assert page.locator('[data-count="relabelled"]').inner_text() == "2"
            assert page.locator('[data-count="excluded"]').inner_text() == "1"
        finally:
            browser.close()

    lines = [json.loads(line) for line in curation.read_text().splitlines()]
    assert [(r["key"], r["field"], r["value"]) for r in lines] == [
        (keys[0], "label", target), (keys[1], "label", target), (keys[2], "excluded", True)]

    result = runner.invoke(app, ["train", str(data), "--curation", str(curation), "--epochs", "1", "--model", "dnn",
                                 "--size", "16", "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    before = manifest.class_counts()
    after = summary["data"]["class_counts"]
    assert summary["data"]["images"] == len(manifest) - 1
    assert summary["train_images"] + summary["validation_images"] + summary["metrics"].get("test_images", 0) \
        == len(manifest) - 1
    expected = dict(before)
    expected[target] += 2
    for i in range(3):
        expected[labels[i]] -= 1
    assert after == expected
    assert any(note.startswith("curation decisions.jsonl: 2 relabelled") and "1 excluded" in note
               for note in summary["data"]["notes"])
