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
    spec = data.get("preprocess") or {}
    if spec.get("size"):
        options["size"] = "x".join(str(v) for v in spec["size"])
    if spec.get("channels"):
        options["channels"] = spec["channels"]
    return {"model": arch.get("name"), "params": arch.get("params") or {}, "options": options,
            "augment": data.get("augment")}


def wild_evaluate(saved_model, data, run, source, *, wild_dir=None, severities=None, corruptions=None,
                  limit=2000, threshold=0.05, seed=0, out_dir=None, reference=None) -> dict:
    """Run the suite for ``pixelforge evaluate --wild`` and write its files into ``out_dir``.

    ``data`` is the Manifest being evaluated; ``severities``/``corruptions`` are the CLI strings.
    With ``wild_dir``, the report also says how those images differ from the training data
    (``shift``: ``diagnose.diagnose_shift`` against ``reference``'s train split, else ``data``).
    Returns the suite report with ``files`` (paths written) and ``train_command`` (retrain with the
    recommendations) added.
    """
    from pixelforge.robustness.recommend import merged_augment, soften, train_command
    from pixelforge.robustness.report import write_report
    from pixelforge.robustness.suite import iterate_test_batches, run_wild_suite

    report = run_wild_suite(saved_model, data, corruptions=parse_corruptions(corruptions),
                            severities=parse_severities(severities), seed=seed, limit=limit or None,
                            threshold=threshold, wild_dir=wild_dir)
    report["model"] = str(run)
    info = run_info(run)
    if report["recommendations"]:
        name = Path(str(run).rstrip("/"))
        name = name.parent if name.suffix == ".json" else name
        params = "".join(f" --param {k}={_param_text(v)}" for k, v in (info.get("params") or {}).items())
        augment = merged_augment(report["recommendations"])
        for key, strength, suffix in (("train_command", 1.0, "-robust"), ("train_command_gentle", 0.25, "-gentle")):
            report[key] = train_command(str(source), info.get("model"), str(name.with_name(name.name + suffix)),
                                        soften(augment, strength) if strength != 1 else augment,
                                        info.get("options")) + params
    examples: dict = {}
    if wild_dir is not None:
        from pixelforge.robustness.diagnose import diagnose_shift

        report["shift"] = diagnose_shift(data if reference is None else reference, wild_dir, saved_model.preprocess,
                                         limit=limit or None, seed=seed, examples=8, examples_out=examples)
    out = Path(out_dir) if out_dir else Path(run) / "wild"
    first = next(iterate_test_batches(saved_model, data, limit=1, seed=seed), None)
    report["files"] = write_report(report, out, saved_model=saved_model,
                                   example=None if first is None else first[0][0], shift_examples=examples)
    return report


def _param_text(value) -> str:
    import shlex

    if isinstance(value, list | tuple):  # the zoo reads lists as "16,32"
        return shlex.quote(",".join(str(v) for v in value))
    return shlex.quote(str(value))
