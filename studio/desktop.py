"""Desktop integration for the current user (Linux, freedesktop.org): the application entry,
its icon in every size, the file types it opens (checkpoints, recipes) and its AppStream
metainfo, under ``$XDG_DATA_HOME`` (``~/.local/share``).

``pruning-studio install-desktop`` writes them; ``--uninstall`` removes them. Like every
write of the studio it never replaces or removes a file the studio did not write: each file
it writes carries a marker, and a file in the way without it stops the install before
anything is written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from studio.core.errors import InputError

RESOURCES = Path(str(files("studio") / "resources"))
MARKER = b"pruning-studio install-desktop"  # in each file it writes (a key, a comment, PNG text)
APP_ID = "io.github.pruning_studio.PruningStudio"


@dataclass(frozen=True)
class Item:
    target: Path
    data: bytes


def data_home(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def launcher() -> str:
    """The command the entry runs: this installation's own script, so an entry installed
    from a virtual environment works without that environment on PATH."""
    here = Path(sys.executable).parent / "pruning-studio"
    if here.exists():
        return str(here)
    return shutil.which("pruning-studio") or "pruning-studio"


def _entry(command: str) -> bytes:
    text = (RESOURCES / "desktop" / "pruning-studio.desktop").read_text(encoding="utf-8")
    quoted = f'"{command}"' if " " in command else command
    lines = []
    for line in text.splitlines():
        if line.startswith("Exec="):
            line = f"Exec={quoted} gui %f"
        elif line.startswith("TryExec="):
            line = f"TryExec={command}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def items(home: Path, command: str) -> list[Item]:
    """Every file the install writes, with its bytes."""
    desk, icons = RESOURCES / "desktop", RESOURCES / "icons"
    out = [
        Item(home / "applications" / "pruning-studio.desktop", _entry(command)),
        Item(
            home / "mime" / "packages" / "pruning-studio.xml",
            (desk / "pruning-studio-mime.xml").read_bytes(),
        ),
        Item(
            home / "metainfo" / f"{APP_ID}.metainfo.xml",
            (desk / f"{APP_ID}.metainfo.xml").read_bytes(),
        ),
        Item(
            home / "icons" / "hicolor" / "scalable" / "apps" / "pruning-studio.svg",
            (icons / "pruning-studio.svg").read_bytes(),
        ),
    ]
    for png in sorted(icons.glob("pruning-studio-*.png")):
        n = png.stem.rsplit("-", 1)[1]
        out.append(
            Item(
                home / "icons" / "hicolor" / f"{n}x{n}" / "apps" / "pruning-studio.png",
                png.read_bytes(),
            )
        )
    return out


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_bytes()
    except OSError:
        return False


def _in_the_way(todo: list[Item]) -> list[Path]:
    return [
        it.target
        for it in todo
        if it.target.exists() or it.target.is_symlink()
        if not it.target.is_file() or it.target.is_symlink() or not _ours(it.target)
    ]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.pruning-studio.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new one


def _refresh(home: Path) -> list[str]:
    """Let the desktop see the change (each tool only when installed)."""
    ran = []
    for tool, arg in (
        ("update-mime-database", home / "mime"),
        ("update-desktop-database", home / "applications"),
        ("gtk-update-icon-cache", home / "icons" / "hicolor"),
    ):
        exe = shutil.which(tool)
        if exe and Path(arg).exists():
            extra = ["-f", "-t"] if tool == "gtk-update-icon-cache" else []
            subprocess.run([exe, *extra, str(arg)], capture_output=True, timeout=60)
            ran.append(tool)
    return ran


def install(
    home: Path | None = None, command: str | None = None, dry_run: bool = False
) -> list[Path]:
    """Write (or, with ``dry_run``, list) the desktop files; refuses in one line, before
    writing anything, when a file in the way was not written by the studio."""
    home = data_home() if home is None else home
    todo = items(home, command or launcher())
    blocked = _in_the_way(todo)
    if blocked:
        raise InputError(
            f"{blocked[0]} exists and was not written by the studio: move it away first "
            f"(nothing was installed)"
        )
    if not dry_run:
        for it in todo:
            _write(it.target, it.data)
        _refresh(home)
    return [it.target for it in todo]


def uninstall(home: Path | None = None) -> list[Path]:
    """Remove the files an install wrote; leaves any other file alone."""
    home = data_home() if home is None else home
    gone = []
    for it in items(home, "pruning-studio"):
        if it.target.is_file() and not it.target.is_symlink() and _ours(it.target):
            it.target.unlink()
            gone.append(it.target)
    _refresh(home)
    return gone
