"""What the window needs from the system, checked before Qt starts.

Qt's own failures are an abort with a message naming one library (the xcb platform plugin
needs several) or, for a known-bad binding release, a crash minutes into a session. Each
check here returns one line that says what is wrong and the command that fixes it, or None.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Libraries whose Debian/Ubuntu package name does not follow the soname rule below.
_PACKAGES = {"libGL.so.1": "libgl1", "libEGL.so.1": "libegl1", "libOpenGL.so.0": "libopengl0"}


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships a library: libxcb-cursor.so.0 -> libxcb-cursor0,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0 (a dash when the name ends in a digit)."""
    if soname in _PACKAGES:
        return _PACKAGES[soname]
    m = re.match(r"(lib[\w.+-]*?)\.so\.(\d+)", soname)
    if not m:
        return soname
    name, major = m.group(1).lower(), m.group(2)
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def missing_libraries(ldd_output: str) -> list[str]:
    """Library names `ldd` reports as 'not found', in order, without repeats."""
    seen: list[str] = []
    for line in ldd_output.splitlines():
        m = re.match(r"\s*(\S+)\s*=>\s*not found", line)
        if m and m.group(1) not in seen:
            seen.append(m.group(1))
    return seen


def _xcb_plugin() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    root = Path(PySide6.__file__).parent
    for candidate in (root / "Qt" / "plugins" / "platforms", root / "plugins" / "platforms"):
        plugin = candidate / "libqxcb.so"
        if plugin.exists():
            return plugin
    return None


def platform_problem(env: dict | None = None) -> str | None:
    """On Linux with an X display, the libraries Qt's xcb plugin cannot find, as one line
    with the `apt-get install` that fixes them. None when nothing is missing (or the window
    will not use the xcb plugin)."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return None
    if not env.get("DISPLAY"):
        if env.get("WAYLAND_DISPLAY"):
            return None
        return (
            "no display to open the window on (DISPLAY is not set): run it on a desktop, "
            "under xvfb-run, or with QT_QPA_PLATFORM=offscreen for --screenshot"
        )
    plugin, ldd = _xcb_plugin(), shutil.which("ldd")
    if plugin is None or ldd is None:
        return None
    try:
        out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    missing = missing_libraries(out.stdout)
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
    return (
        f"the window cannot start: Qt's X11 plugin needs {', '.join(missing)}; "
        f"install them with: sudo apt-get install {packages}"
    )


def prefer_utf8_locale(env: dict | None = None) -> None:
    """Under a "C"/POSIX or unset locale (a clean environment, a bundle started by `env -i`)
    Qt switches to C.UTF-8 itself, after four lines on stderr; choose it quietly instead."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return
    ctype = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "C"
    if ctype in ("C", "POSIX"):
        env["LC_ALL"] = "C.UTF-8"


def binding_leaks_none() -> bool:
    """True when the Qt binding drops a reference to None on each call of a method that
    returns nothing (PySide6 6.12.0 under Python 3.11). None is immortal from 3.12 on."""
    if sys.version_info >= (3, 12):
        return False
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - 32


def binding_problem() -> str | None:
    """One line about a known-bad binding, after making it harmless for this process: None's
    reference count is raised far beyond what any session can drop, as Python 3.12 does by
    making None immortal. The line says how to install a good release."""
    if not binding_leaks_none():
        return None
    import PySide6

    ctypes.c_ssize_t.from_address(id(None)).value += 1 << 40
    return (
        f"warning: PySide6 {PySide6.__version__} drops a reference to None on every call under "
        f"Python {sys.version_info.major}.{sys.version_info.minor}; worked around for this "
        f"session. Install another release: pip install 'PySide6-Essentials!={PySide6.__version__}'"
    )
