"""Remote sources against a local HTTP server on 127.0.0.1: files, timeouts, size limits, retries, cache."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import threading
import time
import zipfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelforge import read_dataset
from pixelforge.cli import app
from pixelforge.data.layouts.remote import UrlStorage, fetch, read_url_layout
from pixelforge.data.loader import iterate_decoded
from pixelforge.data.preprocess import Preprocess
from pixelforge.errors import LayoutError, PixelforgeError


def png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


FILES = {
    "/ds/img/a.png": png_bytes(10),
    "/ds/img/b.png": png_bytes(20),
    "/ds/img/c.png": png_bytes(30),
    "/ds/img/broken.png": b"\x89PNG\r\n\x1a\n",
    "/ds/labels.csv": b"filepath,label\nimg/a.png,x\nimg/b.png,y\nimg/c.png,x\nimg/broken.png,y\n../../../etc/passwd,x\n",
    "/ds/labels.json": json.dumps({"x": ["img/a.png"], "y": ["img/b.png"]}).encode(),
    "/ds/tree.zip": zip_bytes({f"tree/{c}/{i}.png": png_bytes(i) for c in ("cat", "dog") for i in range(3)}),
    "/download?id=7": zip_bytes({f"t/{c}/0.png": png_bytes(1) for c in ("p", "q")}),
}


STOP = threading.Event()  # set at teardown so a slow handler ends at once


class Handler(http.server.BaseHTTPRequestHandler):
    hits: Counter = Counter()

    def log_message(self, *args):  # keep test output quiet
        pass

    def send_bytes(self, data: bytes, code: int = 200):
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def do_GET(self):  # noqa: N802 - http.server's naming
        Handler.hits[self.path] += 1
        if self.path in FILES:
            return self.send_bytes(FILES[self.path])
        if self.path == "/slow.png":
            STOP.wait(2)
            return self.send_bytes(png_bytes(1))
        if self.path == "/huge.zip":  # announces its size
            self.send_response(200)
            self.send_header("Content-Length", str(10**11))
            self.end_headers()
            return None
        if self.path == "/endless.png":  # no Content-Length, streams more than allowed
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"\0" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        if self.path == "/flaky.png":
            if Handler.hits[self.path] == 1:
                return self.send_bytes(b"busy", 503)
            return self.send_bytes(png_bytes(99))
        if self.path == "/down.png":
            return self.send_bytes(b"oops", 500)
        if self.path == "/to-ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/x.zip")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self.send_bytes(b"not here", 404)


@contextlib.contextmanager
def running_server():
    """A threaded HTTP server on 127.0.0.1; on exit every handler thread has ended (other tests
    check for stray threads before forking workers)."""
    Handler.hits.clear()
    STOP.clear()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = False
    httpd.block_on_close = True  # server_close() joins the handler threads
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        STOP.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path / "cache"))
    for name in ("no_proxy", "NO_PROXY"):  # a proxy set in the environment must not see local requests
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    with running_server() as url:
        yield url


def test_no_server_thread_outlives_its_test(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    before = threading.active_count()
    with running_server() as url:
        with pytest.raises(PixelforgeError, match="timed out"):
            UrlStorage(timeout=0.2, retries=0).read(url + "/slow.png")  # its handler is still waiting
    assert threading.active_count() == before


def test_url_storage_reads_and_caches(server, tmp_path):
    storage = UrlStorage()
    url = server + "/ds/img/a.png"
    assert storage.read(url) == FILES["/ds/img/a.png"]
    assert storage.read(url) == FILES["/ds/img/a.png"]
    assert Handler.hits["/ds/img/a.png"] == 1
    cached = storage.local_path(url)
    assert cached is not None and cached.is_relative_to(tmp_path / "cache")
    assert cached.suffix == ".png"


def test_relative_locations_resolve_against_the_base(server):
    storage = UrlStorage(server + "/ds/")
    assert storage.read("img/b.png") == FILES["/ds/img/b.png"]
    with pytest.raises(PixelforgeError, match="escapes"):
        storage.read("../../secret")


def test_timeout_is_an_error_naming_the_url_after_one_retry(server):
    started = time.monotonic()
    with pytest.raises(PixelforgeError, match=r"/slow\.png: timed out after 0.3 s \(tried 2 times\)"):
        UrlStorage(timeout=0.3).read(server + "/slow.png")
    assert time.monotonic() - started < 5
    assert Handler.hits["/slow.png"] == 2


def test_announced_too_large_file_is_refused_before_download(server, tmp_path):
    with pytest.raises(PixelforgeError, match=r"huge\.zip: too large \(100,000,000,000 bytes"):
        read_dataset(server + "/huge.zip")
    assert not list((tmp_path / "cache").rglob("*.zip"))


def test_streamed_too_large_file_is_cut_off_and_leaves_no_partial_file(server, tmp_path):
    with pytest.raises(PixelforgeError, match="endless.png: too large"):
        UrlStorage(max_bytes=100_000).read(server + "/endless.png")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_flaky_server_succeeds_on_the_retry(server):
    assert UrlStorage().read(server + "/flaky.png") == png_bytes(99)
    assert Handler.hits["/flaky.png"] == 2


def test_server_errors_fail_after_the_retry_and_client_errors_do_not_retry(server):
    with pytest.raises(PixelforgeError, match="HTTP 500"):
        UrlStorage().read(server + "/down.png")
    assert Handler.hits["/down.png"] == 2
    with pytest.raises(PixelforgeError, match="HTTP 404"):
        UrlStorage().read(server + "/nothing.png")
    assert Handler.hits["/nothing.png"] == 1


def test_refused_connection_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with pytest.raises(PixelforgeError, match="cannot connect"):
        fetch("http://127.0.0.1:9/x.png", timeout=1)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x.png", "file:///etc/passwd", "gopher://x", "http://"])
def test_only_http_and_https_are_accepted(url):
    with pytest.raises(PixelforgeError):
        UrlStorage().read(url)


def test_redirects_to_other_schemes_are_refused(server):
    with pytest.raises(PixelforgeError, match="unsupported URL scheme 'ftp'"):
        UrlStorage().read(server + "/to-ftp")


def test_read_dataset_refuses_other_schemes():
    with pytest.raises(LayoutError, match="only http and https"):
        read_dataset("ftp://example.org/data.zip")


# ---- whole remote datasets ---------------------------------------------------------------------------

def test_remote_zip_archive_reads_through_the_cache(server):
    m = read_dataset(server + "/ds/tree.zip")
    assert m.layout == "archive" and m.class_counts() == {"cat": 3, "dog": 3}
    assert m.source == server + "/ds/tree.zip"
    read_dataset(server + "/ds/tree.zip")
    assert Handler.hits["/ds/tree.zip"] == 1


def test_remote_file_without_extension_is_sniffed(server):
    m = read_url_layout(server + "/download?id=7")
    assert m.classes == ["p", "q"]


def test_remote_csv_fetches_images_relative_to_its_url(server):
    m = read_dataset(server + "/ds/labels.csv")
    assert m.layout == "csv" and m.storage.kind == "url"
    assert len(m) == 4 and len(m.skipped) == 1 and m.skipped[0].reason.startswith("refused:")
    skipped = []
    decoded = list(iterate_decoded(m, Preprocess(), batch_size=8, skipped=skipped, workers=2))
    assert sum(len(b[0]) for b in decoded) == 3
    assert len(skipped) == 1 and "broken.png" in skipped[0].item
    assert m.describe(0) == server + "/ds/img/a.png"


def test_remote_json_reads_too(server):
    m = read_dataset(server + "/ds/labels.json")
    assert m.class_counts() == {"x": 1, "y": 1} and m.load(1)[0, 0, 0] == 20


def test_csv_url_column_against_the_server(server, tmp_path):
    csv = tmp_path / "urls.csv"
    csv.write_text(f"url,label\n{server}/ds/img/a.png,x\n{server}/ds/img/b.png,y\n{server}/missing.png,y\n"
                   f"{server}/slow.png,x\n")
    m = read_dataset(csv)
    m.storage.timeout = 0.3
    skipped = []
    decoded = list(iterate_decoded(m, Preprocess(), batch_size=8, skipped=skipped, workers=4))
    assert sum(len(b[0]) for b in decoded) == 2
    reasons = {s.item.rsplit("/", 1)[1]: s.reason for s in skipped}
    assert reasons.keys() == {"missing.png", "slow.png"}
    assert "HTTP 404" in reasons["missing.png"] and "timed out after 0.3 s" in reasons["slow.png"]


def test_cli_info_on_a_url_and_a_failing_url(server):
    result = CliRunner().invoke(app, ["info", server + "/ds/tree.zip", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["class_counts"] == {"cat": 3, "dog": 3}
    bad = CliRunner().invoke(app, ["info", server + "/gone.zip"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    line = bad.stderr.strip()
    assert len(line.splitlines()) == 1 and "/gone.zip" in line and "HTTP 404" in line
