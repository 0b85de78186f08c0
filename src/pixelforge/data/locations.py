"""Where image bytes live: a folder on disk, an archive, a remote server, an HDF5 file, an array.

A Storage turns a Manifest row's ``location`` (a string) into bytes to decode, or directly into a
decoded array (HDF5 and in-memory arrays). Tree storages (folders, archives) can also list their
files, so that the same layout readers work on a folder and on a zip of that folder. Storages hold no
open handles when pickled, so a Manifest can be sent to DataLoader workers or other machines.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

import numpy as np

from pixelforge.errors import PixelforgeError, UnsafePathError

# A backslash separates folders only on Windows; on POSIX it is a legal character of a file name.
BACKSLASH_IS_SEPARATOR = os.sep == "\\"


def safe_relative_path(path: str, *, what: str = "path", prefix: str = "") -> str:
    """Normalise a relative posix path (joined to ``prefix`` when given) and refuse one that is absolute
    or climbs out of its root."""
    text = str(path).strip()
    if BACKSLASH_IS_SEPARATOR:
        text = text.replace("\\", "/")
    if not text:
        raise UnsafePathError(f"empty {what}")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafePathError(f"{what} {text!r} is absolute; only paths inside the dataset are allowed")
    norm = posixpath.normpath(posixpath.join(prefix, text) if prefix else text)
    if norm in ("..", ".") or norm.startswith("../"):
        raise UnsafePathError(f"{what} {text!r} escapes the dataset root")
    return norm


def not_regular_reason(mode: int) -> str:
    kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
    return f"not a regular file ({kind}); not opened"


def printable(text: str) -> str:
    """``text`` as valid UTF-8: the bytes of a file name that is not UTF-8 (legal on Linux; Python
    keeps them as surrogates) become backslash escapes, ``caf\\xe9.png``, for stores and reports."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte (e.g. "\\ud800" in a JSON file)
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


class Storage:
    """Base class: subclasses implement ``read`` and, for trees, ``list_files``."""

    kind = "abstract"

    def read(self, location: str) -> bytes | np.ndarray:
        raise NotImplementedError

    def list_files(self) -> list[str]:
        raise PixelforgeError(f"{self.kind} storage cannot list files")

    def exists(self, location: str) -> bool:
        return True

    def describe(self, location: str) -> str:
        """A human-readable name for an item, used in error messages and reports."""
        return location

    def local_path(self, location: str) -> Path | None:
        """The file on disk holding this item, when there is one (for reports and thumbnails)."""
        return None


class FileStorage(Storage):
    """Files under a root folder on the local disk; locations are posix paths relative to the root."""

    kind = "file"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self._root = str(self.root)  # plain strings on the hot path: pathlib costs more than a small PNG

    def path(self, location: str) -> Path:
        return self.root / safe_relative_path(location)

    def read(self, location: str) -> bytes:
        path = os.path.join(self._root, safe_relative_path(location))
        try:
            # O_NONBLOCK: opening a named pipe must not wait for a writer; fstat then refuses it
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise PixelforgeError(f"{path}: file not found") from None
        except IsADirectoryError:
            raise PixelforgeError(f"{path}: is a folder, not an image file") from None
        except PermissionError:
            raise PixelforgeError(f"{path}: permission denied") from None
        except OSError as exc:
            raise PixelforgeError(f"{path}: cannot read ({exc.strerror or exc})") from None
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise PixelforgeError(f"{path}: {not_regular_reason(mode)}")
            try:
                return handle.read()
            except OSError as exc:
                raise PixelforgeError(f"{path}: cannot read ({exc.strerror or exc})") from None

    def exists(self, location: str) -> bool:
        return self.path(location).is_file()

    def list_files(self) -> list[str]:
        """Regular files (and links to them) below the root, sorted folder by folder, links to folders
        followed once. What is not listed is recorded in ``self.unlisted`` (location → reason) for the
        layout to report: named pipes, sockets and devices (reading a pipe blocks forever), broken
        links, folders that cannot be opened, and folders reached a second time (a symlink loop)."""
        found: list[str] = []
        self.unlisted: dict[str, str] = {}
        seen: set[tuple[int, int]] = set()
        stack = [("", self._root)]
        while stack:
            rel, folder = stack.pop()
            try:
                info = os.stat(folder)
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                self.unlisted[rel or "."] = f"cannot list this folder ({exc.strerror or exc})"
                continue
            if (info.st_dev, info.st_ino) in seen:
                self.unlisted[rel] = "folder already listed through another path (a symbolic link loop?)"
                continue
            seen.add((info.st_dev, info.st_ino))
            folders = []
            for entry in entries:
                name = rel + entry.name
                try:
                    mode = entry.stat().st_mode  # follows links
                except OSError as exc:
                    self.unlisted[name] = ("broken symbolic link" if entry.is_symlink()
                                           else f"cannot read ({exc.strerror or exc})")
                    continue
                if stat.S_ISDIR(mode):
                    folders.append((name + "/", entry.path))
                elif stat.S_ISREG(mode):
                    found.append(name)
                else:
                    self.unlisted[name] = not_regular_reason(mode)
            stack.extend(reversed(folders))  # depth first, in name order, like os.walk
        return found

    def empty_folders(self) -> list[str]:
        """Folders (relative, not hidden) with no files anywhere below them."""
        empty = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            if rel != "." and not filenames and not dirnames and not any(
                p.startswith(".") for p in rel.split(os.sep)
            ):
                empty.append(rel.replace(os.sep, "/"))
        return sorted(empty)

    def describe(self, location: str) -> str:
        return os.path.join(self._root, location)

    def local_path(self, location: str) -> Path | None:
        return self.path(location)

    def __repr__(self) -> str:
        return f"FileStorage({str(self.root)!r})"


class ArrayStorage(Storage):
    """Images held in a numpy array (N x H x W [x C]); locations are row numbers as strings."""

    kind = "array"

    def __init__(self, images: np.ndarray, name: str = "array"):
        if images.ndim not in (3, 4):
            raise PixelforgeError(
                f"{name}: expected images shaped (N, H, W) or (N, H, W, C), got shape {images.shape}"
            )
        self.images = images
        self.name = name

    def read(self, location: str) -> np.ndarray:
        return self.images[int(location)]

    def describe(self, location: str) -> str:
        return f"{self.name}[{location}]"

    def __repr__(self) -> str:
        return f"ArrayStorage({self.name!r}, shape={self.images.shape})"
