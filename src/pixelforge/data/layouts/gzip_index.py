"""Random access into a gzip file through restart points taken during one sequential pass.

zlib decompressor objects can be copied, so while a gzip stream is read once from start to end we
keep a copy of the decompressor every ``spacing`` bytes of output (about 40 KB of state each). A later
read of ``size`` bytes at uncompressed ``offset`` starts from the nearest restart point before it and
decompresses at most ``spacing`` bytes more, instead of everything from the start of the file.
Concatenated gzip members and zero padding after the last one are handled.
"""

from __future__ import annotations

import bisect
import io
import zlib

GZIP_WBITS = 31  # gzip header and trailer, CRC checked
CHUNK = 1 << 16
DEFAULT_SPACING = 16 * 1024**2


def _decompress(d, chunk: bytes):
    """Feed ``chunk`` to ``d``, starting a new decompressor at each gzip member boundary."""
    out = []
    while chunk:
        if d.eof:
            if not chunk.strip(b"\0"):  # zero padding after the last member
                break
            d = zlib.decompressobj(GZIP_WBITS)
        out.append(d.decompress(chunk))
        chunk = d.unused_data if d.eof else b""
    return d, b"".join(out)


class GzipIndex:
    """Restart points ``(compressed offset, uncompressed offset, decompressor)`` of one gzip file."""

    def __init__(self, path, points):
        self.path = path
        self.points = points
        self._starts = [p[1] for p in points]

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at uncompressed ``offset`` (fewer at the end of the data). Thread-safe."""
        comp, pos, d = self.points[bisect.bisect_right(self._starts, offset) - 1]
        d = d.copy()
        out = bytearray()
        with open(self.path, "rb") as fh:
            fh.seek(comp)
            while len(out) < size:
                raw = fh.read(CHUNK)
                if not raw:
                    break
                d, data = _decompress(d, raw)
                end = pos + len(data)
                if end > offset:
                    start = max(0, offset - pos)
                    out += data[start : start + size - len(out)]
                pos = end
        return bytes(out)


class GzipIndexer(io.RawIOBase):
    """A readable decompressed view of a gzip file that records restart points as it is read."""

    def __init__(self, path, spacing: int = DEFAULT_SPACING):
        super().__init__()
        self.path = path
        self.spacing = spacing
        self._fh = open(path, "rb")
        self._d = zlib.decompressobj(GZIP_WBITS)
        self._chunk = b""
        self._off = 0
        self._comp = 0
        self._total = 0
        self._next = spacing
        self._points = [(0, 0, self._d.copy())]

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while self._off >= len(self._chunk):
            raw = self._fh.read(CHUNK)
            if not raw:
                if not self._d.eof:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
                return b""
            self._comp += len(raw)
            self._d, self._chunk = _decompress(self._d, raw)
            self._off = 0
            self._total += len(self._chunk)
            if self._total >= self._next:
                self._points.append((self._comp, self._total, self._d.copy()))
                self._next = self._total + self.spacing
        if n is None or n < 0:
            n = len(self._chunk) - self._off
        out = self._chunk[self._off : self._off + n]
        self._off += len(out)
        return out

    def index(self) -> GzipIndex:
        return GzipIndex(self.path, list(self._points))

    def close(self) -> None:
        self._fh.close()
        super().close()
