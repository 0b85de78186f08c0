"""What `pixelforge evaluate RUN SOURCE --wild` runs: the suite, its files, the console table and the
retrain command (kept here so that the evaluate command only hands its options over)."""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError


def parse_severities(text: str | None) -> list[int] | None:
    """'1,3,5' or '1-5' → [1, 3, 5] / [1, 2, 3, 4, 5]; None → every severity."""
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                out += list(range(lo, hi + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise PixelforgeError(f"--severities expects numbers like 1,3,5 or 1-5, got {text!r}") from None
    if not out or min(out) < 1:
        raise PixelforgeError(f"--severities must be 1 or more, got {text!r}")
    return sorted(set(out))


def parse_corruptions(text: str | None) -> list[str] | None:
    from pixelforge.robustness.corruptions import get_corruption

    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        get_corruption(name)  # raises with the list of valid names
    return names


def run_info(run) -> dict:
    """Model name and training options recorded in a run's model.json (for the retrain command)."""
    import json

    path = Path(run)
    path = path / "model.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    arch = data.get("architecture") or {}
    train = data.get("training") or {}
    options = {k: train.get(k) for k in ("epochs", "batch_size", "seed") if train.get(k) is not None}
    optimizer = train.get("optimizer")
    if isinstance(optimizer, dict) and optimizer.get("name"):
        options["optimizer"] = optimizer["name"]
    return {"model": arch.get("name"), "params": arch.get("params") or {}, "options": options,
            "augment": data.get("augment")}


def wild_evaluate(run, source, *, wild_dir=None, severities=None, corruptions=None, limit=2000,
                  threshold=0.05, seed=0, out=None, layout="auto", reader_options=None):
    """Load the run's model and data, run the suite, write its files; returns (report, paths)."""
    from pixelforge.data.read import read_dataset
    from pixelforge.robustness.recommend import merged_augment, train_command
    from pixelforge.robustness.report import write_report
    from pixelforge.robustness.suite import iterate_test_batches, run_wild_suite
    from pixelforge.train import load_model

    saved = load_model(run)
    data = read_dataset(source, layout=layout, **(reader_options or {}))
    report = run_wild_suite(saved, data, corruptions=parse_corruptions(corruptions),
                            severities=parse_severities(severities), seed=seed, limit=limit or None,
                            threshold=threshold, wild_dir=wild_dir)
    report["model"] = str(run)
    info = run_info(run)
    if report["recommendations"]:
        augment = merged_augment(report["recommendations"])
        out_run = str(Path(str(run).rstrip("/")).with_name(Path(str(run).rstrip("/")).name + "-robust"))
        report["train_command"] = train_command(str(source), info.get("model"), out_run, augment,
                                                info.get("options"))
    out_dir = Path(out) if out else (Path(run) if Path(run).is_dir() else Path(run).parent) / "wild"
    example = next(iterate_test_batches(saved, data, limit=1, seed=seed), (None,))[0]
    paths = write_report(report, out_dir, saved_model=saved, example=None if example is None else example[0])
    return report, paths
