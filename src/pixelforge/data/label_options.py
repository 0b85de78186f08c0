"""Label options that work for every layout, applied by ``read_dataset`` after the layout's reader:

    label_map="t-shirt:top,shirt:top"     rename or merge classes (a dict, or "old:new,…")
    include_labels="cat,dog"              keep only these classes
    exclude_labels="Not sure,Skip"        drop these (junk labels such as "Skip", "Not sure")
    min_per_class=20                      drop classes with fewer images
    curation="curation.jsonl"             decisions made in ``pixelforge browse``: relabels, exclusions

``label_map`` is applied first; the other options see the mapped names; the curation file is applied
last (its labels are the names the browser showed, see ``pixelforge.browse.curation``). Dropped images are deliberate
exclusions, not read errors: they are counted per label in a note, not listed as skips. Class indices
are recomputed from the labels that remain.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from pixelforge.data.manifest import Manifest, class_order
from pixelforge.errors import LayoutError, ParameterError

LABEL_OPTIONS = ("exclude_labels", "include_labels", "min_per_class", "label_map", "curation")


def pop_label_options(options: dict) -> dict:
    """Take the label options out of a layout reader's options (so the reader never sees them); an
    option given as None is not given (the CLI passes ``curation=None`` without --curation)."""
    taken = {key: options.pop(key) for key in LABEL_OPTIONS if key in options}
    return {key: value for key, value in taken.items() if value is not None}


def parse_label_list(value, what: str) -> list[str] | None:
    """A list of class names from a list, or a comma-separated string (the CLI's ``-o key="a,b"``)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple | set) else [value]
    names = [str(v).strip() for v in items if str(v).strip()]
    if not names:
        raise ParameterError(f"{what}: no class names in {value!r}")
    return names


def parse_label_map(value) -> dict[str, str] | None:
    """``{"old": "new"}`` from a dict or an "old:new,old2:new" string."""
    if value is None:
        return None
    if isinstance(value, str):
        pairs = []
        for part in value.split(","):
            old, sep, new = part.partition(":")
            if not sep:
                raise ParameterError(f"label_map: expected old:new pairs separated by commas, got {part.strip()!r}")
            pairs.append((old, new))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise ParameterError(f"label_map must be a dict or an 'old:new,…' string, got {type(value).__name__}")
    mapping = {str(old).strip(): str(new).strip() for old, new in pairs}
    if not all(mapping) or not all(mapping.values()):
        raise ParameterError(f"label_map: class names may not be empty, got {value!r}")
    return mapping


def _counts(counter: Counter) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counter.most_common())


def apply_label_options(manifest: Manifest, *, exclude_labels=None, include_labels=None, min_per_class=None,
                        label_map=None, curation=None) -> Manifest:
    """The manifest with classes renamed / merged and unwanted classes dropped (see the module doc)."""
    if curation is not None:
        from pixelforge.browse.curation import apply_curation

        rest = {"exclude_labels": exclude_labels, "include_labels": include_labels, "min_per_class": min_per_class,
                "label_map": label_map}
        if any(v is not None for v in rest.values()):
            manifest = apply_label_options(manifest, **rest)
        return apply_curation(manifest, curation)
    mapping = parse_label_map(label_map)
    include = parse_label_list(include_labels, "include_labels")
    exclude = parse_label_list(exclude_labels, "exclude_labels")
    if min_per_class is not None:
        try:
            min_per_class = int(min_per_class)
        except (TypeError, ValueError):
            raise ParameterError(f"min_per_class must be a whole number of images, got {min_per_class!r}") from None
    notes = []
    labels = list(manifest.labels)
    if mapping:
        present = set(labels)
        labels = [mapping.get(label, label) for label in labels]
        used = [f"{old} → {new}" for old, new in mapping.items() if old in present]
        if used:
            notes.append(f"label_map renamed {', '.join(used)}")
        unused = [old for old in mapping if old not in present]
        if unused:
            notes.append(f"label_map names no image's label: {', '.join(unused)}")
    keep = [True] * len(labels)
    dropped: Counter = Counter()
    present = set(labels)
    for names, what in ((include, "include_labels"), (exclude, "exclude_labels")):
        if names and set(names) - present:
            notes.append(f"{what} names no image's label: {', '.join(n for n in names if n not in present)}")
    for i, label in enumerate(labels):
        if (include is not None and label not in include) or (exclude is not None and label in exclude):
            keep[i] = False
            dropped[label] += 1
    if dropped:
        notes.append(f"{sum(dropped.values()):,} image(s) left out by label ({_counts(dropped)})")
    if min_per_class is not None:
        counts = Counter(label for label, k in zip(labels, keep, strict=True) if k)
        small = Counter({name: n for name, n in counts.items() if n < min_per_class})
        if small:
            keep = [k and label not in small for label, k in zip(labels, keep, strict=True)]
            notes.append(f"min_per_class={min_per_class} dropped {len(small)} class(es) with fewer images: "
                         f"{_counts(small)}")
    rows = [i for i, k in enumerate(keep) if k]
    if not rows:
        raise LayoutError(f"{manifest.source or 'data'}: no images left after the label options; "
                          + "; ".join(notes))
    kept = [labels[i] for i in rows]
    part = manifest.subset(rows)
    return replace(part, labels=kept, classes=class_order(kept), skipped=list(manifest.skipped),
                   notes=list(manifest.notes) + notes)
