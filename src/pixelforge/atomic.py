"""Atomic file writes: a reader (or a resumed run after a kill) never sees a half-written file.

Every output is written to ``.NAME.PID.XXXX.partial`` beside its final name and renamed over it in one
step. A process killed mid-write leaves its partial file behind; the next write to the same folder
removes partials whose process is gone (``remove_stale_partials``) and says so: gone means no such
process, a zombie (killed, not yet reaped), or a process that started after the file was last written
(the pid was reused). A full disk, a read-only folder or an output under a file is one PixelforgeError
naming the output (``output_error``), with the partial file removed. ``sha256_file`` is the checksum
that saved models, checkpoints and downloaded weights are verified with.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from pixelforge.errors import PixelforgeError

_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_WRITE_TEXTS = {"No space left on device": "no space left on the device", "Read-only file system": "read-only file system",
                "Disk quota exceeded": "disk quota exceeded"}
_PARTIAL = re.compile(r"^\..+\.(\d+)\.[^.]+\.partial$")


def _alive(pid: int, since: float | None = None) -> bool:
    """Whether process ``pid`` may still be writing a file last modified at ``since``. A zombie (killed,
    not yet reaped) writes nothing, and a process that started after the file's last write is another
    process that got the same pid: neither counts as the writer."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or cannot tell: leave its file alone
    try:  # Linux: /proc/PID/stat says the state and the start time (clock ticks after boot)
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        if fields[0] == b"Z":
            return False
        if since is not None:
            with open("/proc/stat", "rb") as handle:
                boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime"))
            started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
            return started <= since + 2  # btime has one-second steps
    except (OSError, IndexError, ValueError, StopIteration):
        pass
    return True


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete ``.NAME.PID.XXXX.partial`` files in ``folder`` whose writing process no longer runs."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if not _alive(int(match.group(1)), entry.stat(follow_symlinks=False).st_mtime):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    if removed:
        names = ", ".join(p.name for p in removed[:3]) + (" …" if len(removed) > 3 else "")
        warnings.warn(f"removed {len(removed)} unfinished file(s) left by a killed run in {folder}: {names}",
                      stacklevel=3)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike, make_parents: bool = True):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename, on any
    error (or Ctrl-C) the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already gone, or its folder is: nothing left to clean
        if _disk_full_or_read_only(exc):
            raise output_error(path, exc) from None
        raise


def _disk_full_or_read_only(exc: BaseException) -> bool:
    # h5py and safetensors report a full disk with the C library's text (no errno, or not an OSError)
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return True
    return isinstance(exc, Exception) and any(text in str(exc) for text in _WRITE_TEXTS)


def output_error(path: Path, exc: Exception) -> PixelforgeError:
    """One line naming the output and what stopped the write (a full disk, a read-only folder…)."""
    reasons = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.ENOTDIR: "a parent of it is a file, not a folder",
               errno.EEXIST: "a parent of it is a file, not a folder", errno.ENOENT: "its folder does not exist"}
    text = str(exc)
    reason = (reasons.get(getattr(exc, "errno", None)) or next(
        (said for t, said in _WRITE_TEXTS.items() if t in text), None) or getattr(exc, "strerror", None) or text)
    return PixelforgeError(f"{path}: cannot write ({reason}); no partial file was left")


def sha256_file(path) -> str:
    """The SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
