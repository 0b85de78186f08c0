"""The command line: each command is a few lines over the library.

Exit codes: 0 ok, 1 findings at or above --fail-on, 2 usage or input error (one line naming the file
and what is wrong, never a traceback).
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pixelforge import __version__
from pixelforge.errors import PixelforgeError

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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def friendly_errors(func):
    """Turn input errors into one-line messages with exit code 2 instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PixelforgeError as exc:
            fail(str(exc))
        except (ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", code=130)

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
):
    """pixelforge command line."""


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


@app.command()
@friendly_errors
def info(
    source: Annotated[str, typer.Argument(help="Folder, CSV, JSON, HDF5, NPZ, archive or http(s) URL.")],
    layout: LayoutOpt = "auto",
    option: OptionOpt = None,
    sizes: Annotated[int, typer.Option(help="Decode this many images (seeded sample) to report sizes and modes; 0 skips.")] = 200,
    as_json: JsonOpt = False,
):
    """Layout found, classes, counts per split, image sizes and modes."""
    from pixelforge.data.inspect import describe_dataset
    from pixelforge.data.read import read_dataset

    manifest = read_dataset(source, layout=layout, **parse_options(option))
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
    for name in manifest.classes:
        table.add_row(name, *[f"{by_split[s][name]:,}" for s in by_split])
    table.add_row("[bold]total[/]", *[f"[bold]{sum(by_split[s].values()):,}[/]" for s in by_split])
    console.print(table)
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


if __name__ == "__main__":
    app()
