"""Where a table's image paths point, with fastai's and Keras' conventions.

- ``folder=`` (Keras: ``directory=``): the folder the paths are relative to, itself relative to the
  table's folder. It may not climb out of the table's folder (out of the archive, for a table inside
  one); an absolute folder is taken as given for a table on disk, since the caller chose it, not the
  table.
- ``suffix=``: appended to every path, as fastai does (``suffix='.jpg'`` for ids without extension).
- Without a suffix, an id with no image extension is looked up among the files of its folder by stem
  (``4285fab0`` → ``4285fab0.jpg``, any case of the common image extensions). Each folder is listed
  once, so this costs one directory listing, not a file-system call per extension per row.

Row paths stay safe: absolute paths and paths that climb out of the storage root are refused.
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter, defaultdict
from pathlib import Path

from pixelforge.data.layouts.directory import is_image_name
from pixelforge.data.layouts.rows import missing_reason
from pixelforge.data.locations import FileStorage, Storage, safe_relative_path
from pixelforge.errors import LayoutError, PixelforgeError, UnsafePathError

# tried in this order when an id has no extension (the first wins when several files match)
PROBE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def folder_option(folder, directory, source: str):
    """``folder=`` or its Keras synonym ``directory=`` (both given must agree)."""
    if folder is not None and directory is not None and os.fspath(folder) != os.fspath(directory):
        raise LayoutError(f"{source}: folder={folder!r} and directory={directory!r} disagree; give one of them")
    return folder if folder is not None else directory


def _folder_prefix(folder, prefix: str, source: str, hint: str) -> str:
    text = os.fspath(folder).strip() if folder is not None else ""
    if text in ("", "."):
        return prefix
    try:
        return safe_relative_path(text, what="folder", prefix=prefix)
    except UnsafePathError as exc:
        raise LayoutError(f"{source}: {exc}; {hint}") from None


def table_storage(path: str, storage: Storage | None, member_prefix: str | None, folder,
                  source: str) -> tuple[Storage, str]:
    """The storage a table's relative paths live in, and their prefix inside it.

    storage None: the table is a file on disk; paths are relative to its folder (joined with ``folder``).
    Otherwise the table is ``path`` inside ``storage`` (``member_prefix`` overrides its folder there).
    """
    if storage is None:
        if folder is not None and os.path.isabs(os.fspath(folder)):
            root, prefix = Path(folder), ""
        else:
            hint = "to read images outside the table's folder, give an absolute folder"
            root, prefix = Path(path).resolve().parent, _folder_prefix(folder, "", source, hint)
        if not (root / prefix).is_dir():
            raise LayoutError(f"{source}: folder={os.fspath(folder)!r}: no such folder {root / prefix}")
        return FileStorage(root), prefix
    prefix = posixpath.dirname(path) if member_prefix is None else member_prefix.strip("/")
    return storage, _folder_prefix(folder, prefix, source, f"the images must be in the {storage.kind} storage too")


class TablePaths:
    """Turns a table's path values into storage locations (``locate``) and says what it did (``notes``)."""

    def __init__(self, storage: Storage, prefix: str = "", suffix: str | None = None, check_files: bool = True):
        self.storage, self.prefix = storage, prefix
        self.suffix = str(suffix or "")
        self.check_files = check_files
        self.probed: Counter = Counter()  # extension found → ids matched with it
        self.ambiguous = 0
        self._stems: dict[str, tuple[set, dict]] = {}
        self._tree: dict[str, list[str]] | None = None

    def locate(self, value: str) -> tuple[str | None, str | None]:
        """``(location, None)``, or ``(None, reason)`` to skip the row."""
        try:
            location = safe_relative_path(value + self.suffix, prefix=self.prefix)
        except UnsafePathError as exc:
            return None, f"refused: {exc}"
        if self.suffix or is_image_name(location):
            reason = missing_reason(self.storage, location) if self.check_files else None
            return (None, reason) if reason else (location, None)
        return self._probe(location)

    def _probe(self, location: str) -> tuple[str | None, str | None]:
        folder, name = posixpath.split(location)
        names, stems = self._folder(folder)
        if name in names:  # a file named exactly so, extension or not
            return location, None
        matches = stems.get(name)
        if matches:
            best = min(matches, key=lambda n: PROBE_EXTENSIONS.index(posixpath.splitext(n)[1].lower()))
            self.probed[posixpath.splitext(best)[1].lower()] += 1
            self.ambiguous += len(matches) > 1
            return posixpath.join(folder, best), None
        if not self.check_files:
            return location, None
        return None, (f"{self.storage.describe(location)}: file not found (no image extension; also tried "
                      f"{', '.join(PROBE_EXTENSIONS)} in any case)")

    def _folder(self, folder: str) -> tuple[set, dict]:
        """The file names of a folder and its image files by stem, listed once per folder."""
        if folder not in self._stems:
            names = self._names_in(folder)
            stems = defaultdict(list)
            for name in names:
                stem, ext = posixpath.splitext(name)
                if ext.lower() in PROBE_EXTENSIONS:
                    stems[stem].append(name)
            self._stems[folder] = (set(names), stems)
        return self._stems[folder]

    def _names_in(self, folder: str) -> list[str]:
        if isinstance(self.storage, FileStorage):
            try:
                with os.scandir(self.storage.root / folder) as entries:
                    return [e.name for e in entries if e.is_file()]
            except OSError:
                return []
        if self._tree is None:  # archives list all their members at once (from memory)
            self._tree = defaultdict(list)
            try:
                files = self.storage.list_files()
            except PixelforgeError:  # a storage that cannot list (URLs): nothing to match against
                files = []
            for file in files:
                where, name = posixpath.split(file)
                self._tree[where].append(name)
        return self._tree.get(folder, [])

    def notes(self) -> list[str]:
        if not self.probed:
            return []
        found = ", ".join(f"{ext} {n:,}" for ext, n in sorted(self.probed.items(), key=lambda kv: -kv[1]))
        note = (f"ids have no file extension: matched {sum(self.probed.values()):,} file(s) by trying the common "
                f"image extensions (found {found})")
        if self.ambiguous:
            note += f"; {self.ambiguous:,} id(s) matched several files, the first of {', '.join(PROBE_EXTENSIONS)} was taken"
        return [note]
