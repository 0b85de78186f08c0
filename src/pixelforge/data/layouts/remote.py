"""Remote files over http(s): a Storage for image URLs and a reader for a remote dataset file.

Every fetch has a connect/read timeout, an overall deadline, a maximum size (checked against
Content-Length before downloading and while streaming), and one retry after a connection error, a
timeout or a 5xx/429 answer (never after other 4xx). Files land in an on-disk cache keyed by the
URL's SHA-256, under ``$PIXELFORGE_CACHE`` or ``~/.cache/pixelforge``; they are written to a temporary
name and renamed when complete, so an interrupted download never leaves a half file behind.
Only http and https are accepted, also across redirects. Uses the standard library only.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from pixelforge import __version__
from pixelforge.data.locations import Storage, safe_relative_path
from pixelforge.errors import LayoutError, PixelforgeError

DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_IMAGE_BYTES = 64 * 1024**2
DEFAULT_MAX_DATASET_BYTES = 4 * 1024**3
RETRY_DELAY = 0.5
CHUNK = 1 << 16


def cache_dir() -> Path:
    root = os.environ.get("PIXELFORGE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "pixelforge"


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise PixelforgeError(f"{url}: unsupported URL scheme {parts.scheme!r}; only http and https are allowed")
    if not parts.hostname:
        raise PixelforgeError(f"{url}: URL has no host")
    return url


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


class _Transient(Exception):
    """A failure worth one retry (timeout, refused/reset connection, 5xx, 429)."""


def _cache_path(url: str, directory: Path) -> Path:
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
    name = posixpath.basename(unquote(urlsplit(url).path))
    suffix = "".join(Path(name).suffixes[-2:])[:16] if name else ""
    suffix = suffix if all(c.isalnum() or c == "." for c in suffix) else ""
    return directory / "urls" / f"{digest}{suffix}"


def _download(url: str, target: Path, *, timeout: float, max_bytes: int, deadline: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": f"pixelforge/{__version__}"})
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code >= 500 or exc.code == 429:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise PixelforgeError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, PixelforgeError):
            raise exc.reason from None
        if isinstance(exc.reason, TimeoutError):
            raise _Transient(f"timed out after {timeout:g} s") from None
        raise _Transient(f"cannot connect ({exc.reason})") from None
    except TimeoutError:
        raise _Transient(f"timed out after {timeout:g} s") from None
    except PixelforgeError:
        raise
    except (OSError, ValueError) as exc:
        raise _Transient(f"cannot connect ({exc})") from None
    with response:
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise PixelforgeError(f"{url}: too large ({int(length):,} bytes; the limit is {max_bytes:,})")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            received = 0
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except TimeoutError:
                        raise _Transient(f"timed out after {timeout:g} s while reading") from None
                    except OSError as exc:
                        raise _Transient(f"connection broke while reading ({exc})") from None
                    if not block:
                        break
                    received += len(block)
                    if received > max_bytes:
                        raise PixelforgeError(f"{url}: too large (over the limit of {max_bytes:,} bytes)")
                    if time.monotonic() > deadline:
                        raise _Transient("took longer than the overall time limit")
                    out.write(block)
            if length and length.isdigit() and received < int(length):
                raise _Transient(f"connection closed after {received:,} of {int(length):,} bytes")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def fetch(url: str, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_DATASET_BYTES,
          retries: int = 1, cache: bool = True, directory: Path | None = None,
          total_timeout: float | None = None) -> Path:
    """The local cached copy of ``url``, downloading it when not cached yet."""
    check_url(url)
    target = _cache_path(url, directory or cache_dir())
    if cache and target.is_file():
        return target
    deadline = time.monotonic() + (total_timeout if total_timeout is not None else max(60.0, 10 * timeout))
    problem = ""
    for attempt in range(retries + 1):
        try:
            _download(url, target, timeout=timeout, max_bytes=max_bytes, deadline=deadline)
            return target
        except _Transient as exc:
            problem = str(exc)
            if attempt < retries and time.monotonic() < deadline:
                time.sleep(RETRY_DELAY)
    tries = "once" if retries == 0 else f"{retries + 1} times"
    raise PixelforgeError(f"{url}: {problem} (tried {tries})")


class UrlStorage(Storage):
    """Images at http(s) URLs; a location is a full URL, or a path relative to ``base``."""

    kind = "url"

    def __init__(self, base: str = "", *, timeout: float = DEFAULT_TIMEOUT,
                 max_bytes: int = DEFAULT_MAX_IMAGE_BYTES, retries: int = 1, cache: bool = True,
                 cache_directory: str | os.PathLike | None = None):
        if base:
            check_url(base)
            base = base if base.endswith("/") else base + "/"
        self.base = base
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.retries = retries
        self.cache = cache
        self.cache_directory = Path(cache_directory) if cache_directory else None

    def url(self, location: str) -> str:
        if location.lower().startswith(("http://", "https://")):
            return check_url(location)
        if not self.base:
            raise PixelforgeError(f"{location!r} is not an http(s) URL")
        return urljoin(self.base, safe_relative_path(location))

    def fetch(self, location: str, max_bytes: int | None = None) -> Path:
        return fetch(self.url(location), timeout=self.timeout, max_bytes=max_bytes or self.max_bytes,
                     retries=self.retries, cache=self.cache, directory=self.cache_directory)

    def read(self, location: str) -> bytes:
        path = self.fetch(location)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise PixelforgeError(f"{self.url(location)}: cannot read the cached copy {path} ({exc})") from None

    def local_path(self, location: str) -> Path | None:
        path = _cache_path(self.url(location), self.cache_directory or cache_dir())
        return path if path.is_file() else None

    def describe(self, location: str) -> str:
        try:
            return self.url(location)
        except PixelforgeError:
            return location

    def __repr__(self) -> str:
        return f"UrlStorage({self.base!r})" if self.base else "UrlStorage()"


# ---- a whole remote dataset file ------------------------------------------------------------------

def sniff_kind(path: Path, url: str) -> str:
    """The layout of a downloaded file: from the URL's extension, else from its first bytes."""
    from pixelforge.data.read import EXTENSION_LAYOUTS

    name = posixpath.basename(unquote(urlsplit(url).path)).lower()
    for ext in sorted(EXTENSION_LAYOUTS, key=len, reverse=True):
        if name.endswith(ext):
            return EXTENSION_LAYOUTS[ext]
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"PK\x03\x04"):
        import zipfile

        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        return "npz" if names and all(n.endswith(".npy") for n in names) else "archive"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "archive"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith((b"[", b"{")):
        return "json"
    if b"\x00" not in head and text:
        return "csv"
    raise LayoutError(f"{url}: cannot tell what the downloaded file is (not an archive, CSV, JSON, NPZ or HDF5)")


def read_url_layout(url: str, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_DATASET_BYTES,
                    retries: int = 1, cache: bool = True, inner_layout: str | None = None, **options):
    """Fetch a remote archive / CSV / JSON / NPZ / HDF5 file into the cache and read it.

    Paths inside a remote CSV or JSON are resolved against the URL's folder and fetched (and cached)
    on first read, with the same timeout and retry and a per-image size limit.
    """
    from pixelforge.data.read import check_options, layout_reader

    check_url(url)
    path = fetch(url, timeout=timeout, max_bytes=max_bytes, retries=retries, cache=cache)
    kind = inner_layout or sniff_kind(path, url)
    check_options(layout_reader(kind), options, kind)
    if kind in ("csv", "json"):
        # the table is read from the cache under its own URL; relative image paths resolve against its folder
        storage = UrlStorage(urljoin(url, "."), timeout=timeout, retries=retries, cache=cache)
        manifest = layout_reader(kind)(url, storage=storage, member_prefix="", source=url, **options)
    elif kind in ("url", "directory", "arrays", "dataframe"):
        raise LayoutError(f"{url}: layout {kind!r} cannot be read from a downloaded file")
    else:
        manifest = layout_reader(kind)(str(path), **options)
    manifest.source = url
    manifest.notes.append(f"downloaded to {path}")
    return manifest
