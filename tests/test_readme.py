"""README.md cannot drift: every ```bash command line and every ```python block in it runs here.

How (one shared workspace, steps in README order, as a user would type them):

- The workspace is the current directory of every step. It holds tiny fixtures under the names the
  README uses (``mnist/``, ``labels.csv``, ``photo.jpg``, …, table ``FIXTURES``), made from the embedded
  Fashion-MNIST sample and the ``shapes`` generator, in the layout of the real data they stand for.
- Paths outside the workspace and URLs are rewritten (table ``PATHS``): ``../shared/datasets`` and
  ``/tmp/ds`` point into the workspace, ``https://…/`` at a local http.server on 127.0.0.1.
- Long runs are shortened (table ``FAST``): one epoch, two folds, ``--quick`` experiments; a command that
  blocks (``pixelforge browse``, a server) runs its app without blocking (table ``BLOCKING``).
- ``pixelforge …`` lines run in-process through typer's CliRunner and must exit 0; other shell lines
  (mkdir, tar) run in bash; ``make …`` lines are dry-run (``make -n``) in the repository, and only
  the targets in ``MAKE_NOT_RUN`` are never run for real (with the reason), nor the commands in
  ``NEEDS_A_CLUSTER`` (multi-machine launches; their single-machine form runs).
- ``test_every_readme_command_is_run`` fails when a line starting with ``pixelforge `` or ``make ``
  sits anywhere the steps do not reach (another fence language, prose lines), and when a skip is stale.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import re
import shlex
import subprocess
import sys
import tarfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# ---- the substitution tables ---------------------------------------------------------------------
# README path or URL → what the step uses instead ("{server}" is the local http.server's base URL).
PATHS = {
    "../shared/datasets/fashion-mnist.tar.gz": "shared/fashion-mnist.tar.gz",  # the fixture's tarball
    "../shared/datasets/clothing5": "clothing5",
    "/tmp/ds": "ds",  # where the tour extracts fashion-mnist (and the Makefile extracts mnist)
    "https://example.org/": "{server}/",
    "https://host/": "{server}/",
    "hf://timm/resnet18.tv_in1k": "{server}/resnet18.safetensors",  # published weights, served locally
}
# Long runs, shortened (pattern → replacement) in bash commands and python blocks.
FAST = [
    (r"--epochs \d+", "--epochs 1"),
    (r"--folds \d+", "--folds 2"),
    (r"\bepochs=\d+", "epochs=1"),
    (r"run_audit\(([^()]*)\)", r'run_audit(\1, options={"label_epochs": 2})'),  # the label check's model
]
# Flags appended to a command (by its first words) so that it runs in seconds.
FAST_FLAGS = {
    "pixelforge demo": ["--epochs", "1"],
    "pixelforge train": ["--epochs", "1"],  # unless the line sets --epochs; "--epochs 2" with --resume
    "pixelforge cv": ["--epochs", "1"],
    "pixelforge audit": ["-o", "label_epochs=2"],  # the label check's cross-validated model: 2 epochs, not 60
    "pixelforge experiment curation": ["--quick"],
    "pixelforge experiment wild-retrain": ["--quick"],
}
# Commands that block (a server running until Ctrl-C), and what their step does instead of blocking.
BLOCKING = {
    "pixelforge browse": "starts the same app on the same arguments, opens its pages and makes one decision "
                         "through it as a user would (writing the curation file the next steps read), then returns; "
                         "tests/test_browse*.py run the real server and a browser",
}
# Shell commands that need more than this machine (README command prefix → why, and what tests it instead).
NEEDS_A_CLUSTER = {
    "torchrun --nnodes 2": "needs two machines; tests/test_distributed.py runs the same training with 2 ranks "
                           "on 127.0.0.1 (the README's `train --nproc 2` line runs here too)",
}
# make targets that are checked with `make -n` but never run for real, and why.
MAKE_NOT_RUN = {
    "demo": "would install into .venv and write runs/demo in the repository; `pixelforge demo` runs below",
    "test": "is the test suite this file belongs to (recursion)",
    "test-slow": "is the slow part of this test suite (recursion), minutes on ../shared/datasets",
}
# Files a command's README comment promises (README command prefix → paths in the workspace).
EXPECTED_FILES = {
    "pixelforge audit /tmp/ds/fashion-mnist --out audit/": ["audit/report.html", "audit/report.json"],
    "pixelforge train /tmp/ds/fashion-mnist --model fmnist_baseline --epochs 10 --out runs/fmnist": [
        f"runs/fmnist/{name}" for name in
        ("model.json", "model.safetensors", "curves.png", "log.csv", "history.json", "metrics.json")],
    "pixelforge evaluate runs/fmnist /tmp/ds/fashion-mnist --wild": [
        "runs/fmnist/evaluation/wild/accuracy.png", "runs/fmnist/evaluation/wild/report.html"],
    "pixelforge evaluate runs/fmnist /tmp/ds/fashion-mnist": [
        f"runs/fmnist/evaluation/{name}" for name in ("confusion.png", "confusion.txt", "mistakes.png")],
    "pixelforge demo": ["runs/demo/curves.png", "runs/demo/evaluation/confusion.png"],
    "pixelforge convert /tmp/ds/fashion-mnist fashion.h5": ["fashion.h5"],
    "pixelforge augment clothing5/train --out aug": ["grid.png", "aug/manifest.csv"],
    "pixelforge models show cnn": ["cnn.png"],
    "pixelforge train data --out runs/lr --lr-find": ["runs/lr/lr_find.png"],
    "pixelforge cv /tmp/ds/fashion-mnist": ["runs/cv/cv.json", "runs/cv/curves.png", "runs/cv/boxplot.png"],
    "pixelforge export runs/fmnist --onnx fmnist.onnx": ["fmnist.onnx"],
    "pixelforge experiment curation": ["runs/experiment-curation/curation.md"],
    "pixelforge experiment wild-retrain": ["runs/experiment-wild-retrain/wild_retrain.md"],
    "pixelforge browse /tmp/ds/fashion-mnist": ["fashion-mnist.curation.jsonl"],
}
# The fixtures (workspace path → what it stands for); all tiny, written by `workspace`.
FIXTURES = {
    "ds/fashion-mnist": "fashion-mnist/{train,test}/<0-9>/*.png: 8 + 3 images per class of the embedded sample",
    "shared/fashion-mnist.tar.gz": "that tree as a .tar.gz, like ../shared/datasets/fashion-mnist.tar.gz",
    "fashion-mnist.tar.gz": "the same tarball, where `pixelforge info fashion-mnist.tar.gz` looks",
    "mnist": "mnist/{train,test}/<0-9>/*.png + train.csv/test.csv (filepath,label), from the sample",
    "ds/mnist": "the same, where `make experiment-curation` extracts MNIST",
    "mnist.tar.gz": "mnist/ as a .tar.gz (holds mnist/train.csv)",
    "clothing5": "{train,validation,test}/<shape>/*.jpg: RGB shapes of varied sizes, like clothing5",
    "data": "the same kind of tree (a user's dataset)",
    "huge": "the same kind of tree (smaller than --sample)",
    "labels.csv": "file,kind columns, image paths relative to the CSV",
    "pixels.csv": "label,pixel0..pixel783",
    "photo.jpg": "an RGB photo at 56x56, for a grayscale 28x28 model",
    "photos": "a folder of images",
    "shots": "images for the glob shots/*.png",
    "my_photos": "class folders named like the mnist fixture's classes",
    "www/data.zip": "served as {server}/data.zip: a zipped class tree",
    "www/img.png": "served as {server}/img.png",
    "clothes/images.csv": "image,sender_id,label,kids: ids without extension, junk labels (Not sure, Skip, Other)",
    "clothes/images": "the JPEGs the ids name",
    "ds/cifar10": "{train,test}/<shape>/*.jpg: RGB images, where the README pre-trains a backbone",
    "www/resnet18.safetensors": "served as {server}/resnet18.safetensors: 1000-class ResNet-18 weights "
                                "(random, torchvision's names), standing in for hf://timm/resnet18.tv_in1k",
}


# ---- reading the README --------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    kind: str  # "bash" or "python"
    line: int  # 1-based line in README.md
    text: str  # one command (continuations joined) or a whole python block

    @property
    def id(self) -> str:
        first = self.text.strip().splitlines()[0] if self.kind == "python" else self.text
        return f"L{self.line}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', first)[:60]}"


def fences(text: str) -> list[tuple[str, int, str]]:
    """(language, line of the first code line, code) of every fenced block."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = re.match(r"^```(\S*)\s*$", lines[i])
        if match:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((match.group(1), start + 1, "\n".join(body)))
        i += 1
    return out


def bash_commands(code: str, first_line: int) -> list[tuple[int, str]]:
    """Command lines of a bash block: continuations joined, comments and blank lines dropped."""
    out, pending, start = [], "", 0
    for offset, raw in enumerate(code.splitlines()):
        if not pending:
            start = first_line + offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = pending + raw
        pending = ""
        words = shlex.split(line, comments=True)
        if words:
            out.append((start, shlex.join(words) if "&&" not in words else " ".join(words)))
    return out


@functools.cache
def steps() -> tuple[Step, ...]:
    found = []
    for lang, line, code in fences(README.read_text()):
        if lang == "bash":
            found += [Step("bash", n, command) for n, command in bash_commands(code, line)]
        elif lang == "python":
            found.append(Step("python", line, code))
    return tuple(found)


# ---- fixtures ------------------------------------------------------------------------------------
def _png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.squeeze()).save(path)


def _write_digits_tree(root: Path, per_class: dict[str, int], csv: bool = False) -> None:
    """root/<split>/<official label 0-9>/*.png from the embedded sample (the real archives' layout)."""
    from pixelforge.datasets import load_fashion_sample
    from pixelforge.datasets.fashion import OFFICIAL_LABEL

    for split, n in per_class.items():
        sample = load_fashion_sample(split)
        rows = []
        for label in sorted(OFFICIAL_LABEL, key=OFFICIAL_LABEL.get):
            picks = [i for i, name in enumerate(sample.labels) if name == label][:n]
            for k, i in enumerate(picks):
                rel = f"{split}/{OFFICIAL_LABEL[label]}/{k:04d}.png"
                _png(root / rel, sample.load(i))
                rows.append(f"{rel},{OFFICIAL_LABEL[label]}")
        if csv:
            (root / f"{split}.csv").write_text("filepath,label\n" + "\n".join(rows) + "\n")


def _write_photo_tree(root: Path, per_split: dict[str, int]) -> None:
    """root/<split>/<shape>/*.jpg: RGB images of varied sizes (clothing5's layout, in small)."""
    from pixelforge.datasets import make_shapes

    data = make_shapes(sum(per_split.values()), size=48, seed=3, test_fraction=0.0)
    m = data.manifest
    rng = np.random.default_rng(0)
    for name in m.classes:
        rows = [i for i, label in enumerate(m.labels) if label == name]
        k = 0
        for split, n in per_split.items():
            for i in rows[k : k + n]:
                h, w = rng.integers(40, 72, 2)
                img = Image.fromarray(m.load(i)).resize((int(w), int(h)))
                path = root / split / name / f"{name}_{i:04d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                img.save(path, quality=90)
            k += n


def _write_clothes_table(root: Path) -> None:
    """A real clothing dataset's table in small: ids without extension in images/, a sender per photo,
    junk labels that must be excluded by option."""
    from pixelforge.datasets import make_shapes

    m = make_shapes(12, size=48, seed=5, test_fraction=0.0).manifest
    lines = ["image,sender_id,label,kids"]
    junk = ["Not sure", "Skip", "Other"]
    for i in range(len(m)):
        ident = f"{i:08x}-7f3a-4c1e-9b2d-{i * 7919:012x}"
        path = root / "images" / f"{ident}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(m.load(i)).save(path, quality=90)
        label = junk[i % 3] if i % 16 == 0 else m.labels[i]
        lines.append(f"{ident},{1000 + i % 9},{label},{'True' if i % 5 == 0 else 'False'}")
    (root / "images.csv").write_text("\n".join(lines) + "\n")


def _write_published_weights(path: Path) -> None:
    """1000-class ResNet-18 weights with torchvision's names (random values), as a hub would serve them."""
    import torch
    from safetensors.torch import save_file

    from pixelforge.models import build_model

    torch.manual_seed(0)
    network = build_model("resnet18", (3, 224, 224), 1000)
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))


def _tar(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        tar.add(source, arcname=source.name)


def _build_fixtures(ws: Path) -> None:
    from pixelforge.datasets import load_fashion_sample

    _write_digits_tree(ws / "ds" / "fashion-mnist", {"train": 8, "test": 3})
    _tar(ws / "ds" / "fashion-mnist", ws / "shared" / "fashion-mnist.tar.gz")
    _tar(ws / "ds" / "fashion-mnist", ws / "fashion-mnist.tar.gz")
    for root in (ws / "mnist", ws / "ds" / "mnist"):
        _write_digits_tree(root, {"train": 8, "test": 3}, csv=True)
    _tar(ws / "mnist", ws / "mnist.tar.gz")
    for name in ("clothing5", "data", "huge"):
        _write_photo_tree(ws / name, {"train": 6, "validation": 2, "test": 2})

    sample = load_fashion_sample("test")
    (ws / "imgs").mkdir()
    lines = ["file,kind"]
    for i in range(12):
        _png(ws / "imgs" / f"{i}.png", sample.load(i))
        lines.append(f"imgs/{i}.png,{sample.labels[i]}")
    (ws / "labels.csv").write_text("\n".join(lines) + "\n")
    header = "label," + ",".join(f"pixel{k}" for k in range(784))
    rows = [f"{sample.labels[i]}," + ",".join(map(str, sample.load(i).ravel())) for i in range(12)]
    (ws / "pixels.csv").write_text(header + "\n" + "\n".join(rows) + "\n")

    Image.fromarray(sample.load(0)[:, :, 0]).resize((56, 56)).convert("RGB").save(ws / "photo.jpg")
    for i in (1, 2):
        _png(ws / "photos" / f"p{i}.png", sample.load(i))
        _png(ws / "shots" / f"s{i}.png", sample.load(i + 2))
    _write_digits_tree(ws / "wild-tmp", {"test": 1})
    (ws / "wild-tmp" / "test").rename(ws / "my_photos")

    _write_clothes_table(ws / "clothes")
    _write_photo_tree(ws / "ds" / "cifar10", {"train": 8, "test": 2})

    www = ws / "www"
    www.mkdir()
    _write_published_weights(www / "resnet18.safetensors")
    _png(www / "img.png", sample.load(5))
    with zipfile.ZipFile(www / "data.zip", "w") as zf:
        for path in sorted((ws / "ds" / "fashion-mnist" / "train").rglob("*.png"))[:20]:
            zf.write(path, "data/" + path.relative_to(ws / "ds" / "fashion-mnist" / "train").as_posix())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """(workspace folder, server base URL): the fixtures, served files, and a private download cache."""
    from pixelforge.models import native

    ws = tmp_path_factory.mktemp("readme")
    _build_fixtures(ws)
    assert all((ws / rel).exists() for rel in FIXTURES), [rel for rel in FIXTURES if not (ws / rel).exists()]
    handler = functools.partial(_QuietHandler, directory=str(ws / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kernels = native.cache_dir()  # keep the compiled C kernels: only downloads go to the private cache
    kernels.mkdir(parents=True, exist_ok=True)
    (ws / "cache").mkdir()
    (ws / "cache" / "native").symlink_to(kernels, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIXELFORGE_CACHE", str(ws / "cache"))
        mp.setenv("OMP_NUM_THREADS", "2")
        mp.chdir(ws)
        yield ws, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ---- rewriting a step ----------------------------------------------------------------------------
def substitute(text: str, server: str) -> str:
    for old, new in PATHS.items():
        text = text.replace(old, new.format(server=server))
    for pattern, replacement in FAST:
        text = re.sub(pattern, replacement, text)
    return text


def fast_args(words: list[str]) -> list[str]:
    words = list(words)
    for prefix, extra in FAST_FLAGS.items():
        head = prefix.split()
        if words[: len(head)] != head:
            continue
        if prefix == "pixelforge train" and "--resume" in words:  # resume one more epoch, for real
            words = [w for i, w in enumerate(words) if w != "--epochs" and words[i - 1] != "--epochs"]
            extra = ["--epochs", "2"]
        elif prefix in ("pixelforge train", "pixelforge cv") and "--epochs" in words:
            continue
        words += extra
    return words


def run_make(target: str) -> str:
    result = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"make -n {target} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


MAKE_EXPECTS = {  # what each documented target must (dry-)run
    "demo": "pixelforge demo",
    "test": "-m pytest",
    "test-slow": "-m slow",
    "test-fuzz": "-m fuzz",
}


def _serve_once(session, host="127.0.0.1", port=8765, *, announce=print) -> None:
    """Stands in for ``pixelforge.browse.server.serve`` (BLOCKING): every page answers, one decision is saved."""
    import re as _re
    import warnings

    from pixelforge.browse.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient prefers httpx2 to httpx
        from starlette.testclient import TestClient

        client = TestClient(create_app(session), base_url=f"http://127.0.0.1:{port}")
    announce(f"http://127.0.0.1:{port}/")
    session.start()
    if session.predictions:
        session.predictions.wait(timeout=120)
    pages = ["/", "/image/0"] + (["/summary"] if session.audit else []) + (["/confusion"] if session.predictions else [])
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[-2000:])
    token = _re.search(r'name="pixelforge-token" content="([^"]+)"', client.get("/").text).group(1)
    m = session.manifest
    other = next(c for c in session.classes if c != m.labels[0])
    answer = client.post("/api/decide", json={"keys": [m.locations[0]], "action": "relabel", "value": other},
                         headers={"x-pixelforge-token": token})
    assert answer.status_code == 200, answer.text


def run_bash_step(step: Step, ws: Path, server: str) -> None:
    from typer.testing import CliRunner

    from pixelforge.cli import app

    command = substitute(step.text, server)
    words = shlex.split(command)
    if words[0] == "make":
        assert len(words) == 2, f"README line {step.line}: one make target per line, got {step.text!r}"
        target = words[1]
        planned = run_make(target)
        assert MAKE_EXPECTS.get(target, "") in planned, f"make {target} no longer runs {MAKE_EXPECTS[target]!r}"
        if target not in MAKE_NOT_RUN:
            result = subprocess.run(["make", target], cwd=ROOT, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stdout + result.stderr
        return
    if words[0] == "pixelforge":
        args = fast_args(words)[1:]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "argv", ["pixelforge", *args])  # as typed (train --nproc relaunches it)
            if any(step.text.startswith(prefix) for prefix in BLOCKING):
                mp.setattr("pixelforge.browse.server.serve", _serve_once)
            result = CliRunner().invoke(app, args, catch_exceptions=True)
        output = result.output
        assert result.exit_code == 0, (
            f"README line {step.line}: `{step.text}`\nran: pixelforge {shlex.join(args)}\n"
            f"exit code {result.exit_code}\n{output[-3000:]}\n{result.exception!r}"
        )
        return
    if any(step.text.startswith(prefix) for prefix in NEEDS_A_CLUSTER):
        return
    result = subprocess.run(["bash", "-c", command], cwd=ws, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"README line {step.line}: `{step.text}`\nran: {command}\n{result.stderr}"


def run_python_step(step: Step, ws: Path, server: str) -> None:
    code = substitute(step.text, server)
    namespace = {"__name__": "__readme__"}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(code, f"README.md:{step.line}", "exec"), namespace)


# ---- the tests -----------------------------------------------------------------------------------
# Steps that take long even on the tiny fixtures (seconds measured on 2 busy cores): `make test-slow`.
SLOW: dict[str, str] = {"make test-fuzz": "~60: 300 examples per fuzzed reader"}


def _params():
    seen = set()
    for step in steps():
        if step.text in seen:  # the tour's commands come back in the reference: run once, at first sight
            continue
        seen.add(step.text)
        slow = step.kind == "bash" and any(step.text.startswith(p) for p in SLOW)
        yield pytest.param(step, id=step.id, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("step", list(_params()))
def test_readme_step_runs(step, workspace):
    ws, server = workspace
    if step.kind == "python":
        run_python_step(step, ws, server)
        return
    run_bash_step(step, ws, server)
    promised = next((files for prefix, files in EXPECTED_FILES.items() if step.text.startswith(prefix)), [])
    missing = [rel for rel in promised if not (ws / rel).exists()]
    assert not missing, f"README line {step.line}: `{step.text}` did not write {missing}"


def test_expected_files_table_matches_readme_commands():
    commands = [s.text for s in steps() if s.kind == "bash"]
    stale = [prefix for prefix in EXPECTED_FILES if not any(c.startswith(prefix) for c in commands)]
    assert not stale, f"EXPECTED_FILES names commands the README no longer shows: {stale}"


def test_every_make_target_the_readme_names_exists():
    targets = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", README.read_text()))
    assert named and not named - targets, f"README names make targets the Makefile lacks: {named - targets}"


def _covered_line(line: str) -> bool:
    return line.startswith(("pixelforge ", "make "))


def test_every_readme_command_is_run():
    """Every line that starts with `pixelforge ` or `make ` is a step; every fence is bash or python."""
    text = README.read_text()
    for lang, line, _code in fences(text):
        assert lang in ("bash", "python"), f"README line {line - 1}: a ```{lang or '(no language)'} fence is not tested"
    bash_lines = {n for lang, first, code in fences(text) if lang == "bash" for n in range(first, first + code.count("\n") + 1)}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().lstrip("$ ").strip()
        if _covered_line(line) and n not in bash_lines:
            pytest.fail(f"README line {n} is a command outside a ```bash block, so no test runs it: {line!r}")
    make_targets = {s.text.split()[1] for s in steps() if s.text.startswith("make ")}
    stale = set(MAKE_NOT_RUN) - make_targets
    assert not stale, f"MAKE_NOT_RUN lists targets the README no longer shows: {stale}"
    stale = [p for p in BLOCKING if not any(s.text.startswith(p) for s in steps())]
    assert not stale, f"BLOCKING lists commands the README no longer shows: {stale}"
    stale = [p for p in NEEDS_A_CLUSTER if not any(s.text.startswith(p) for s in steps())]
    assert not stale, f"NEEDS_A_CLUSTER lists commands the README no longer shows: {stale}"
    assert {"demo", "test", "test-slow"} <= make_targets


def test_readme_documents_every_cli_command():
    """The CLI surface stays documented: every command and sub-command appears in a ```bash line."""
    from pixelforge.cli import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    for group in app.registered_groups:
        names.append(group.name)
        names += [f"{group.name} {c.name or c.callback.__name__}" for c in group.typer_instance.registered_commands]
    documented = " ".join(s.text for s in steps() if s.kind == "bash")
    missing = [n for n in names if f"pixelforge {n}" not in documented]
    assert not missing, f"README.md shows no `pixelforge {missing[0]}` command (missing: {missing})"


def test_readme_keeps_the_ci_statement():
    text = README.read_text()
    assert "`.ci/run`" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_pictures_exist_and_are_small():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", README.read_text())
    assert len(pictures) >= 4
    for rel in pictures:
        path = ROOT / rel
        assert path.is_file(), f"README shows {rel}, which is missing (run: python docs/make_pictures.py)"
        assert path.stat().st_size <= 150_000, f"{rel} is {path.stat().st_size:,} bytes; keep pictures under 150 KB"
        with Image.open(path) as img:
            assert img.format == "PNG" and min(img.size) >= 200


def test_readme_links_to_files_that_exist():
    for rel in re.findall(r"\]\(((?!https?:)[^)#]+)\)", README.read_text()):
        assert (ROOT / rel).exists(), f"README links to {rel}, which does not exist"


@pytest.mark.slow
def test_make_pictures_script_redraws_every_readme_picture(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "make_pictures.py"), "--quick", "--out", str(tmp_path / "out"),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    made = {p.name for p in (tmp_path / "out").glob("*.png")}
    shown = {Path(p).name for p in re.findall(r"\]\((docs/[^)]+\.png)\)", README.read_text())}
    assert shown <= made, f"the script does not make {shown - made}"
    assert all(p.stat().st_size <= 150_000 for p in (tmp_path / "out").glob("*.png"))
