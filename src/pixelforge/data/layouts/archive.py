"""zip / tar / tar.gz / tar.bz2 / tar.xz archives read in place, never extracted to disk.

``ZipStorage`` reads members at random through the zip's central directory. ``TarStorage`` lists a
tar in one sequential pass; for a compressed tar (where a backward seek means decompressing from the
start again) that same pass keeps the member bytes in memory, up to ``memory_limit`` bytes in all
(default 1 GiB, or ``$PIXELFORGE_ARCHIVE_MEMORY_MB``), so decoding every image afterwards costs no
further decompression. For a gzip tar the pass also keeps a restart point every 16 MB of output
(about 40 KB each, see ``gzip_index``), so a member past the limit costs at most 16 MB of
decompression; for bz2 / xz it is read by seeking in the compressed stream (cheap in archive order,
slow at random). An uncompressed tar is read with ``os.pread`` at each member's offset.

Member names that are absolute or climb out of the root, links, devices and fifos are refused and
reported as counted skips (``storage.refused``). Archive bombs are stopped by ``max_total_bytes``
(sum of uncompressed member sizes) and ``max_member_bytes``. Storages hold no open handle when
pickled; each process reopens the archive on its first read.

``read_archive_layout`` finds what the archive holds: class folders (the directory layout), or a
CSV (also .csv.gz) / JSON table (read with the archive as its storage, paths relative to the table's
folder in the archive), or an .npz file.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import posixpath
import stat
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

from pixelforge.data.layouts.directory import is_image_name, read_directory_layout
from pixelforge.data.layouts.gzip_index import GzipIndexer
from pixelforge.data.locations import Storage, safe_relative_path
from pixelforge.data.manifest import SPLIT_ALIASES, Manifest, Skip, class_order
from pixelforge.errors import LayoutError, PixelforgeError, UnsafePathError

GiB = 1024**3
DEFAULT_MAX_TOTAL_BYTES = 8 * GiB
DEFAULT_MAX_MEMBER_BYTES = 512 * 1024**2
CSV_EXTENSIONS = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
TABLE_EXTENSIONS = (*CSV_EXTENSIONS, ".json")
HDF5_EXTENSIONS = (".h5", ".hdf5")
# HDF5 needs random access to a real file, which a compressed archive member is not
HDF5_ADVICE = "HDF5 files are not read inside archives; extract it and read the .h5 file directly"


def default_memory_limit() -> int:
    mb = os.environ.get("PIXELFORGE_ARCHIVE_MEMORY_MB")
    try:
        return int(float(mb) * 1024**2) if mb else GiB
    except ValueError:
        return GiB


class ArchiveStorage(Storage):
    """Common part of zip and tar storages: the member index, refusals, size limits, pickling."""

    kind = "archive"

    def __init__(self, path, *, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
                 max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES):
        self.path = Path(path).resolve()
        self.max_total_bytes = int(max_total_bytes)
        self.max_member_bytes = int(max_member_bytes)
        self.refused: list[Skip] = []
        self._index: dict | None = None
        self._lock = threading.Lock()

    # subclasses fill self._index (name → member info) and self.refused
    def _scan(self) -> None:
        raise NotImplementedError

    def _members(self) -> dict:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._scan()
        return self._index

    def list_files(self) -> list[str]:
        return sorted(self._members())

    def exists(self, location: str) -> bool:
        return location in self._members()

    def describe(self, location: str) -> str:
        return f"{self.path}!{location}"

    def _member(self, location: str):
        try:
            return self._members()[location]
        except KeyError:
            raise PixelforgeError(f"{self.describe(location)}: no such member in the archive") from None

    def _check_member(self, name: str, size: int, total: int, skip_kinds: str | None) -> str | None:
        """The safe member name, or None after recording why it was refused."""
        if total > self.max_total_bytes:
            raise LayoutError(
                f"{self.path}: members add up to more than {self.max_total_bytes:,} bytes uncompressed "
                "(possible archive bomb; raise max_total_bytes to allow it)"
            )
        item = f"{self.path}!{name}"
        if skip_kinds:
            self.refused.append(Skip(item, f"refused: {skip_kinds}"))
            return None
        try:
            safe = safe_relative_path(name, what="archive member")
        except UnsafePathError as exc:
            self.refused.append(Skip(item, f"refused: {exc}"))
            return None
        if size > self.max_member_bytes:
            self.refused.append(Skip(item, f"refused: {size:,} bytes is over the member limit of {self.max_member_bytes:,}"))
            return None
        return safe

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in list(state):
            if key == "_lock" or key in self._process_local:
                state[key] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    _process_local: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class ZipStorage(ArchiveStorage):
    """Members of a zip file, read at random through its central directory."""

    kind = "zip"
    _process_local = ("_zip", "_pid")

    def __init__(self, path, **limits):
        super().__init__(path, **limits)
        self._zip = None
        self._pid = None

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:  # a version from the future
                raise LayoutError(f"{self.path}: not a readable zip archive ({exc})") from None
            self._pid = os.getpid()
        return self._zip

    def _scan(self) -> None:
        archive = self._open()
        index, total = {}, 0
        for info in archive.infolist():
            if info.is_dir():
                continue
            total += info.file_size
            mode = info.external_attr >> 16
            kind = None
            if stat.S_ISLNK(mode):
                kind = "symbolic link"
            elif mode and not stat.S_ISREG(mode) and stat.S_IFMT(mode):
                kind = "not a regular file"
            elif info.flag_bits & 0x1:
                kind = "encrypted member"
            safe = self._check_member(info.filename, info.file_size, total, kind)
            if safe is not None:
                index[safe] = info
        self._index = index

    def read(self, location: str) -> bytes:
        info = self._member(location)
        try:
            with self._lock:
                with self._open().open(info) as member:
                    return member.read()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
            raise PixelforgeError(f"{self.describe(location)}: corrupt archive member ({exc})") from None


_COMPRESSED_OPENERS = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}


def compression_of(path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(6)
    for magic, opener in _COMPRESSED_OPENERS.items():
        if head.startswith(magic):
            return opener.__module__
    return None


class TarStorage(ArchiveStorage):
    """Members of a tar, plain or compressed; see the module docstring for how reads stay fast."""

    kind = "tar"
    _process_local = ("_blob", "_gzip_index", "_fd", "_stream", "_pid")

    def __init__(self, path, *, memory_limit: int | None = None, **limits):
        super().__init__(path, **limits)
        self.memory_limit = default_memory_limit() if memory_limit is None else int(memory_limit)
        self.compression = compression_of(self.path)
        self._blob = None  # member bytes kept from the sequential pass (compressed tars only)
        self._gzip_index = None  # restart points for members past the memory limit (gzip only)
        self._fd = None
        self._stream = None
        self._pid = None

    def _scan(self) -> None:
        """One sequential pass: index every member, refuse unsafe ones, keep bytes within the memory limit."""
        index, total, kept = {}, 0, 0
        blob = bytearray()
        capture = self.compression is not None
        file_size = self.path.stat().st_size
        self.refused = []
        count = 0
        # gzip: decompressed here, keeping restart points; other compressions: tarfile's stream mode;
        # plain: random access, skipping member data by seeking
        indexer = GzipIndexer(self.path) if self.compression == "gzip" else None
        try:
            with (tarfile.open(fileobj=indexer, mode="r|") if indexer
                  else tarfile.open(self.path, mode="r|*" if capture else "r:")) as tar:
                for member in tar:
                    count += 1
                    if member.isdir():
                        continue
                    kind = None
                    if member.issym():
                        kind = "symbolic link"
                    elif member.islnk():
                        kind = "hard link"
                    elif not member.isfile():
                        kind = "device, fifo or other special member"
                    total += member.size
                    if kind is None and not capture and member.offset_data + member.size > file_size:
                        kind = "truncated: the archive ends inside this member"
                    safe = self._check_member(member.name, member.size, total, kind)
                    if safe is None:
                        continue
                    start = -1
                    if capture and kept + member.size <= self.memory_limit:
                        data = tar.extractfile(member).read()
                        if len(data) != member.size:
                            raise EOFError(f"member {member.name} is truncated")
                        start = len(blob)
                        blob += data
                        kept += member.size
                    index[safe] = (member.offset_data, member.size, start)
        except LayoutError:
            raise
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
            if not index:
                raise LayoutError(f"{self.path}: not a readable tar archive ({exc})") from None
            self.refused.append(
                Skip(str(self.path), f"archive truncated or corrupt after {count} member(s); the rest is lost ({exc})")
            )
        finally:
            if indexer is not None:
                indexer.close()
        self._index = index
        self._gzip_index = indexer.index() if indexer is not None and kept < total else None
        self._blob = blob if capture else None

    def _ensure_blob(self) -> None:
        # An unpickled storage (another process) re-runs the pass once to get the bytes back;
        # a forked one inherits them.
        if self.compression is not None and self._blob is None:
            with self._lock:
                if self._blob is None:
                    self._scan()

    def read(self, location: str) -> bytes:
        offset, size, start = self._member(location)
        if self.compression is None:
            return self._pread(location, offset, size)
        self._ensure_blob()
        offset, size, start = self._index[location]
        if start >= 0:
            return bytes(memoryview(self._blob)[start : start + size])
        return self._seek_read(location, offset, size)

    def _pread(self, location: str, offset: int, size: int) -> bytes:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)  # pread keeps no file position: fork-safe
        try:
            data = os.pread(self._fd, size, offset)
        except OSError as exc:
            raise PixelforgeError(f"{self.describe(location)}: cannot read ({exc.strerror or exc})") from None
        if len(data) != size:
            raise PixelforgeError(f"{self.describe(location)}: truncated archive member")
        return data

    def _seek_read(self, location: str, offset: int, size: int) -> bytes:
        """A member past the memory limit: from the nearest gzip restart point, or by seeking in the
        decompressed stream (bz2 / xz: cheap forward, a restart from the beginning backward)."""
        opener = {"gzip": gzip.open, "bz2": bz2.open, "lzma": lzma.open}[self.compression]
        try:
            if self._gzip_index is not None:
                data = self._gzip_index.read(offset, size)
                if len(data) != size:
                    raise PixelforgeError(f"{self.describe(location)}: truncated archive member")
                return data
            with self._lock:
                if self._stream is None or self._pid != os.getpid():  # never share a file position
                    self._stream = opener(self.path, "rb")
                    self._pid = os.getpid()
                self._stream.seek(offset)
                data = self._stream.read(size)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise PixelforgeError(f"{self.describe(location)}: corrupt archive member ({exc})") from None
        if len(data) != size:
            raise PixelforgeError(f"{self.describe(location)}: truncated archive member")
        return data

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


def open_archive(path, **limits) -> ArchiveStorage:
    """A ZipStorage or TarStorage for ``path``, chosen from the file's content, not its name."""
    file = Path(path)
    if not file.is_file():
        raise LayoutError(f"{path}: no such archive file")
    try:
        if file.stat().st_size == 0:
            raise LayoutError(f"{path}: empty file (0 bytes), expected a zip or tar archive")
        with open(file, "rb"):
            pass
    except OSError as exc:
        raise LayoutError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if zipfile.is_zipfile(file):
        limits.pop("memory_limit", None)
        return ZipStorage(file, **limits)
    try:
        is_tar = tarfile.is_tarfile(file)
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        is_tar = False
    if is_tar:
        return TarStorage(file, **limits)
    compression = compression_of(file)
    detail = f"a {compression} file that does not hold a tar archive" if compression else "neither a zip nor a tar archive"
    raise LayoutError(f"{path}: {detail} (corrupt, truncated, or a wrong extension)")


# ---- reading what is inside -------------------------------------------------------------------------

def _is_visible(name: str) -> bool:
    return not any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _read_table(storage: ArchiveStorage, member: str, source: str, options: dict) -> Manifest:
    from pixelforge.data.layouts.arrays import read_npz_layout
    from pixelforge.data.layouts.csv_table import read_csv_layout
    from pixelforge.data.layouts.json_records import read_json_layout
    from pixelforge.data.read import check_options

    lower = member.lower()
    name = f"{source}!{member}"
    if lower.endswith(CSV_EXTENSIONS):
        check_options(read_csv_layout, options, "csv")
        return read_csv_layout(member, storage=storage, source=name, **options)
    if lower.endswith(".json"):
        check_options(read_json_layout, options, "json")
        return read_json_layout(member, storage=storage, source=name, **options)
    if lower.endswith(".npz"):
        check_options(read_npz_layout, options, "npz")
        return read_npz_layout(storage.read(member), source=name, **options)
    if lower.endswith(HDF5_EXTENSIONS):
        raise LayoutError(f"{name}: {HDF5_ADVICE}")
    raise LayoutError(f"{name}: cannot read this member as a dataset; expected .csv, .tsv (or either .gz), .json or .npz")


def _concat(parts: list[tuple[Manifest, str]], storage, source: str) -> Manifest:
    """One Manifest from tables that each hold one split (e.g. train.csv and test.csv)."""
    locations, labels, splits, skipped, notes = [], [], [], [], []
    for manifest, split in parts:
        locations += manifest.locations
        labels += manifest.labels
        splits += [s or split for s in manifest.splits]
        skipped += manifest.skipped
        notes += [n for n in manifest.notes if "row(s) skipped" not in n]
    columns = dict.fromkeys(name for manifest, _ in parts for name in manifest.metadata)
    metadata = {name: [v for manifest, _ in parts for v in manifest.metadata.get(name, [""] * len(manifest))]
                for name in columns}  # a column one table lacks is missing ("") for its rows
    return Manifest(locations=locations, labels=labels, storage=storage, splits=splits,
                    classes=class_order(labels), layout="archive", source=source, skipped=skipped, notes=notes,
                    metadata=metadata)


def read_archive_layout(
    path,
    *,
    inner: str | None = None,
    label_mode: str = "leaf",
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    memory_limit: int | None = None,
    source: str = "",
    **options,
) -> Manifest:
    """Read a zip / tar archive in place.

    inner: a member to read as the dataset (a .csv/.tsv/.json/.npz), or "directory" for class folders;
      None detects: class folders with two or more classes win, else the table(s) found, else an .npz.
    Other options go to the reader used inside (e.g. ``path_column`` for a CSV).
    """
    source = source or os.fspath(path)
    storage = open_archive(path, max_total_bytes=max_total_bytes, max_member_bytes=max_member_bytes,
                           memory_limit=memory_limit)
    files = [f for f in storage.list_files() if _is_visible(f)]
    if inner not in (None, "directory"):
        member = inner.strip("/")
        if member not in storage.list_files():
            raise LayoutError(f"{source}: no member {inner!r} in the archive")
        manifest, how = _read_table(storage, member, source, options), f"table {member}"
    else:
        tables = [f for f in files if f.lower().endswith(TABLE_EXTENSIONS)]
        manifest, how = _detect(storage, files, tables, inner, label_mode, source, options)
    manifest.skipped = list(storage.refused) + [s for s in manifest.skipped if s not in storage.refused]
    manifest.layout = "archive"
    manifest.source = source
    manifest.notes.insert(0, f"read in place from a {storage.kind} archive as {how}")
    if storage.refused:
        manifest.notes.append(f"{len(storage.refused)} archive member(s) refused (see skipped)")
    return manifest


def _detect(storage, files, tables, inner, label_mode, source, options) -> tuple[Manifest, str]:
    directory = None
    directory_error = None
    if inner == "directory" or any(is_image_name(f) for f in files):
        try:
            directory = read_directory_layout(storage, label_mode=label_mode, source=source)
        except LayoutError as exc:
            directory_error = exc
    if inner == "directory" or (directory is not None and not tables):
        if directory is None:
            raise directory_error
        if options:
            raise LayoutError(f"{source}: holds class folders, which take no option {', '.join(map(repr, options))}")
        return directory, "class folders"
    # reader options (path_column=…) mean the caller wants a table read
    if directory is not None and directory.num_classes >= 2 and not options:
        directory.notes.append(
            f"the archive also holds {', '.join(tables[:3])}; pass inner='<member>' to read a table instead"
        )
        return directory, "class folders"
    if tables:
        depth = min(t.count("/") for t in tables)
        top = [t for t in tables if t.count("/") == depth]
        if len(top) == 1:
            return _read_table(storage, top[0], source, options), f"table {top[0]}"
        stems = {t: posixpath.basename(t).lower().removesuffix(".gz").rsplit(".", 1)[0] for t in top}
        if all(stem in SPLIT_ALIASES for stem in stems.values()):
            parts = [(_read_table(storage, t, source, options), SPLIT_ALIASES[stems[t]]) for t in top]
            return _concat(parts, storage, source), f"tables {', '.join(top)} (one per split)"
        raise LayoutError(f"{source}: several tables {top[:5]}; pass inner='<member>' to choose one")
    npz = [f for f in files if f.lower().endswith(".npz")]
    if len(npz) == 1:
        return _read_table(storage, npz[0], source, options), f"arrays {npz[0]}"
    hdf5 = [f for f in files if f.lower().endswith(HDF5_EXTENSIONS)]
    if hdf5:
        raise LayoutError(f"{source}: holds the HDF5 file {hdf5[0]}; {HDF5_ADVICE}")
    if directory_error is not None:
        raise directory_error
    raise LayoutError(
        f"{source}: the archive holds no class folders of images, no .csv/.json table and no .npz "
        f"({len(files)} visible file(s))"
    )
