"""Data source names checked without reading any data or importing torch (the window
checks ``--data`` before its imports start)."""

from __future__ import annotations

from pathlib import Path


def spec_problem(spec: str) -> str | None:
    """Why ``spec`` cannot name a data source, judged without reading any data (None: it
    may). For a dialog to refuse a typo before every later job fails on it."""
    spec = str(spec).strip()
    if not spec:
        return "no data source given"
    name, _, n = spec.partition(":")
    if name in ("demo", "clutter"):
        return (
            None if spec == name or n.isdigit() else f"'{spec}': the other splits are {name}:1, ..."
        )
    if spec == "synthetic":
        return None
    if name in ("cifar10", "cifar100"):
        if not n:
            return f"'{spec}': give the folder of the data set, {name}:DIR"
        return None if Path(n).expanduser().is_dir() else f"{n} is not a folder"
    root = Path(spec).expanduser()
    if not root.exists():
        return (
            f"data source '{spec}' not found: give demo, clutter, synthetic, "
            f"cifar10:DIR, cifar100:DIR or an image folder"
        )
    if not root.is_dir():
        return f"{spec} is a file; an image data set is a folder of class subfolders"
    return None
