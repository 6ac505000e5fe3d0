"""Where results go. The rule: writing a result never removes or changes a file the studio
did not write.

- A result folder (``prune --out``, ``finetune --out``, a recipe's ``outputs.dir``, the
  window's export) may be new, empty, or a folder the studio wrote earlier (its
  ``model.json`` says so and lists the files it wrote) holding nothing else; it may not be
  the input model, hold it, or lie inside the input's folder. Anything else is refused
  before any work starts.
- The new folder is written beside its final place (``.NAME.partial-PID-XXXX``) and swapped
  in by two renames, so the previous result stays until the new one is complete. A crash
  between the renames leaves ``.NAME.old-XXXX``: the next write (or read) restores it, or
  removes the studio's files from it once the new folder is complete. Stale partial folders
  of dead processes are removed.
- A result file (plan, scores, recipe, report, ONNX) may replace only a file the studio
  wrote (recognised by its contents), never the input.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from studio.core.errors import OutputError
from studio.core.io import DIR_MODE, os_error

STUDIO = "pruning-studio/"
MODEL_FORMAT = STUDIO + "model"
# What version-1 folders (no file list in model.json) could hold.
V1_FILES = {
    "model.json",
    "weights.pt",
    "plan.json",
    "report.json",
    "metrics.jsonl",
    "recipe.json",
    "pipeline.json",
}
PARTIAL = ".pruning-studio-partial"  # marks a folder being written


def _resolve(p: Path) -> Path:
    try:
        return Path(os.path.realpath(p))
    except OSError:
        return Path(os.path.abspath(p))


def _inside(p: Path, folder: Path) -> bool:
    return p == folder or folder in p.parents


def _examples(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def studio_files(folder: Path) -> set[str] | None:
    """The names the studio wrote into ``folder`` (from its model.json), or None when
    ``folder`` is not a folder written by the studio."""
    meta = Path(folder) / "model.json"
    try:
        if meta.is_symlink() or not meta.is_file() or meta.stat().st_size > 64 * 2**20:
            return None
        d = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("format") != MODEL_FORMAT:
        return None
    files = d.get("files")
    if isinstance(files, list) and all(
        isinstance(f, str) and "/" not in f and "\\" not in f and f not in ("", ".", "..")
        for f in files
    ):
        return set(files) | {"model.json"}
    return set(V1_FILES)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def recover(out: Path) -> None:
    """Finish what an interrupted write left beside ``out`` (see the module docstring)."""
    out = Path(os.path.abspath(out))
    parent = out.parent
    if not out.name or not parent.is_dir():
        return
    olds = [
        o
        for o in parent.glob(f".{out.name}.old*")
        if o.is_dir() and not o.is_symlink() and studio_files(o) is not None
    ]
    olds.sort(key=lambda o: o.stat().st_mtime, reverse=True)
    for old in olds:
        if not os.path.lexists(out):
            old.rename(out)  # the crash came between the two renames: the old one is back
        elif studio_files(out) is not None:
            _remove_studio_folder(old)  # the new one is complete
    for stale in parent.glob(f".{out.name}.partial-*"):
        try:
            pid = int(stale.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if stale.is_dir() and (stale / PARTIAL).exists() and not _pid_alive(pid):
            shutil.rmtree(stale, ignore_errors=True)  # the studio made it (the marker)


def _remove_studio_folder(folder: Path) -> None:
    """Delete only the files the studio wrote there; the folder goes only if then empty."""
    names = studio_files(folder) or set()
    for n in names:
        p = folder / n
        if p.is_file() or p.is_symlink():
            p.unlink()
    for p in folder.glob(".*.tmp"):  # our atomic-write leftovers
        p.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # something else is in it: it stays


def _parents_are_folders(path: Path) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"cannot write {path}: a part of the path ({parent}) is a file")
            return


def check_folder(out, inputs: Iterable = ()) -> None:
    """Refuse ``out`` as a result folder unless the module docstring's rule allows it.
    Messages name ``out`` as the user gave it."""
    out = Path(out)
    _parents_are_folders(out)
    recover(out)
    real = _resolve(out)
    for p in inputs:
        if p is None:
            continue
        pr = _resolve(Path(p))
        if real == pr:
            raise OutputError(
                f"{out} is the input model; choose another folder (the input is never overwritten)"
            )
        if _inside(pr, real):
            raise OutputError(
                f"{out} holds the input {p}; choose another folder (the input is never overwritten)"
            )
        if Path(p).is_dir() and _inside(real, pr):
            raise OutputError(
                f"{out} lies inside the input model's folder {p}; choose a folder outside it"
            )
    if out.is_symlink():
        raise OutputError(f"{out} is a symbolic link; give a plain folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out} exists and is a file, not a folder; choose another name")
    try:
        entries = sorted(e.name for e in out.iterdir())
    except OSError as e:
        raise os_error(e, out, "read") from None
    if not entries:
        return
    ours = studio_files(out)
    if ours is None:
        raise OutputError(
            f"{out} already exists and was not written by pruning-studio (it "
            f"holds {_examples(entries)}); choose a new folder -- the studio "
            f"never replaces files it did not write"
        )
    extra = [e for e in entries if e not in ours]
    if extra:
        raise OutputError(
            f"{out} holds files pruning-studio did not write "
            f"({_examples(extra)}); move them or choose a new folder -- the "
            f"studio never replaces files it did not write"
        )


def write_folder(out, write: Callable[[Path], None], inputs: Iterable = ()) -> Path:
    """Check ``out``, let ``write(tmp)`` fill a new folder beside it, then swap it in."""
    shown, out = Path(out), Path(os.path.abspath(out))
    inputs = list(inputs)
    check_folder(shown, inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
        os.mkdir(tmp, DIR_MODE)
    except OSError as e:
        raise os_error(e, out) from None
    try:
        (tmp / PARTIAL).touch()
        write(tmp)
        (tmp / PARTIAL).unlink()
        check_folder(shown, inputs)  # nothing changed there while we worked
        _swap(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise os_error(e, out) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap(tmp: Path, out: Path) -> None:
    if not out.exists():
        tmp.rename(out)
        return
    if not any(out.iterdir()):
        out.rmdir()
        tmp.rename(out)
        return
    old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
    out.rename(old)  # a crash from here ...
    tmp.rename(out)  # ... to here leaves .old, which recover() puts back
    _remove_studio_folder(old)


# -- single result files --------------------------------------------------------------------
def _written_by_studio(path: Path) -> bool:
    suffix = path.suffix.lower()
    try:
        if suffix in (".json", ".jsonl"):
            if path.stat().st_size > 256 * 2**20:
                return False
            d = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(d, dict) and str(d.get("format", "")).startswith(STUDIO)
        if suffix in (".html", ".htm"):
            with open(path, "rb") as f:
                head = f.read(4096)
            return b'name="generator" content="pruning-studio' in head
        if suffix in (".png", ".svg"):
            with open(path, "rb") as f:
                head = f.read(4096)
            return b"pruning-studio" in head
        if suffix == ".pdf":
            with open(path, "rb") as f:
                data = f.read(1 << 16)
            return b"Pruning Studio" in data
        if suffix == ".pt2":
            from studio.core.export.deploy import written_by_studio

            return written_by_studio(path)
        if suffix == ".onnx":
            import onnx

            m = onnx.load(str(path), load_external_data=False)
            return any(p.key == "pruning-studio" for p in m.metadata_props)
    except Exception:  # noqa: BLE001 - unreadable means: not ours
        return False
    return False


def check_file(path, inputs: Iterable = ()) -> None:
    """Refuse ``path`` as a result file unless it is new or a file the studio wrote."""
    path = Path(path)
    _parents_are_folders(path)
    real = _resolve(path)
    for p in inputs:
        if p is not None and _resolve(Path(p)) == real:
            raise OutputError(f"{path} is an input; choose another file name")
    if path.is_symlink():
        raise OutputError(f"{path} is a symbolic link; give a plain file name")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    if path.exists() and not _written_by_studio(path):
        raise OutputError(
            f"{path} exists and was not written by pruning-studio; choose "
            f"another name -- the studio never replaces files it did not write"
        )
