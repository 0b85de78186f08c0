"""Atomic file writes: a reader (or a resumed run after a kill) never sees a half-written file.

Every output is written to ``.NAME.PID.XXXX.partial`` beside its final name and renamed over it in one
step. A process killed mid-write leaves its partial file behind; the next write to the same folder
removes partials whose process is gone (``remove_stale_partials``) and says so.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

_PARTIAL = re.compile(r"^\..+\.(\d+)\.[^.]+\.partial$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or cannot tell: leave its file alone
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
        if match and entry.is_file(follow_symlinks=False) and not _alive(int(match.group(1))):
            try:
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
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
