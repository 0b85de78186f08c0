"""Faults a real machine produces: named pipes and non-UTF-8 names in a dataset, outputs under a file,
full disks, read-only folders, killed runs (their partial files and their worker processes).

Every bad input ends in a named skip or one PixelforgeError (exit 2 from the CLI), never a hang, a
traceback or a half-written output. Fuzzing is in test_fuzz.py, kill -9 at random moments in
test_kill.py.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from pixelforge.atomic import atomic_path, remove_stale_partials
from pixelforge.cli import app
from pixelforge.data.locations import FileStorage, printable
from pixelforge.data.read import read_dataset
from pixelforge.errors import PixelforgeError
from tests.conftest import write_png

runner = CliRunner()
NON_UTF8 = os.fsdecode(b"caf\xe9.png")  # Latin-1 "café.png": legal on Linux, not UTF-8


def _tree(root: Path, per_class: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        for i in range(per_class):
            write_png(root / label / f"img_{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return root


def processes_in_group(group: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``group``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != b"Z":
            found.append(int(entry))
    return found


# ---- a named pipe in a class folder -------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_named_pipe_in_a_class_folder_is_a_named_skip_and_never_opened(tmp_path):
    root = _tree(tmp_path / "data")
    os.mkfifo(root / "cat" / "pipe.png")  # nobody ever writes to it: opening it for reading would block
    manifest = read_dataset(root)
    assert len(manifest) == 6
    assert [(Path(s.item).name, s.reason) for s in manifest.skipped] == [
        ("pipe.png", "not a regular file (a named pipe); not opened")]
    result = runner.invoke(app, ["convert", str(root), str(tmp_path / "out.h5")])
    assert result.exit_code == 0, result.output
    assert "pipe.png" in result.output
    with h5py.File(tmp_path / "out.h5") as f:
        assert len(f["images"]) == 6
        assert [s.decode() for s in f["skipped/reasons"][()]] == ["not a regular file (a named pipe); not opened"]


@pytest.mark.timeout(30)
def test_reading_a_pipe_or_device_by_name_fails_at_once(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    storage = FileStorage(tmp_path)
    with pytest.raises(PixelforgeError, match="pipe.png: not a regular file \\(a named pipe\\)"):
        storage.read("pipe.png")
    with pytest.raises(PixelforgeError, match="not a regular file \\(a device\\)"):
        FileStorage("/dev").read("zero")


# ---- a file name that is not UTF-8 -------------------------------------------------------------------
def test_a_file_name_that_is_not_utf8_is_read_and_stored_escaped(tmp_path):
    root = _tree(tmp_path / "data")
    write_png(root / "cat" / NON_UTF8, np.zeros((8, 8, 3), np.uint8))
    result = runner.invoke(app, ["convert", str(root), str(tmp_path / "out.h5")])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out.h5") as f:
        assert len(f["images"]) == 7
        sources = [s.decode() for s in f["sources"][()]]
    assert any(s.endswith("cat/caf\\xe9.png") for s in sources)


def test_printable_escapes_only_what_is_not_utf8():
    assert printable("café.png") == "café.png"
    assert printable(NON_UTF8) == "caf\\xe9.png"
    assert printable("bad\ud800") == "bad\\ud800"  # a lone surrogate from a JSON file


def test_a_class_folder_that_is_not_utf8_is_a_class_in_the_store(tmp_path):
    root = _tree(tmp_path / "data")
    write_png(root / os.fsdecode(b"ni\xf1o") / "a.png", np.zeros((8, 8, 3), np.uint8))
    result = runner.invoke(app, ["convert", str(root), str(tmp_path / "out.h5"), "--json"])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out.h5") as f:
        assert [c.decode() for c in f["classes"][()]] == ["cat", "dog", "ni\\xf1o"]


# ---- an output path under a regular file ------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["convert", "{data}", "{file}/x.h5"],
    ["augment", "{data}", "--out", "{file}/aug"],
    ["train", "{data}", "--out", "{file}/run", "--model", "dnn", "--size", "8", "--epochs", "1"],
])
def test_an_output_under_a_regular_file_is_one_clear_error(tmp_path, command):
    data = _tree(tmp_path / "data")
    blocker = tmp_path / "somefile"
    blocker.write_text("a file, not a folder")
    argv = [part.format(data=data, file=blocker) for part in command]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "somefile" in result.output and "Traceback" not in result.output
    assert blocker.read_text() == "a file, not a folder"


def test_atomic_path_under_a_file_names_the_path(tmp_path):
    (tmp_path / "somefile").write_text("x")
    with pytest.raises(PixelforgeError, match="somefile/x.h5: cannot write \\(a parent of it is a file"):
        with atomic_path(tmp_path / "somefile" / "x.h5"):
            pass


# ---- partial files of killed runs -----------------------------------------------------------------
def test_the_partial_of_a_killed_but_unreaped_writer_is_removed(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    partial = tmp_path / f".out.h5.{child.pid}.abcd1234.partial"
    partial.write_bytes(b"half")
    child.kill()
    time.sleep(0.3)  # a zombie now: its pid answers kill(pid, 0) until the parent waits for it
    with pytest.warns(UserWarning, match="removed 1 unfinished file"):
        assert remove_stale_partials(tmp_path) == [partial]
    child.wait()


def test_the_partial_of_a_dead_writer_is_removed_even_when_its_pid_was_reused(tmp_path):
    newcomer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        partial = tmp_path / f".out.h5.{newcomer.pid}.abcd1234.partial"
        partial.write_bytes(b"half")
        an_hour_ago = time.time() - 3600  # written long before the process with that pid started
        os.utime(partial, (an_hour_ago, an_hour_ago))
        with pytest.warns(UserWarning):
            assert remove_stale_partials(tmp_path) == [partial]
    finally:
        newcomer.kill()
        newcomer.wait()


def test_the_partial_of_a_live_writer_is_kept(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.1)
        partial = tmp_path / f".out.h5.{writer.pid}.abcd1234.partial"
        partial.write_bytes(b"half")
        assert remove_stale_partials(tmp_path) == []
        assert partial.exists()
    finally:
        writer.kill()
        writer.wait()


# ---- worker processes end with their parent ---------------------------------------------------------
POOL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pixelforge.data.workers import ordered_map

    def slow(item):
        time.sleep(0.2)
        return item

    if __name__ == "__main__":
        for i, _ in enumerate(ordered_map(slow, range(10_000), workers=2, kind="process")):
            if i == 2:
                print("running", flush=True)
""")


@pytest.mark.timeout(60)
def test_worker_processes_die_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert parent.stdout.readline().strip() == "running"
        assert len(processes_in_group(parent.pid)) >= 3  # the parent and its two workers
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while processes_in_group(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_in_group(parent.pid) == []
    finally:
        for pid in processes_in_group(parent.pid):
            os.kill(pid, signal.SIGKILL)


# ---- a full disk and a read-only folder -------------------------------------------------------------
def _disk_full(monkeypatch):
    """Every HDF5 write fails as on a full disk (h5py reports ENOSPC as an OSError with the C text)."""
    import h5py._hl.dataset as dataset_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset_module.Dataset, "__setitem__", full)


def test_convert_onto_a_full_disk_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    data = _tree(tmp_path / "data")
    before = sorted(p.name for p in data.rglob("*"))
    out = tmp_path / "out"
    out.mkdir()
    _disk_full(monkeypatch)
    result = runner.invoke(app, ["convert", str(data), str(out / "store.h5")])
    assert result.exit_code == 2, result.output
    assert "store.h5: cannot write (no space left on the device)" in " ".join(result.output.split())
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in data.rglob("*")) == before


def test_convert_into_a_read_only_folder_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    data = _tree(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):  # root ignores permission bits: fail the way a read-only mount does
            real_mkstemp = __import__("tempfile").mkstemp

            def read_only(*args, **kwargs):
                if kwargs.get("dir") == out:
                    raise OSError(errno.EROFS, "Read-only file system")
                return real_mkstemp(*args, **kwargs)

            monkeypatch.setattr("pixelforge.atomic.tempfile.mkstemp", read_only)
        result = runner.invoke(app, ["convert", str(data), str(out / "store.h5")])
    finally:
        out.chmod(0o755)
    assert result.exit_code == 2, result.output
    assert "store.h5: cannot write" in result.output
    assert list(out.iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs mounted for the test (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the ENOSPC tests above inject the error instead")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _many_pixels(root: Path) -> Path:
    rng = np.random.default_rng(1)  # noise does not compress: 2 x 40 images of 96x96x3 > 1 MB
    for label in ("cat", "dog"):
        for i in range(40):
            write_png(root / label / f"{i}.png", rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    return root


@pytest.mark.timeout(120)
def test_convert_onto_a_really_full_disk_is_one_error_in_a_clean_process(tmp_path, tiny_disk):
    data = _many_pixels(tmp_path / "data")
    result = subprocess.run([str(Path(sys.executable).parent / "pixelforge"), "convert", str(data),
                             str(tiny_disk / "store.h5"), "--compression", "none"], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr  # not 139: HDF5 must not crash at exit
    assert "store.h5: cannot write (no space left on the device)" in " ".join(result.stderr.split())
    assert list(tiny_disk.iterdir()) == []


@pytest.mark.timeout(120)
def test_augment_onto_a_really_full_disk_is_one_error_and_no_partial_image(tmp_path, tiny_disk):
    data = _many_pixels(tmp_path / "data")
    result = runner.invoke(app, ["augment", str(data), "--out", str(tiny_disk / "aug"), "--per-image", "2"])
    assert result.exit_code == 2, result.output
    assert "cannot write (no space left on the device)" in " ".join(result.output.split())
    assert list(tiny_disk.rglob(".*.partial")) == []
    for image in tiny_disk.rglob("*.png"):  # the images written before the disk filled are whole
        assert image.stat().st_size > 0


# ---- a checkpoint is two files: a kill between them must still resume ----------------------------
@pytest.mark.parametrize("killed_before", ["last.json", "the rename"])
def test_a_checkpoint_killed_between_its_two_files_still_resumes(tmp_path, monkeypatch, killed_before):
    import pixelforge.train.checkpoint as checkpoint
    from pixelforge.train import ResumeCheckpoint, Trainer
    from tests.train_helpers import toy_images, toy_names

    x, y = toy_images()
    train = (x, toy_names(y))
    Trainer(seed=0, verbose=False).fit(train, epochs=1, batch_size=16, callbacks=[ResumeCheckpoint(tmp_path)])

    class Killed(BaseException):
        pass

    def kill(*args, **kwargs):
        raise Killed

    real_replace = os.replace

    def kill_at_rename(source, target):
        if Path(source).name == "last.next.safetensors":
            raise Killed
        real_replace(source, target)

    if killed_before == "last.json":
        monkeypatch.setattr(checkpoint, "write_json", kill)
    else:
        monkeypatch.setattr(checkpoint.os, "replace", kill_at_rename)
    with pytest.raises(Killed):
        Trainer(seed=0, verbose=False).fit(train, epochs=2, batch_size=16, callbacks=[ResumeCheckpoint(tmp_path)],
                                           resume_from=tmp_path)
    monkeypatch.undo()
    _, meta = checkpoint.load_training_state(tmp_path)
    assert meta["epochs_done"] == (1 if killed_before == "last.json" else 2)
    history = Trainer(seed=0, verbose=False).fit(train, epochs=3, batch_size=16,
                                                 callbacks=[ResumeCheckpoint(tmp_path)], resume_from=tmp_path)
    assert len(history.epoch) == 3


# ---- odd trees -----------------------------------------------------------------------------------
def test_a_symlink_loop_is_listed_once_and_named(tmp_path):
    root = _tree(tmp_path / "data")
    (root / "cat" / "again").symlink_to(root)  # cat/again/cat/again/… forever, if followed blindly
    (root / "dog" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    manifest = read_dataset(root)
    assert len(manifest) == 6
    reasons = {Path(s.item).name: s.reason for s in manifest.skipped}
    assert reasons["again"].startswith("folder already listed")
    assert reasons["gone.png"] == "broken symbolic link"


def test_a_linked_class_folder_is_followed(tmp_path):
    root = _tree(tmp_path / "data")
    elsewhere = _tree(tmp_path / "elsewhere")
    (root / "bird").symlink_to(elsewhere / "cat")
    assert read_dataset(root).class_counts() == {"bird": 3, "cat": 3, "dog": 3}


def test_an_unreadable_folder_is_a_named_skip(tmp_path, monkeypatch):
    root = _tree(tmp_path / "data")
    locked = root / "dog"
    if os.geteuid() == 0:  # root reads through chmod 000: make the listing fail as it would for a user
        real_scandir = os.scandir

        def scandir(path):
            if Path(path) == locked:
                raise PermissionError(errno.EACCES, "Permission denied")
            return real_scandir(path)

        monkeypatch.setattr("pixelforge.data.locations.os.scandir", scandir)
    else:
        locked.chmod(0)
    try:
        manifest = read_dataset(root)
    finally:
        locked.chmod(0o755)
    assert len(manifest) == 3
    assert [(Path(s.item).name, s.reason) for s in manifest.skipped] == [
        ("dog", "cannot list this folder (Permission denied)")]


def test_file_names_with_every_legal_byte_are_read_and_stored(tmp_path):
    root = tmp_path / "data"
    image = np.zeros((4, 4, 3), np.uint8)
    names = [os.fsdecode(b"i" + bytes([byte]) + b".png") for byte in range(1, 256) if byte not in (ord("/"),)]
    for name in names:
        write_png(root / "odd" / name, image)
    write_png(root / "plain" / "a.png", image)
    result = runner.invoke(app, ["convert", str(root), str(tmp_path / "out.h5")])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out.h5") as f:
        assert len(f["images"]) == len(names) + 1 and len(f["skipped/items"]) == 0
        sources = {s.decode() for s in f["sources"][()]}
    assert any(s.endswith("odd/i\n.png") for s in sources) and any(s.endswith("odd/i\\xff.png") for s in sources)
    assert runner.invoke(app, ["info", str(root)]).exit_code == 0


def test_classes_that_differ_only_in_case_are_kept_apart_with_a_note(tmp_path):
    root = tmp_path / "data"
    for label in ("Cat", "cat", "dog"):
        write_png(root / label / "a.png", np.zeros((4, 4, 3), np.uint8))
    manifest = read_dataset(root)
    assert manifest.classes == ["Cat", "cat", "dog"]
    assert any("'Cat', 'cat' differ only in letter case" in note for note in manifest.notes)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_million_files_are_listed_in_bounded_time_and_memory(tmp_path):
    """Measured on 2 cores: ~30 s and ~450 MB peak to read 1,000,000 empty files in 10 class folders."""
    import resource

    for c in range(10):
        folder = tmp_path / "million" / f"c{c}"
        folder.mkdir(parents=True)
        for i in range(100_000):
            os.close(os.open(folder / f"{i:06d}.png", os.O_CREAT | os.O_WRONLY, 0o644))
    script = "from pixelforge.data.read import read_dataset; import sys; print(len(read_dataset(sys.argv[1])))"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "million")], capture_output=True,
                            text=True, timeout=600)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert result.stdout.strip() == "1000000", result.stderr
    assert seconds < 60 and peak_mb < 1024, (seconds, peak_mb)
