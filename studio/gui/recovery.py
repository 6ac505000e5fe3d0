"""Crash recovery: what the user had is restored exactly -- the original model (reloaded
from its request), the working model after pruning and fine-tuning (a studio folder saved
after every change, in a job), the steps taken and the plan being edited.

The recovery file lives in the settings folder (``studio_home``); a clean exit removes it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QTimer, Signal

from studio.core import verbs
from studio.core.io import atomic_write_text
from studio.core.jobs import progress

log = logging.getLogger(__name__)


def studio_home() -> Path:
    """Where settings-side files (recovery, crash log) live; PRUNING_STUDIO_HOME overrides."""
    env = os.environ.get("PRUNING_STUDIO_HOME")
    base = (
        Path(env)
        if env
        else Path(
            QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)
            or Path.home() / ".pruning-studio"
        )
    )
    base.mkdir(parents=True, exist_ok=True)
    return base


def _save_working(lm, folder: str, cancel=None):
    yield progress(0, 1, "saving a recovery copy")
    return verbs.save(folder, lm, report={"recovery": True})


def _restore(snap: dict, folder: str | None, trust: bool, cancel=None):
    """Open the original, then (if the session had pruned or fine-tuned) the working model
    from the recovery folder. Returns (original Opened, working Opened or None)."""
    from studio.core.model.request import ModelRequest

    req = ModelRequest.from_record(snap["original"], "recovery file", trust=trust)
    original = yield from verbs.open_model(req, cancel)
    working = None
    if folder:
        working = yield from verbs.open_model(
            ModelRequest(spec=folder, trust=trust, from_file=True), cancel
        )
        working.lm.folder = None  # it lives in the settings folder: not the user's file
    return original, working


class Recovery(QObject):
    restored = Signal()

    def __init__(self, session, actions, parent=None):
        super().__init__(parent)
        self.session, self.actions = session, actions
        self.home = studio_home()
        self.file = self.home / "recovery.json"
        self.folder = self.home / "recovery-model"
        self._timer = QTimer(self, singleShot=True, interval=1500)
        self._timer.timeout.connect(self.write)
        self._saved_lm = None
        session.planChanged.connect(self._timer.start)
        session.historyChanged.connect(self._model_changed)

    def _model_changed(self) -> None:
        s = self.session
        if s.pruned and s.lm is not self._saved_lm:
            lm = s.lm

            def done(_out, lm=lm):
                self._saved_lm = lm
                self.write()

            self.actions._start(
                "recovery copy", _save_working, lm, str(self.folder), on_done=done, mutates=False
            )
        self._timer.start()

    def write(self) -> None:
        s = self.session
        if not s.loaded:
            return
        snap = s.snapshot()
        if snap["original"] is None:
            return
        snap["folder"] = str(self.folder) if s.pruned and self._saved_lm is s.lm else None
        try:
            atomic_write_text(self.file, json.dumps(snap))
        except Exception as e:  # noqa: BLE001 - recovery must never stop the window
            log.warning("recovery file not written: %s", e)

    def pending(self) -> dict | None:
        """The snapshot a crash left, if any (unreadable ones are ignored)."""
        try:
            snap = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return None
        return snap if isinstance(snap, dict) and isinstance(snap.get("original"), dict) else None

    def restore(self, snap: dict, trust: bool = False):
        folder = snap.get("folder")
        if folder and not (Path(folder) / "model.json").is_file():
            folder = None
        s = self.session

        def done(res):
            original, working = res
            s.set_data(snap.get("data"))
            s.set_model(original.lm, original.structure, original.scores)
            if working is not None:
                s.steps = list(snap.get("steps") or [])
                s.adopt(working.lm, working.structure, "restored", None, working.scores)
                s.history = list(snap.get("history") or s.history)
                s.historyChanged.emit()
                self._saved_lm = working.lm
            self._restore_plan(snap.get("plan"))
            self.restored.emit()
            self.actions.message.emit("restored the last session", 6000)

        from studio.core.errors import UntrustedFile

        def failed(msg, details, exc):
            if isinstance(exc, UntrustedFile) and not trust:
                self.actions.trustNeeded.emit(("restore", snap), exc)
            else:
                self.actions.failed.emit("Cannot restore the last session", msg, details, exc)

        return self.actions._start(
            "restore session", _restore, snap, folder, trust, on_done=done, on_failed=failed
        )

    def _restore_plan(self, pd) -> None:
        from studio.core.plan.plan import Plan

        if not pd:
            return
        try:
            plan = Plan.from_dict(pd, "recovery file")
            if plan.fingerprint == self.session.structure.fingerprint:
                self.session.replace_plan(plan, "restored plan")
        except Exception as e:  # noqa: BLE001 - a stale file must not stop the window
            log.warning("recovery plan not restored: %s", e)

    def clear(self) -> None:
        self.file.unlink(missing_ok=True)
