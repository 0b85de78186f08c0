"""The command line: each command is a few lines over the library.

Exit codes: 0 ok, 1 findings at or above --fail-on, 2 usage or input error (one line naming the file
and what is wrong, never a traceback), 3 an internal error (a bug: a short message, and the traceback
with ``--debug`` or ``PIXELFORGE_DEBUG=1``).
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pixelforge import __version__
from pixelforge.errors import PixelforgeError, debug_flag, debugging

app = typer.Typer(
    name="pixelforge",
    help="Data-centric image classification: read, audit, prepare, augment, train, test in the wild.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    # the message names files and options ("hf://owner/repo[/file]"): never read as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


# Errors that come from what the user typed or pointed at (a missing or unreadable file), not from a bug.
USER_INPUT_ERRORS = (PixelforgeError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def friendly_errors(func):
    """Input errors (pixelforge's own, missing or unreadable files) become one-line messages with exit
    code 2. Anything else is a bug: a short message and exit code 3, the traceback with --debug."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except USER_INPUT_ERRORS as exc:
            if debugging():
                raise
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", code=130)
        except Exception as exc:
            if debugging() or type(exc).__module__.split(".")[0] in ("typer", "click"):
                raise  # typer.Exit (the command's own exit code) and usage errors pass through
            fail(f"internal error ({type(exc).__name__}: {exc}); this is a bug in pixelforge — "
                 "run with --debug for the traceback", code=3)

    return wrapper


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _version_callback(value: bool):
    if value:
        console.print(f"pixelforge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error (also PIXELFORGE_DEBUG=1).")
    ] = False,
):
    """pixelforge command line."""
    debug_flag["on"] = debug


def parse_options(pairs: list[str] | None) -> dict:
    """``--option key=value`` pairs → reader keyword arguments (numbers and booleans converted)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise PixelforgeError(f"--option expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out


LayoutOpt = Annotated[str, typer.Option("--layout", help="Layout name, or auto to detect.")]
OptionOpt = Annotated[
    list[str] | None, typer.Option("--option", "-o", help="Layout reader option key=value (repeatable).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
GroupColumnOpt = Annotated[str | None, typer.Option(
    "--group-column", help="Metadata column (e.g. sender_id) whose groups never span two parts of a split.")]
CurationOpt = Annotated[str | None, typer.Option(
    "--curation", help="Decisions file written by `pixelforge browse` (relabels, exclusions), applied on read.")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="local (threads/processes here) or ray (decode in Ray tasks; pip install 'pixelforge[ray]').")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="With --engine ray: the cluster (auto, or ray://host:10001); default: start Ray here.")]


def read_options(option: list[str] | None, curation: str | None = None) -> dict:
    """``-o key=value`` reader options, plus ``--curation FILE`` (the same as ``-o curation=FILE``)."""
    options = parse_options(option)
    if curation is not None:
        if options.get("curation", curation) != curation:
            raise PixelforgeError("--curation and -o curation= name different files; give one")
        options["curation"] = curation
    return options


@app.command()
@friendly_errors
def info(
    source: Annotated[str, typer.Argument(help="Folder, CSV, JSON, HDF5, NPZ, archive or http(s) URL.")],
    curation: CurationOpt = None,
    layout: LayoutOpt = "auto",
    option: OptionOpt = None,
    sizes: Annotated[int, typer.Option(help="Decode this many images (seeded sample) to report sizes and modes; 0 skips.")] = 200,
    as_json: JsonOpt = False,
):
    """Layout found, classes, counts per split, image sizes and modes."""
    from pixelforge.data.describe import describe_dataset
    from pixelforge.data.read import read_dataset

    manifest = read_dataset(source, layout=layout, **read_options(option, curation))
    report = describe_dataset(manifest, sample=sizes)
    if as_json:
        print_json(report)
        return
    console.print(f"[bold]{source}[/]  layout: [cyan]{manifest.layout}[/]  images: {len(manifest):,}  classes: {manifest.num_classes}")
    table = Table(title="images per class and split")
    table.add_column("class")
    by_split = manifest.counts_by_split()
    for split in by_split:
        table.add_column(split, justify="right")
    for name in manifest.classes:  # class names and metadata are the user's text, never markup
        table.add_row(escape(name), *[f"{by_split[s][name]:,}" for s in by_split])
    table.add_row("[bold]total[/]", *[f"[bold]{sum(by_split[s].values()):,}[/]" for s in by_split])
    console.print(table)
    if report["metadata"]:
        meta = Table(title="per-image metadata")
        for column in ("column", "distinct", "missing", "examples"):
            meta.add_column(column, justify="right" if column in ("distinct", "missing") else "left")
        for name, row in report["metadata"].items():
            meta.add_row(escape(name), f"{row['distinct']:,}", f"{row['missing']:,}",
                         escape(", ".join(row["examples"])))
        console.print(meta)
    if report.get("image_sample"):
        sample = report["image_sample"]
        console.print(
            f"sample of {sample['decoded']} images: sizes {sample['sizes']}, channels {sample['channels']}, "
            f"dtypes {sample['dtypes']}" + (f", unreadable {sample['failed']}" if sample["failed"] else "")
        )
    for key, count in manifest.ignored.items():
        console.print(f"[yellow]ignored[/] {count:,} {key.replace('_', '-')} file(s)")
    for skip in manifest.skipped[:20]:
        console.print(f"[yellow]skipped[/] {skip.item}: {skip.reason}")
    if len(manifest.skipped) > 20:
        console.print(f"[yellow]… and {len(manifest.skipped) - 20} more skipped[/]")
    for note in manifest.notes:
        console.print(f"[yellow]note[/] {note}")


models_app = typer.Typer(help="The model zoo: list architectures, show a layer table or diagram.",
                         invoke_without_command=True, no_args_is_help=False)
app.add_typer(models_app, name="models")


@models_app.callback()
@friendly_errors
def models_list(ctx: typer.Context, as_json: JsonOpt = False):
    """List the zoo: name, description, default optimizer, parameters."""
    if ctx.invoked_subcommand is not None:
        return
    from pixelforge.models.registry import describe_zoo

    zoo = describe_zoo()
    if as_json:
        print_json(zoo)
        return
    table = Table(title="pixelforge model zoo (models output logits; softmax in the loss and at predict)")
    for column in ("model", "description", "optimizer", "parameters (defaults)"):
        table.add_column(column)
    for row in zoo:
        optimizer = row["default_optimizer"] or "none (fit on arrays)"
        if row["optimizer_options"]:
            optimizer += " " + ", ".join(f"{k}={v}" for k, v in row["optimizer_options"].items())
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        table.add_row(row["name"], row["description"], optimizer, params)
    console.print(table)


@models_app.command("show")
@friendly_errors
def models_show(
    name: Annotated[str, typer.Argument(help="Model name (see `pixelforge models`).")],
    input_shape: Annotated[str, typer.Option("--input", help="Image size HEIGHTxWIDTHxCHANNELS.")] = "28x28x1",
    classes: Annotated[int, typer.Option("--classes", help="Number of classes.")] = 10,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Model parameter key=value (repeatable).")] = None,
    diagram: Annotated[str | None, typer.Option("--diagram", help="Also draw the layers to this PNG.")] = None,
    as_json: JsonOpt = False,
):
    """Layer table (output shapes, parameter counts) of a model for an input size, like Keras' summary."""
    from pixelforge.models import build_model
    from pixelforge.models.geometry import parse_input_shape
    from pixelforge.models.summary import draw_diagram, format_summary, summarize, totals

    shape = parse_input_shape(input_shape)
    model = build_model(name, shape, classes, **parse_options(param))
    rows = summarize(model, shape)
    if diagram:
        draw_diagram(model, shape, diagram)
    if as_json:
        print_json({"config": model.config, "default_optimizer": model.default_optimizer, "layers": rows,
                    "totals": totals(rows), "diagram": diagram})
        return
    console.print(format_summary(rows, name), highlight=False, markup=False)
    if diagram:
        console.print(f"diagram written to {diagram}")


@app.command()
@friendly_errors
def convert(
    source: Annotated[str, typer.Argument(help="Folder, CSV, JSON, HDF5, NPZ, archive or http(s) URL.")],
    output: Annotated[str, typer.Argument(help="The HDF5 store to write, e.g. store.h5 (a folder with --shards/--shard-size).")],
    size: Annotated[str | None, typer.Option(help="Resize to N or HEIGHTxWIDTH (default: keep sizes).")] = None,
    channels: Annotated[int | None, typer.Option(help="Force 1 (grayscale) or 3 (RGB) channels.")] = None,
    resize: Annotated[str, typer.Option(help="squash, crop (shortest side, centre crop) or pad (letterbox).")] = "squash",
    interpolation: Annotated[str, typer.Option(help="auto (area shrinking, cubic enlarging) or a method name.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    test_size: Annotated[float | None, typer.Option(help="Hold-out fraction (default: 20%/10%/5% by size).")] = None,
    group_column: GroupColumnOpt = None,
    on_error: Annotated[str, typer.Option(help="skip (count and report) or fail on the first bad image.")] = "skip",
    compression: Annotated[str, typer.Option(help="gzip (portable, smaller), lzf (faster) or none.")] = "gzip",
    workers: Annotated[int | None, typer.Option(help="Decoding threads (default: CPU count).")] = None,
    shards: Annotated[int | None, typer.Option(help="Write N stores (shards) plus index.json into the folder OUTPUT.")] = None,
    shard_size: Annotated[int | None, typer.Option(help="Like --shards, with this many images per shard.")] = None,
    engine: EngineOpt = "local", address: AddressOpt = None,
    curation: CurationOpt = None,
    layout: LayoutOpt = "auto",
    option: OptionOpt = None,
    as_json: JsonOpt = False,
):
    """Decode, resize and split a dataset into one chunked, compressed HDF5 store (with stats and provenance),
    or into a folder of shards with an index (--shards N or --shard-size K)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from pixelforge.data.preprocess import Preprocess
    from pixelforge.data.read import read_dataset
    from pixelforge.data.shards import write_sharded_store
    from pixelforge.data.store import parse_size, write_store

    if on_error not in ("skip", "fail"):
        raise PixelforgeError(f"--on-error must be skip or fail, got {on_error!r}")
    if shards is not None and shard_size is not None:
        raise PixelforgeError("give --shards (a number of files) or --shard-size (images per file), not both")
    sharding = {} if shards is None and shard_size is None else {"shards": shards, "shard_size": shard_size}
    writer = functools.partial(write_sharded_store, **sharding) if sharding else write_store
    spec = Preprocess(size=parse_size(size), channels=channels, resize=resize, interpolation=interpolation)
    manifest = read_dataset(source, layout=layout, **read_options(option, curation))
    _start_engine(engine, address)
    start = time.perf_counter()
    columns = (TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # refreshed per batch, not by rich's timer thread: a lone thread lets the loader fork its workers
    with Progress(*columns, console=err_console, disable=as_json, transient=True, auto_refresh=False) as bar:
        task = bar.add_task("convert", total=len(manifest))
        summary = writer(
            manifest, output, spec, seed=seed, test_size=test_size, group_column=group_column, on_error=on_error,
            compression=compression, workers=workers, progress=lambda done, total: bar.update(task, completed=done, refresh=True),
            engine=engine,
        )
    seconds = time.perf_counter() - start
    if as_json:
        print_json({**summary.to_dict(), "seconds": round(seconds, 3)})
        return
    h, w, c = summary.shape
    console.print(
        f"wrote [bold]{output}[/]: {summary.images:,} images {h}x{w}x{c} {summary.dtype}, "
        f"{len(summary.classes)} classes, splits {summary.counts_by_split}, "
        f"{summary.bytes / 1e6:.1f} MB in {seconds:.1f} s"
        + (f", {len(summary.shards)} shards + index.json" if summary.shards else ""), highlight=False,
    )
    console.print(f"channel mean {[round(v, 4) for v in summary.mean]} std {[round(v, 4) for v in summary.std]} "
                  "(training split, [0, 1] units)", highlight=False)
    for skip in summary.skipped[:20]:
        console.print(f"[yellow]skipped[/] {skip.item}: {skip.reason}", highlight=False)
    if len(summary.skipped) > 20:
        console.print(f"[yellow]… and {len(summary.skipped) - 20} more skipped (listed in the store)[/]")



# ---- experiments (robustness helper) ----------------------------------------------------------
experiment_app = typer.Typer(help="Reproducible experiments: the data-curation study, wild-test-and-retrain.",
                             no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("curation")
@friendly_errors
def experiment_curation(
    source: Annotated[str, typer.Argument(help="MNIST with train/ and test/ splits (e.g. an extracted mnist folder).")],
    out: Annotated[str, typer.Option(help="Folder for curation.md, curation.json and the trained runs.")] = "runs/experiment-curation",
    epochs: Annotated[int, typer.Option(help="Epochs per model (the material: 10).")] = 10,
    batch_size: Annotated[int, typer.Option(help="Batch size (the material: 32).")] = 32,
    seed: Annotated[int, typer.Option(help="Seed for sampling, initialization, shuffling and augmentation.")] = 0,
    quick: Annotated[bool, typer.Option(help="Smoke test: 1,000 training / 200 test images, 1 epoch.")] = False,
    recommend: Annotated[bool, typer.Option(help="Also train with pixelforge's own recommendations.")] = True,
    threshold: Annotated[float, typer.Option(help="Accuracy drop that earns a recommendation.")] = 0.05,
    as_json: JsonOpt = False,
):
    """The data-curation material's MNIST table (test / inverted / shifted), side by side with its numbers."""
    from pixelforge.experiments.curation import run_curation

    log = (lambda message: err_console.print(message, highlight=False)) if as_json else console.print
    result = run_curation(source, out, epochs=epochs, batch_size=batch_size, seed=seed, quick=quick,
                          recommend=recommend, threshold=threshold, log=log)
    if as_json:
        print_json(result)
        return
    from pathlib import Path

    console.print((Path(out) / "curation.md").read_text(), markup=False, highlight=False)


@experiment_app.command("wild-retrain")
@friendly_errors
def experiment_wild_retrain(
    source: Annotated[str, typer.Argument(help="Dataset with train/test splits (e.g. extracted fashion-mnist).")],
    model: Annotated[str, typer.Option(help="Model name from `pixelforge models`.")] = "fmnist_baseline",
    out: Annotated[str, typer.Option(help="Folder for wild_retrain.md/.json, before/ and after/ reports, runs.")] = "runs/experiment-wild-retrain",
    epochs: Annotated[int, typer.Option()] = 10,
    batch_size: Annotated[int, typer.Option()] = 32,
    seed: Annotated[int, typer.Option()] = 0,
    threshold: Annotated[float, typer.Option(help="Accuracy drop that earns a recommendation.")] = 0.1,
    limit: Annotated[int, typer.Option(help="Test images in the wild suite (seeded stratified sample; 0 = all).")] = 2000,
    augment: Annotated[str | None, typer.Option(help="Use this --augment spec instead of the recommended one.")] = None,
    strength: Annotated[float, typer.Option(help="Start at this fraction of the recommended strength.")] = 1.0,
    max_clean_drop: Annotated[float, typer.Option(help="Soften the augmentation while validation accuracy drops more.")] = 0.01,
    attempts: Annotated[int, typer.Option(help="Trainings at most (full, half, quarter, eighth strength).")] = 4,
    quick: Annotated[bool, typer.Option(help="Smoke test: 1,000 training / 300 test images, 1 epoch.")] = False,
    as_json: JsonOpt = False,
):
    """Train, test in the wild, retrain with the recommended augmentation, test again."""
    from pixelforge.experiments.wild_retrain import run_wild_retrain

    log = (lambda message: err_console.print(message, highlight=False)) if as_json else console.print
    sizes = dict(train_limit=1000, test_limit=300, epochs=1, suite_limit=200) if quick else {}
    options = dict(epochs=epochs, suite_limit=limit or None) | sizes
    result = run_wild_retrain(source, out, model=model, batch_size=batch_size, seed=seed, threshold=threshold,
                              augment=augment, strength=strength, max_clean_drop=max_clean_drop, attempts=attempts,
                              log=log, **options)
    if as_json:
        print_json(result)
        return
    from pathlib import Path

    console.print((Path(out) / "wild_retrain.md").read_text(), markup=False, highlight=False)


@app.command()
@friendly_errors
def audit(
    source: Annotated[str, typer.Argument(help="Dataset: folder, CSV, JSON, HDF5, NPZ, archive or URL.")],
    out: Annotated[str, typer.Option("--out", help="Folder for report.html and report.json.")] = "audit-report",
    fail_on: Annotated[
        str, typer.Option("--fail-on", help="Exit 1 when a finding is at or above: error, warning or none.")
    ] = "none",
    checks: Annotated[str, typer.Option("--checks", help="Comma-separated checks to run (default: all).")] = "all",
    sample: Annotated[int, typer.Option("--sample", help="Audit a seeded random sample of N images (0: all).")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for sampling and the cross-validated models.")] = 0,
    group_column: Annotated[str | None, typer.Option(
        "--group-column", help="Metadata column (e.g. sender_id): a group in two splits is reported as leakage.")] = None,
    engine: EngineOpt = "local", address: AddressOpt = None,
    curation: CurationOpt = None,
    layout: LayoutOpt = "auto",
    option: OptionOpt = None,
    as_json: JsonOpt = False,
):
    """Check a dataset against the rules of good training data; write report.html and report.json.

    Checks: stats, size, imbalance, integrity, quality, duplicates, variation, shortcut, labels.
    --option sets check settings (e.g. near_neighbours=12, quality_z=4, label_epochs=10); prefix reader
    options with "read." (e.g. read.label_mode=top)."""
    from pixelforge.audit.report import print_console, write_reports
    from pixelforge.audit.runner import parse_checks, run_audit

    if fail_on not in ("error", "warning", "none"):
        fail(f"--fail-on must be error, warning or none, got {fail_on!r}")
    if sample < 0:
        fail(f"--sample must be 0 or a positive number of images, got {sample}")
    parse_checks(checks)  # reject unknown names before reading anything
    options = parse_options(option)
    reader_options = {k[len("read."):]: v for k, v in options.items() if k.startswith("read.")}
    check_options = {k: v for k, v in options.items() if not k.startswith("read.")}
    from pixelforge.data.read import read_dataset

    if curation:
        reader_options["curation"] = curation
    manifest = read_dataset(source, layout=layout, **reader_options)
    _start_engine(engine, address)
    report = run_audit(manifest, checks=checks, sample=sample or None, seed=seed, options=check_options,
                       progress=True, group_column=group_column, curation=reader_options.get("curation"),
                       engine=engine)
    paths = write_reports(report, out)
    if as_json:
        from pixelforge.audit.report import report_dict

        print_json({"report": {k: str(v) for k, v in paths.items()}, **report_dict(report)})
    else:
        print_console(report, console)
        console.print(f"reports: {paths['html']} and {paths['json']}", highlight=False)
    if report.failing(fail_on):
        raise typer.Exit(1)


@app.command()
@friendly_errors
def browse(
    source: Annotated[str, typer.Argument(help="Dataset: folder, CSV, JSON, HDF5, NPZ, archive or URL.")],
    audit_dir: Annotated[str | None, typer.Option(
        "--audit", help="An audit's folder (or its report.json): filter by finding, see groups and notes.")] = None,
    run: Annotated[str | None, typer.Option(
        "--run", help="A run folder (pixelforge train): right/wrong, confidence, top-k, confusion matrix.")] = None,
    curation: Annotated[str | None, typer.Option(
        "--curation", help="Where the decisions go (JSON lines, appended); default: NAME.curation.jsonl here.")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on; anything but 127.0.0.1 exposes the images.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 8765,
    layout: LayoutOpt = "auto",
    option: OptionOpt = None,
):
    """Local web app: look through the images with the audit's findings and a model's predictions; relabel,
    exclude, mark checked or keep one of a duplicate group. Decisions go to a curation file that train, cv,
    convert, audit and augment apply with --curation FILE; the dataset is never changed. Ctrl-C stops it."""
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise PixelforgeError(f"browse needs the web server packages ({exc.name} is missing): "
                              "pip install 'pixelforge[browse]'") from None
    from pixelforge.browse.curation import default_curation_path
    from pixelforge.browse.server import is_loopback, serve
    from pixelforge.browse.session import Session
    from pixelforge.data.read import read_dataset

    options = parse_options(option)
    if "curation" in options:
        raise PixelforgeError("browse shows the dataset as it is and writes decisions to --curation FILE; "
                              "drop -o curation=")
    manifest = read_dataset(source, layout=layout, **options)
    curation = curation or str(default_curation_path(source))
    session = Session(manifest, curation, audit=audit_dir, run=run, source=source)
    if not is_loopback(host):
        err_console.print(f"[yellow]warning[/] listening on {host}: anyone who can reach this machine can see "
                          "the images (writes still need the page's token)", highlight=False)

    def announce(url: str) -> None:
        console.print(f"pixelforge browse: [bold]{url}[/] ({len(manifest):,} images); decisions go to "
                      f"{curation}; Ctrl-C stops", highlight=False)

    serve(session, host, port, announce=announce)
    console.print("stopped", highlight=False)


@app.command()
@friendly_errors
def augment(
    source: Annotated[str, typer.Argument(help="Dataset folder or file (any layout pixelforge reads).")],
    out: Annotated[str, typer.Option("--out", help="Folder to write <class>/<prefix>_<index>_<hash>.<format> into.")],
    per_image: Annotated[int, typer.Option("--per-image", help="Augmented copies per source image.")] = 1,
    augment_spec: Annotated[str, typer.Option("--augment", help='Pipeline spec, e.g. "rotation_range=15,width_shift_range=0.2,horizontal_flip".')] = "rotation_range=15,width_shift_range=0.1,height_shift_range=0.1,zoom_range=0.1,horizontal_flip",
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same files.")] = 0,
    balance: Annotated[bool, typer.Option("--balance", help="Top up every class to --target with augmented copies (originals are written too).")] = False,
    target: Annotated[int | None, typer.Option(help="Images per class with --balance (default: the largest class).")] = None,
    include_originals: Annotated[bool, typer.Option("--include-originals", help="Also write the source images.")] = False,
    preview: Annotated[str | None, typer.Option(help="Write a montage PNG: one row per source image, original + copies.")] = None,
    preview_rows: Annotated[int, typer.Option(help="Source images in the preview.")] = 8,
    fmt: Annotated[str, typer.Option("--format", help="png or jpg (also bmp, tif, webp).")] = "png",
    prefix: Annotated[str, typer.Option(help="File name prefix.")] = "aug",
    size: Annotated[int | None, typer.Option(help="Resize images to SIZE x SIZE before augmenting.")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split of a pre-split source (e.g. train).")] = None,
    curation: CurationOpt = None,
    layout: LayoutOpt = "auto",
    option: OptionOpt = None,
    as_json: JsonOpt = False,
):
    """Write augmented copies (save_to_dir naming) plus manifest.csv; --balance, --preview."""
    from rich.progress import Progress

    from pixelforge.augment import Pipeline
    from pixelforge.augment.writer import augment_to_dir
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.data.read import read_dataset

    pipeline = Pipeline.from_spec(augment_spec)
    manifest = read_dataset(source, layout=layout, **read_options(option, curation))
    if split:
        if split not in manifest.split_names:
            fail(f"{source}: no split {split!r}; splits are {manifest.split_names or 'none'}")
        manifest = manifest.split(split)
    spec = Preprocess(size=size) if size else None
    with Progress(console=err_console, transient=True, disable=as_json) as bar:
        task = bar.add_task("augmenting", total=len(manifest))
        summary = augment_to_dir(
            manifest, pipeline, out, per_image=per_image, seed=seed, balance=balance, target=target,
            save_format=fmt, prefix=prefix, include_originals=include_originals, preprocess=spec,
            preview=preview, preview_rows=preview_rows, progress=lambda i: bar.update(task, completed=i + 1),
        )
    if as_json:
        print_json(summary)
        return
    console.print(
        f"wrote {summary['written']:,} images ({summary['augmented']:,} augmented, {summary['originals']:,} originals) "
        f"to {out} with {pipeline.describe()}; manifest: {summary['manifest_csv']}"
    )
    table = Table(title="images written per class")
    table.add_column("class")
    table.add_column("written", justify="right")
    for name, count in summary["per_class"].items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    if summary.get("preview"):
        console.print(f"preview: {summary['preview']}")
    for skip in summary["skipped"][:20]:
        console.print(f"[yellow]skipped[/] {skip['item']}: {skip['reason']}")


# ---- training, cross-validation, evaluation, prediction (trainer) ----------------------------------
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Zoo model name (see `pixelforge models`).")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Passes over the training data.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per optimizer step.")]
OptimizerOpt = Annotated[str, typer.Option("--optimizer", help="auto (the model's default), sgd, adam, adamw or rmsprop.")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Learning rate (default: the optimizer's/model's).")]
MomentumOpt = Annotated[float | None, typer.Option("--momentum", help="Momentum for sgd/rmsprop.")]
NesterovOpt = Annotated[bool, typer.Option("--nesterov", help="Nesterov momentum (sgd).")]
DecayOpt = Annotated[float, typer.Option("--weight-decay", help="L2 weight decay added to the gradient.")]
ScheduleOpt = Annotated[str | None, typer.Option("--schedule", help="step:every=10,factor=0.5 | poly:power=2 | linear | cosine | onecycle.")]
AugmentOpt = Annotated[str | None, typer.Option("--augment", help='Augmentation, e.g. "rotation_range=15,width_shift_range=0.2,horizontal_flip".')]
SizeOpt = Annotated[str | None, typer.Option("--size", help="Resize to N or HEIGHTxWIDTH (default: the images' own size).")]
ChannelsOpt = Annotated[int | None, typer.Option("--channels", help="1 (grayscale) or 3 (RGB); default: the images' own.")]
StandardizeOpt = Annotated[str | None, typer.Option("--standardize", help="global, channel, pixel (fitted on training data) or sample.")]
CanonicalOpt = Annotated[str | None, typer.Option("--canonical", help="Canonicalize every image (also at evaluate/predict; saved in "
                                                  "model.json): comma-separated polarity,crop,center,stretch.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for splits, weights, shuffling and augmentation.")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p", help="Model parameter key=value (repeatable).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="torch CPU threads (default: the idle cores now, at least 1); training "
                                                  "drops to one thread while that measures faster (shared cores).")]
FixedThreadsOpt = Annotated[bool, typer.Option("--fixed-threads", help="Keep --threads fixed: no switching to one thread "
                                                "(bit-reproducible multi-threaded runs).")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp32 (like Keras), bf16 (matrix products on bfloat16 inputs, float32 weights; faster on "
                                                          "AMX / AVX-512 BF16 CPUs, slightly different numbers) or auto (bf16 where the CPU has it "
                                                          "natively, else fp32; recorded in model.json).")]


def _training_options(optimizer, lr, momentum, nesterov, weight_decay, schedule, augment, seed, param, threads,
                      precision="fp32", fixed_threads=False) -> dict:
    return {"optimizer": optimizer, "lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
            "schedule": schedule, "augment": augment, "seed": seed, "model_params": parse_options(param),
            "threads": threads or "auto", "precision": precision, "adaptive_threads": not fixed_threads}


def _start_engine(engine: str, address: str | None) -> None:
    """Start (or connect to) Ray before a command's long pass, and say where it runs."""
    from pixelforge.data.ray_engine import check_engine, start

    if check_engine(engine) == "local":
        if address:
            raise PixelforgeError("--address goes with --engine ray")
        return
    where = start(address)
    err_console.print(f"ray: {where['cpus']} CPUs on {where['nodes']} node(s) ({where['address']})", highlight=False)


def _preprocess(size, channels, standardize, canonical=None):
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.data.store import parse_size

    return Preprocess(size=parse_size(size), channels=channels, standardize=standardize, canonical=canonical)


@app.command()
@friendly_errors
def train(
    source: Annotated[str, typer.Argument(help="Dataset folder or file (any layout), or an HDF5 store.")],
    out: Annotated[str, typer.Option("--out", help="Run folder: model, checkpoints, curves, metrics.")],
    model: ModelOpt = "fmnist_baseline", epochs: EpochsOpt = 10, batch_size: BatchOpt = 32,
    optimizer: OptimizerOpt = "auto", lr: LrOpt = None, momentum: MomentumOpt = None, nesterov: NesterovOpt = False,
    weight_decay: DecayOpt = 0.0, schedule: ScheduleOpt = None, augment: AugmentOpt = None, size: SizeOpt = None,
    channels: ChannelsOpt = None, standardize: StandardizeOpt = None, canonical: CanonicalOpt = None, seed: SeedOpt = 0,
    param: ParamOpt = None, group_column: GroupColumnOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    early_stopping: Annotated[int | None, typer.Option("--early-stopping", help="Stop after N epochs without improvement.")] = None,
    monitor: Annotated[str, typer.Option("--monitor", help="val_loss or val_accuracy: picks the best checkpoint.")] = "val_loss",
    lr_find: Annotated[bool, typer.Option("--lr-find", help="Only run the LR range test (writes lr_find.png) and suggest an LR.")] = False,
    threads: ThreadsOpt = None, fixed_threads: FixedThreadsOpt = False, precision: PrecisionOpt = "fp32",
    pretrained: Annotated[str | None, typer.Option(
        "--pretrained", help="Start from these weights: a .safetensors/.pth file, a pixelforge model folder, an "
                             "http(s) URL or hf://owner/repo or hf://owner/repo/file (downloaded once into ~/.cache/pixelforge).")] = None,
    pretrained_sha256: Annotated[str | None, typer.Option(
        "--pretrained-sha256", help="Expected SHA-256 of the --pretrained file.")] = None,
    freeze: Annotated[bool, typer.Option("--freeze", help="Train only the head (the pre-trained body is frozen).")] = False,
    unfreeze_after: Annotated[int | None, typer.Option(
        "--unfreeze-after", help="Train the head for N epochs, then every layer (implies --freeze).")] = None,
    layer_lr_ratio: Annotated[float | None, typer.Option(
        "--layer-lr-ratio", help="With --pretrained: the first layers learn at this fraction of --lr (default 0.1).")] = None,
    curation: CurationOpt = None,
    nproc: Annotated[int, typer.Option(
        "--nproc", help="Train data-parallel in N processes on this machine (launches torchrun; "
                        "on a cluster run torchrun -m pixelforge train … yourself).")] = 1,
    device: Annotated[str, typer.Option(
        "--device", help="cpu, cuda, cuda:N or auto (cuda when torch sees a GPU); with --nproc each rank takes its own GPU.")] = "cpu",
    layout: LayoutOpt = "auto", option: OptionOpt = None, as_json: JsonOpt = False,
):
    """Train a model; writes the run folder (model.safetensors + model.json, checkpoints, curves, log, metrics)."""
    import os

    from rich.markup import escape

    if nproc != 1 and lr_find:
        raise PixelforgeError("--lr-find runs in one process; drop --nproc for it")
    if nproc != 1 and "WORLD_SIZE" not in os.environ:  # the launcher; each rank runs without --nproc
        from pixelforge.train.distributed import launch, strip_nproc

        if "train" not in sys.argv:
            raise PixelforgeError("--nproc relaunches the command line, which does not hold 'train' here")
        raise typer.Exit(launch(nproc, strip_nproc(sys.argv[sys.argv.index("train"):])))
    from pixelforge.data.read import read_dataset
    from pixelforge.train.run import lr_find_run, train_run
    from pixelforge.train.trainer import TrainingInterrupted

    manifest = read_dataset(source, layout=layout, **read_options(option, curation))
    for note in manifest.notes if not as_json else []:
        err_console.print(f"[yellow]note[/] {escape(note)}", highlight=False)
    options = _training_options(optimizer, lr, momentum, nesterov, weight_decay, schedule, augment, seed, param, threads,
                                precision, fixed_threads)
    options["device"] = device
    if pretrained:
        options.update(pretrained=pretrained, pretrained_sha256=pretrained_sha256, freeze=freeze,
                       unfreeze_after=unfreeze_after, layer_lr_ratio=layer_lr_ratio)
    elif freeze or unfreeze_after is not None:
        raise PixelforgeError("--freeze and --unfreeze-after need --pretrained weights")
    spec = _preprocess(size, channels, standardize, canonical)
    if lr_find:
        result = lr_find_run(manifest, out, model=model, preprocess=spec, batch_size=batch_size,
                             group_column=group_column, **options)
        print_json(result) if as_json else console.print(f"suggested learning rate: {result['suggested_lr']}; plot: {result['plot']}")
        return
    try:
        summary = train_run(manifest, out, model=model, preprocess=spec, epochs=epochs, batch_size=batch_size,
                            monitor=monitor, early_stopping=early_stopping, resume=resume, progress=not as_json,
                            console=err_console, group_column=group_column, **options)
    except TrainingInterrupted as exc:
        fail(f"{exc}; resume with the same command plus --resume", code=130)
    if summary is None:  # a data-parallel rank other than 0: rank 0 reports
        return
    if as_json:
        print_json(summary)
        return
    shown = {k: v for k, v in summary["metrics"].items() if "acc" in k or "loss" in k}
    console.print("  ".join(f"{k} {v:.4f}" for k, v in shown.items()), highlight=False)
    console.print(f"run folder: {summary['run']} (model.json, model.safetensors, curves.png, log.csv, metrics.json)")


@app.command()
@friendly_errors
def cv(
    source: Annotated[str, typer.Argument(help="Dataset (its train split is used when it has one).")],
    out: Annotated[str, typer.Option("--out", help="Folder for cv.json, curves, box plot.")] = "runs/cv",
    folds: Annotated[int, typer.Option("--folds", help="Number of folds.")] = 5,
    model: ModelOpt = "fmnist_baseline", epochs: EpochsOpt = 10, batch_size: BatchOpt = 32,
    optimizer: OptimizerOpt = "auto", lr: LrOpt = None, momentum: MomentumOpt = None, nesterov: NesterovOpt = False,
    weight_decay: DecayOpt = 0.0, schedule: ScheduleOpt = None, augment: AugmentOpt = None, size: SizeOpt = None,
    channels: ChannelsOpt = None, standardize: StandardizeOpt = None, canonical: CanonicalOpt = None, seed: SeedOpt = 1,
    param: ParamOpt = None,
    group_column: GroupColumnOpt = None,
    threads: ThreadsOpt = None, fixed_threads: FixedThreadsOpt = False, precision: PrecisionOpt = "fp32",
    curation: CurationOpt = None,
    layout: LayoutOpt = "auto", option: OptionOpt = None, as_json: JsonOpt = False,
):
    """Stratified, shuffled, seeded k-fold cross-validation: accuracy mean ± std, per-fold curves, box plot."""
    from pixelforge.data.read import read_dataset
    from pixelforge.train.callbacks import ProgressBar
    from pixelforge.train.crossval import cross_validate

    manifest = read_dataset(source, layout=layout, **read_options(option, curation))
    data = manifest.split("train") if "train" in manifest.split_names else manifest
    options = _training_options(optimizer, lr, momentum, nesterov, weight_decay, schedule, augment, seed, param, threads,
                                precision, fixed_threads)
    options.pop("seed")
    report = cross_validate(data, _preprocess(size, channels, standardize, canonical), folds=folds, seed=seed, epochs=epochs,
                            batch_size=batch_size, out_dir=out, model=model, verbose=not as_json,
                            console=err_console, callbacks_for=None if as_json else lambda f: [ProgressBar(err_console)],
                            group_column=group_column, **options)
    if as_json:
        print_json({k: v for k, v in report.items() if k != "histories"})
        return
    for fold in report["per_fold"]:
        console.print(f"fold {fold['fold']}: accuracy {fold['accuracy']:.2%} ({fold['seconds']:.0f} s)")
    console.print(f"[bold]{report['summary']}[/]")
    console.print(f"report: {report['files']['report']}, curves: {report['files']['curves']}, box plot: {report['files']['boxplot']}")


@app.command()
@friendly_errors
def evaluate(
    run: Annotated[str, typer.Argument(help="Run folder (or its model.json).")],
    source: Annotated[str, typer.Argument(help="Labelled dataset to evaluate on (its test split when it has one).")],
    out: Annotated[str | None, typer.Option("--out", help="Report folder (default: RUN/evaluation).")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Split to use (default: test if present, else all).")] = None,
    wild: Annotated[bool, typer.Option("--wild", help="Also test on corrupted copies (robustness suite + recommendations).")] = False,
    wild_dir: Annotated[str | None, typer.Option("--wild-dir", help="Your own images (class folders) evaluated alongside.")] = None,
    severities: Annotated[str | None, typer.Option("--severities", help="Wild-suite severities, e.g. 1,3,5 or 1-5 (default: all).")] = None,
    corruptions: Annotated[str | None, typer.Option("--corruptions", help="Comma-separated corruption names (default: all).")] = None,
    wild_limit: Annotated[int, typer.Option("--wild-limit", help="Test images in the wild suite (seeded sample; 0 = all).")] = 2000,
    threshold: Annotated[float, typer.Option("--threshold", help="Accuracy drop that earns a recommendation.")] = 0.05,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the corruptions and the sample.")] = 0,
    curation: CurationOpt = None,
    layout: LayoutOpt = "auto", option: OptionOpt = None, as_json: JsonOpt = False,
):
    """Accuracy, per-class precision/recall/F1, confusion matrix (PNG + text), most confidently wrong images.

    With --wild / --wild-dir: the robustness suite (accuracy per corruption and severity, plot, HTML,
    recommendations and the train command that applies them)."""
    from pixelforge.data.read import read_dataset
    from pixelforge.train import load_model
    from pixelforge.train.evaluation import evaluate_model, report_dir

    model = load_model(run)
    manifest = read_dataset(source, layout=layout, **read_options(option, curation))
    if split:
        data = manifest.split(split)
    else:  # the split policy: the test split, else validation, else every image
        from pixelforge.data.split import held_out_part

        data, split = held_out_part(manifest)
    if len(data) == 0:
        fail(f"{source}: no images in split {split!r}; splits are {manifest.split_names or 'none'}")
    report = evaluate_model(model, data, out or report_dir(run))
    if wild or wild_dir:  # the robustness suite (pixelforge.robustness)
        from pathlib import Path

        from pixelforge.robustness.command import wild_evaluate

        report["wild"] = wild_evaluate(model, data, run, source, wild_dir=wild_dir, severities=severities,
                                       corruptions=corruptions, limit=wild_limit, threshold=threshold, seed=seed,
                                       out_dir=Path(out or report_dir(run)) / "wild", reference=manifest)
    if as_json:
        print_json(report)
        return
    console.print(f"[bold]accuracy {report['accuracy']:.2%}[/] on {report['images']:,} images  "
                  f"macro F1 {report['macro_f1']:.3f}  loss {report['loss']:.4f}")
    table = Table(title="per class")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in report["per_class"].items():
        table.add_row(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", f"{row['support']:,}")
    console.print(table)
    for skip in report["skipped"][:10]:
        console.print(f"[yellow]skipped[/] {skip['item']}: {skip['reason']}")
    for note in report["notes"]:
        console.print(f"[yellow]note[/] {note}", highlight=False)
    console.print("files: " + ", ".join(report["files"].values()), highlight=False)
    if "wild" in report:
        from pixelforge.robustness.report import print_report

        print_report(report["wild"], console)
        console.print("wild files: " + ", ".join(report["wild"]["files"].values()), highlight=False)


@app.command()
@friendly_errors
def features(
    source: Annotated[str, typer.Argument(help="Dataset (any layout).")],
    out: Annotated[str, typer.Option("--out", help="HDF5 file for the features (N x D), labels, rows and splits.")],
    backbone: Annotated[str, typer.Option(
        "--backbone", help="A zoo backbone (resnet18, resnet50, mobilenet_v3_large, …) or a pixelforge model folder.")] = "resnet18",
    weights: Annotated[str | None, typer.Option(
        "--weights", help="Pre-trained weights for a zoo backbone: file, URL or hf://owner/repo (or …/file).")] = None,
    weights_sha256: Annotated[str | None, typer.Option("--weights-sha256", help="Expected SHA-256 of --weights.")] = None,
    size: SizeOpt = None, channels: ChannelsOpt = None, batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    head: Annotated[str | None, typer.Option(
        "--head", help="Also fit a logistic-regression head on the training part and save backbone + head as a "
                       "model in this folder (scored on the held-out part).")] = None,
    c: Annotated[float, typer.Option("--C", help="Inverse L2 strength of the logistic regression.")] = 1.0,
    seed: SeedOpt = 0, group_column: Annotated[str | None, typer.Option(
        "--group-column", help="Metadata column whose groups stay on one side of the head's hold-out.")] = None,
    precision: PrecisionOpt = "fp32",
    layout: LayoutOpt = "auto", option: OptionOpt = None, as_json: JsonOpt = False,
):
    """Embed every image with a backbone (streamed into HDF5); optionally fit a linear head on the features."""
    from pixelforge.data.preprocess import Preprocess
    from pixelforge.data.read import read_dataset
    from pixelforge.data.store import parse_size
    from pixelforge.train.features import load_extractor, write_features

    manifest = read_dataset(source, layout=layout, **parse_options(option))
    spec = Preprocess(size=parse_size(size), channels=channels)
    extractor = load_extractor(backbone, weights, weights_sha256, spec)
    if not weights and extractor.weights is None:
        err_console.print("[yellow]note[/] no --weights: these are the features of a randomly initialized network")
    from pixelforge.train.speed import resolve_precision

    summary = write_features(manifest, out, extractor, batch_size=batch_size, bf16=resolve_precision(precision) == "bf16")
    if head:
        from pixelforge.train.features import linear_probe

        summary["head"] = linear_probe(manifest, out, extractor, head, C=c, seed=seed, group_column=group_column)
    if as_json:
        print_json(summary)
        return
    console.print(f"{summary['images']:,} images -> {summary['feature_dim']}-d features in {out}"
                  + (f" ({summary['skipped']} skipped)" if summary["skipped"] else ""), highlight=False)
    if head:
        h = summary["head"]
        console.print(f"linear head: {h['held_out']} accuracy {h['accuracy']:.4f} on {h['held_out_images']:,} images "
                      f"(trained on {h['train_images']:,}); model saved in {head}", highlight=False)


@app.command()
@friendly_errors
def predict(
    run: Annotated[str, typer.Argument(help="Run folder (or its model.json), or imagenet:NAME with --weights "
                                            "(e.g. imagenet:resnet50).")],
    images: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns or http(s) URLs.")],
    top: Annotated[int, typer.Option("--top", "-k", help="Classes to show per image.")] = 3,
    weights: Annotated[str | None, typer.Option(
        "--weights", help="With imagenet:NAME: the published weights (file, http(s) URL or hf://owner/repo (or …/file)).")] = None,
    weights_sha256: Annotated[str | None, typer.Option("--weights-sha256", help="Expected SHA-256 of --weights.")] = None,
    class_names: Annotated[str | None, typer.Option(
        "--class-names", help="With imagenet:NAME: class names, one per line (default: config.json beside the "
                              "weights, else indices).")] = None,
    as_json: JsonOpt = False,
):
    """Top-k classes with probabilities; the model's own preprocessing (size, channels, normalization) is applied."""
    from pixelforge.train import load_model
    from pixelforge.train.inputs import expand_sources
    from pixelforge.train.transfer import PUBLISHED_PREFIX, published_model

    if run.startswith(PUBLISHED_PREFIX):
        model = published_model(run, weights, weights_sha256, class_names)
    else:
        model = load_model(run)
    results = model.predict_files(expand_sources(images), top=top)
    if as_json:
        print_json(results)
    else:
        for result in results:
            if "error" in result:
                # decode errors already start with the file name
                error = result["error"]
                text = error if error.startswith(result["source"]) else f"{result['source']}: {error}"
                console.print(f"[red]error[/] {text}", highlight=False)
                continue
            tops = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in result["top"])
            console.print(f"{result['source']}: [bold]{result['prediction']}[/] ({tops})", highlight=False)
            for note in result["notes"]:
                console.print(f"  [yellow]note[/] {note}", highlight=False)
    if any("error" in r for r in results):
        raise typer.Exit(2)


@app.command()
@friendly_errors
def export(
    run: Annotated[str, typer.Argument(help="Run folder (or its model.json).")],
    onnx: Annotated[str, typer.Option("--onnx", help="Write the model as ONNX here (float NCHW input, normalized).")],
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Output softmax probabilities instead of logits.")] = False,
):
    """Export a trained model to ONNX (input: preprocessed float32 N x C x H x W)."""
    from pixelforge.models.export import export_onnx
    from pixelforge.train import load_model

    model = load_model(run)
    path = export_onnx(model.network, model.input_shape, onnx, probabilities=probabilities)
    spec = model.preprocess
    console.print(f"wrote {path}; input images {spec.size[0]}x{spec.size[1]}x{spec.channels}, preprocess as in "
                  f"{model.path / 'model.json'} (normalize={spec.normalize}, standardize={spec.standardize})")


@app.command()
@friendly_errors
def demo(
    out: Annotated[str, typer.Option("--out", help="Run folder to write.")] = "runs/demo",
    epochs: EpochsOpt = 8, seed: SeedOpt = 1, as_json: JsonOpt = False,
):
    """Train, evaluate, save and predict on the embedded Fashion-MNIST sample: offline, about 15 s."""
    from pixelforge.train.demo import run_demo

    result = run_demo(out, epochs=epochs, seed=seed, progress=not as_json, console=err_console)
    if as_json:
        print_json(result)
        return
    ev = result["evaluation"]
    console.print(f"[bold]test accuracy {ev['accuracy']:.2%}[/] on {ev['images']} held-out images (macro F1 {ev['macro_f1']:.3f})")
    for p in result["predictions"]:
        mark = "[green]right[/]" if p.get("prediction") == p["true"] else "[red]wrong[/]"
        console.print(f"{p['source']}: predicted {p.get('prediction')} ({p.get('probability', 0):.0%}), true {p['true']} {mark}", highlight=False)
    console.print(f"model: {result['run']}/model.json + model.safetensors; curves: {result['run']}/curves.png; "
                  f"reports: {', '.join(ev['files'].values())}", highlight=False)
    console.print(f"next: pixelforge predict {result['run']} IMAGE.jpg   |   pixelforge evaluate {result['run']} DATASET", highlight=False)


if __name__ == "__main__":
    app()
