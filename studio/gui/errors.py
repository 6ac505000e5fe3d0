"""The window never dies of an error it can show: uncaught exceptions on the GUI thread
become a dialog (the window keeps running), and a hard crash leaves a traceback of every
thread in a crash log in the settings folder (faulthandler)."""

from __future__ import annotations

import faulthandler
import logging
import sys
import traceback
from pathlib import Path

log = logging.getLogger(__name__)
_crash_file = None


def enable_crash_log(home: Path) -> Path:
    global _crash_file
    path = home / "crash.log"
    _crash_file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process
    faulthandler.enable(file=_crash_file, all_threads=True)
    return path


def install_excepthook(window) -> None:
    """Uncaught exceptions (in slots, timers, event handlers) become a dialog."""
    from studio.gui import dialogs
    from studio.gui.jobs import error_text

    def hook(etype, value, tb):
        if issubclass(etype, KeyboardInterrupt):
            sys.__excepthook__(etype, value, tb)
            return
        details = "".join(traceback.format_exception(etype, value, tb))
        log.error("uncaught: %s", details)
        try:
            dialogs.error_box(window, "Something went wrong", error_text(value), details)
        except Exception:  # noqa: BLE001 - never raise from the hook
            sys.__excepthook__(etype, value, tb)

    sys.excepthook = hook
