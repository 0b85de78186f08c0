"""pixelforge browse: the curation file, --curation in every command, and the web app's safety
(only dataset images served, writes need the session token, everything escaped, Ctrl-C stops)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelforge.browse.curation import CurationFile, apply_curation, decisions_from, read_records
from pixelforge.cli import app
from pixelforge.data.read import read_dataset
from pixelforge.errors import PixelforgeError

pytest.importorskip("starlette")
pytest.importorskip("httpx")


def client_for(app):
    """Starlette's TestClient on this server's own address (the Host header the app accepts)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # recent starlette warns that it prefers httpx2 to httpx
        from starlette.testclient import TestClient

        return TestClient(app, base_url="http://127.0.0.1:8765")


runner = CliRunner()


def png(path: Path, value: int, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    """tree/{cat,dog}/k.png: 3 cats, 3 dogs."""
    root = tmp_path / "tree"
    for label in ("cat", "dog"):
        for k in range(3):
            png(root / label / f"{k}.png", 40 * k + (100 if label == "dog" else 0))
    return root


# ---- the curation file ------------------------------------------------------------------------------
def test_decisions_are_appended_with_time_and_previous_value_and_undo_appends(tmp_path):
    path = tmp_path / "c.jsonl"
    cur = CurationFile(path)
    cur.set([("cat/0.png", "label", "dog"), ("cat/1.png", "label", "dog")])
    cur.set([("dog/2.png", "excluded", True)])
    first = path.read_text().splitlines()
    assert len(first) == 3
    record = json.loads(first[0])
    assert record["key"] == "cat/0.png" and record["value"] == "dog" and record["previous"] is None
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"])

    assert cur.undo() == ["dog/2.png"]
    lines = path.read_text().splitlines()
    assert lines[:3] == first, "undo never rewrites a line"
    assert json.loads(lines[3]) | {"time": "", "batch": ""} == {
        "time": "", "key": "dog/2.png", "field": "excluded", "value": False, "previous": True, "batch": "",
        "undo": json.loads(first[2])["batch"]}
    again = CurationFile(path)  # read back: the relabels stand, the exclusion is undone
    assert again.decision("cat/0.png").label == "dog" and not again.decision("dog/2.png").excluded
    assert sorted(decisions_from(read_records(path))) == ["cat/0.png", "cat/1.png"]
    assert again.undo() == ["cat/0.png", "cat/1.png"] and again.undo() == []


def test_a_cut_off_last_line_is_ignored_but_a_bad_line_is_an_error(tmp_path):
    path = tmp_path / "c.jsonl"
    CurationFile(path).set([("cat/0.png", "excluded", True)])
    with open(path, "a") as handle:
        handle.write('{"key": "cat/1.png", "fie')  # a crash mid-write
    assert [r["key"] for r in read_records(path)] == ["cat/0.png"]
    path.write_text('{"key": "cat/0.png", "field": "colour", "value": 1}\n')
    with pytest.raises(PixelforgeError, match="line 1: unknown field 'colour'"):
        read_records(path)
    path.write_text("not json\n")
    with pytest.raises(PixelforgeError, match="line 1: not JSON"):
        read_records(path)


def test_read_dataset_applies_relabels_and_exclusions_and_counts_them_in_notes(tree, tmp_path):
    path = tmp_path / "c.jsonl"
    CurationFile(path).set([("cat/0.png", "label", "dog"), ("cat/1.png", "excluded", True),
                            ("dog/0.png", "checked", True), ("gone.png", "excluded", True)])
    m = read_dataset(tree, curation=str(path))
    assert len(m) == 5 and m.class_counts() == {"cat": 1, "dog": 4}
    assert m.labels[m.locations.index("cat/0.png")] == "dog" and "cat/1.png" not in m.locations
    assert "curation c.jsonl: 1 relabelled (cat → dog 1); 1 excluded; 1 checked as fine" in m.notes
    assert "curation c.jsonl: 1 decision(s) name images not in this dataset" in m.notes
    assert read_dataset(tree, curation=None).class_counts() == {"cat": 3, "dog": 3}, "None is no curation"
    assert len(read_dataset(tree)) == 6, "the dataset itself is untouched"
    with pytest.raises(PixelforgeError, match="no such curation file"):
        read_dataset(tree, curation=str(tmp_path / "missing.jsonl"))


def test_curation_runs_after_the_label_options_and_a_manifest_is_curated_once(tree, tmp_path):
    path = tmp_path / "c.jsonl"
    CurationFile(path).set([("cat/2.png", "label", "pet")])
    m = read_dataset(tree, label_map="dog:pet", curation=str(path))
    assert m.class_counts() == {"cat": 2, "pet": 4}
    from pixelforge.audit import run_audit

    report = run_audit(m, checks="stats", curation=str(path))
    assert len(report.manifest) == 6, "a Manifest read with the file is not curated twice"
    assert apply_curation(read_dataset(tree), path).class_counts() == {"cat": 2, "dog": 3, "pet": 1}


def test_info_train_and_audit_take_curation(tree, tmp_path):
    path = tmp_path / "c.jsonl"
    CurationFile(path).set([("cat/0.png", "label", "dog"), ("dog/1.png", "excluded", True),
                            ("dog/2.png", "checked", True)])
    result = runner.invoke(app, ["info", str(tree), "--curation", str(path), "--json", "--sizes", "0"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["images"] == 5 and info["class_counts"] == {"cat": 2, "dog": 3}
    assert any(n.startswith("curation c.jsonl: 1 relabelled") for n in info["notes"])

    result = runner.invoke(app, ["audit", str(tree), "--out", str(tmp_path / "audit"), "--checks", "quality",
                                 "--curation", str(path), "--json", "-o", "quality_z=0.1"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["images"] == 5
    decided = [f for f in report["findings"] if f["values"].get("decided")]
    assert decided, [f["title"] for f in report["findings"]]
    for f in decided:
        notes = {e["location"]: e.get("note", "") for e in f["images"]}
        assert any("decided:" in n for n in notes.values()) and "already decided" in f["message"]

    result = runner.invoke(app, ["train", str(tree), "-o", f"curation={path}", "--curation", "other.jsonl",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "name different files" in result.output


# ---- the web app ------------------------------------------------------------------------------------
@pytest.fixture
def browser_app(tree, tmp_path):
    from pixelforge.browse.app import create_app
    from pixelforge.browse.session import Session

    outside = png(tmp_path / "secret" / "private.png", 7)
    os.symlink(outside, tree / "cat" / "link.png")  # a link out of the dataset's folder
    session = Session(read_dataset(tree), tmp_path / "c.jsonl")
    client = client_for(create_app(session, token="s3cret-token"))
    return client, session


def test_images_are_served_by_row_only_never_by_path(browser_app):
    client, session = browser_app
    m = session.manifest
    ok = m.locations.index("cat/0.png")
    assert client.get(f"/thumb/{ok}").headers["content-type"] == "image/png"
    link = m.locations.index("cat/link.png")
    assert client.get(f"/thumb/{link}").status_code == 404, "a symlink out of the tree is not served"
    assert client.get(f"/full/{link}").status_code == 404
    for url in ["/thumb/../../etc/passwd", "/thumb/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/thumb/..%2F..%2Fetc%2Fpasswd",
                "/full//etc/passwd", "/thumb/%2Fetc%2Fpasswd", "/thumb/-1", f"/thumb/{len(m)}", "/thumb/0x1",
                "/static/../curation.py", "/static/..%2Fcuration.py", "/static/%2e%2e/app.py",
                "/static/browse.js/../../app.py", "/etc/passwd", "/cat/0.png", "/tree/cat/0.png",
                "/image/..%2F..%2Fetc%2Fpasswd", "/image/%2Fetc%2Fpasswd"]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"root:" not in response.content and b"import" not in response.content, url


def test_a_write_without_the_token_or_from_another_origin_is_refused(browser_app, tmp_path):
    client, _session = browser_app
    body = {"keys": ["cat/0.png"], "action": "exclude"}
    good = {"x-pixelforge-token": "s3cret-token"}
    assert client.post("/api/decide", json=body).status_code == 403
    assert client.post("/api/decide", json=body, headers={"x-pixelforge-token": "guess"}).status_code == 403
    assert client.post("/api/undo", json={}).status_code == 403
    assert client.post("/api/decide", json=body, headers={**good, "origin": "http://evil.example"}).status_code == 403
    form = client.post("/api/decide", data={"keys": "cat/0.png", "action": "exclude"}, headers=good)
    assert form.status_code == 403, "a form post (what another site can send) is refused"
    assert client.get("/api/decide").status_code == 405
    assert not (tmp_path / "c.jsonl").exists(), "nothing was written"
    rebound = client.get("/", headers={"host": "evil.example:8765"})
    assert rebound.status_code == 400, "a DNS-rebound Host is refused"
    answer = client.post("/api/decide", json=body, headers={**good, "origin": "http://127.0.0.1:8765"})
    assert answer.status_code == 200 and answer.json()["images"]["cat/0.png"]["excluded"] is True
    assert client.post("/api/decide", json={"keys": ["../x"], "action": "exclude"}, headers=good).status_code == 400
    assert client.post("/api/decide", json={"keys": ["cat/1.png"], "action": "relabel", "value": "cow"},
                       headers=good).status_code == 400


def test_the_page_carries_the_token_and_forbids_framing_and_inline_script(browser_app):
    client, _session = browser_app
    page = client.get("/")
    assert 'name="pixelforge-token" content="s3cret-token"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text and " onclick=" not in page.text


def test_class_names_file_names_and_metadata_are_escaped(tmp_path):
    from pixelforge.browse.app import create_app
    from pixelforge.browse.session import Session

    evil_class = "<img src=x onerror=alert(1)>"
    evil_file = '"><svg onload=alert(2)>.png'
    png(tmp_path / "images" / evil_file, 50)
    png(tmp_path / "images" / "plain.png", 90)
    (tmp_path / "table.csv").write_text(
        f"path,label,note\n\"images/{evil_file.replace(chr(34), chr(34) * 2)}\",\"{evil_class}\",<script>alert(3)</script>\n"
        "images/plain.png,ok,fine\n")
    manifest = read_dataset(tmp_path / "table.csv")
    assert evil_class in manifest.classes and manifest.metadata["note"][0] == "<script>alert(3)</script>"
    client = client_for(create_app(Session(manifest, tmp_path / "c.jsonl")))
    row = next(i for i, loc in enumerate(manifest.locations) if loc.endswith(evil_file))
    for url in ["/", f"/image/{row}", "/?label=" + "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "/?label=%3Cb%3E"]:
        text = client.get(url).text
        for raw in (evil_class, "<svg onload", "<script>alert(3)", "<b>"):
            assert raw not in text, (url, raw)
    assert "&lt;img src=x onerror=alert(1)&gt;" in client.get("/").text
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in client.get(f"/image/{row}").text


def test_grid_filters_page_and_reject_unknown_values(tree, tmp_path):
    from pixelforge.browse.app import create_app
    from pixelforge.browse.session import Session

    session = Session(read_dataset(tree), tmp_path / "c.jsonl")
    session.decide(["cat/0.png"], "relabel", "dog")
    client = client_for(create_app(session))
    tiles = lambda url: re.findall(r'data-key="([^"]+)" data-row', client.get(url).text)  # noqa: E731
    assert tiles("/?label=dog") == ["cat/0.png", "dog/0.png", "dog/1.png", "dog/2.png"], "curated labels"
    assert tiles("/?decided=relabelled") == ["cat/0.png"]
    assert tiles("/?per=60&q=1.png") == ["cat/1.png", "dog/1.png"]
    assert client.get("/?label=cow").status_code == 400 and "no class" in client.get("/?label=cow").text
    assert client.get("/?per=7").status_code == 400
    assert client.get("/summary").status_code == 404 and client.get("/confusion").status_code == 404


def test_browse_command_serves_on_localhost_and_stops_cleanly_on_ctrl_c(tree, tmp_path):
    command = [sys.executable, "-m", "pixelforge.cli", "browse", str(tree), "--port", "0",
               "--curation", str(tmp_path / "c.jsonl")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"pixelforge browse" in response.read()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_browse_command_errors_are_one_line(tree, tmp_path):
    result = runner.invoke(app, ["browse", str(tree), "--audit", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no audit report here" in result.output
    result = runner.invoke(app, ["browse", str(tree), "-o", "curation=x.jsonl"])
    assert result.exit_code == 2 and "drop -o curation=" in result.output


def test_keep_one_of_a_duplicate_group_excludes_the_others_and_the_audit_shows_it_decided(tmp_path):
    from pixelforge.browse.app import create_app
    from pixelforge.browse.session import Session
    from pixelforge.datasets.shapes import make_shapes

    data = tmp_path / "shapes"
    make_shapes(6, size=16, seed=0, exact_duplicates=1, write_to=data)
    result = runner.invoke(app, ["audit", str(data), "--out", str(tmp_path / "audit"), "--checks", "duplicates"])
    assert result.exit_code == 0, result.output
    session = Session(read_dataset(data), tmp_path / "c.jsonl", audit=tmp_path / "audit")
    finding = next(f for f in session.audit.findings if f.groups)
    group = [session.manifest.locations[r] for r in finding.groups[0]]
    client = client_for(create_app(session, token="t"))
    page = client.get(f"/image/{finding.groups[0][0]}").text
    assert page.count("data-keep=") == len(group)
    answer = client.post("/api/decide", json={"keys": [group[1]], "action": "keep"}, headers={"x-pixelforge-token": "t"})
    states = answer.json()["images"]
    assert states[group[1]]["checked"] and not states[group[1]]["excluded"]
    assert all(states[k]["excluded"] for k in group if k != group[1])
    curated = read_dataset(data, curation=str(tmp_path / "c.jsonl"))
    assert group[1] in curated.locations and not set(group) - {group[1]} & set(curated.locations)
    summary = client.get("/summary").text
    assert re.search(rf'<td class="num">{len(group)}</td>', summary), "the finding's images are all decided"
    one = client.post("/api/decide", json={"keys": [curated.locations[0]] if curated.locations[0] not in group
                                           else [curated.locations[-1]], "action": "keep"},
                      headers={"x-pixelforge-token": "t"})
    assert one.status_code == 400 and "in no duplicate group" in one.json()["error"]


def test_with_a_run_the_confusion_matrix_cells_link_to_their_images_and_predictions_are_cached(tmp_path):
    import html

    from pixelforge.browse.app import create_app
    from pixelforge.browse.session import Session
    from pixelforge.datasets.shapes import make_shapes

    data = tmp_path / "shapes"
    make_shapes(8, size=16, seed=1, write_to=data)
    result = runner.invoke(app, ["train", str(data), "--model", "dnn", "--size", "16", "--epochs", "1",
                                 "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    session = Session(read_dataset(data), tmp_path / "c.jsonl", run=tmp_path / "run")
    session.start()
    assert session.predictions.wait(timeout=120), session.predictions.error
    client = client_for(create_app(session))
    page = client.get("/confusion").text
    cells = re.findall(r'<a href="(/\?label=[^"]+)">(\d+)</a>', page)
    assert sum(int(n) for _, n in cells) == len(session.manifest)
    for href, n in cells:
        assert len(re.findall(r'data-key="[^"]+" data-row', client.get(html.unescape(href)).text)) == int(n)
    wrong = client.get("/?outcome=wrong&sort=confidence").text
    assert wrong.count("tile wrong") == wrong.count('class="tile')
    row = session.select(session.parse({"sort": "confidence"}))[0]
    assert "<h3>model</h3>" in client.get(f"/image/{row}").text and len(session.top(row)) == 4
    again = Session(read_dataset(data), tmp_path / "c.jsonl", run=tmp_path / "run")
    again.start()
    assert again.predictions.ready and np.allclose(again.predictions.probs, session.predictions.probs, atol=1e-3), \
        "the second start reads RUN/browse/ instead of predicting again"
