"""Recent models: the requests the user opened, newest first, one entry per model, stored
in QSettings as one JSON string. Internal files (the recovery copy) are never listed, and
anything unreadable in the settings is skipped, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings

from studio.core.model.request import ModelRequest

KEY = "recent"
MAX = 10


def _key(rec: dict) -> tuple:
    return (rec.get("spec"), rec.get("arch"), rec.get("weights"))


def load(settings: QSettings, home: Path | None = None) -> list[dict]:
    raw = settings.value(KEY)
    try:
        items = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        items = []
    out, seen = [], set()
    for r in items if isinstance(items, list) else []:
        if not isinstance(r, dict) or not isinstance(r.get("spec"), str):
            continue
        if home is not None and str(Path(r["spec"])).startswith(str(home)):
            continue
        if _key(r) in seen:
            continue
        seen.add(_key(r))
        out.append(r)
    return out[:MAX]


def remember(settings: QSettings, req: ModelRequest, home: Path | None = None) -> None:
    rec = req.record()
    if home is not None and str(Path(rec["spec"])).startswith(str(home)):
        return
    if Path(rec["spec"]).exists():
        rec["spec"] = str(Path(rec["spec"]).resolve())
    items = [r for r in load(settings, home) if _key(r) != _key(rec)]
    settings.setValue(KEY, json.dumps([rec] + items[: MAX - 1]))


def label(rec: dict) -> str:
    spec = rec["spec"]
    text = Path(spec).name if ("/" in spec or "\\" in spec) and ":" not in spec[2:] else spec
    if rec.get("pretrained"):
        text += " (pretrained)"
    if rec.get("weights"):
        text += f" + {Path(rec['weights']).name}"
    if rec.get("arch"):
        text += f" ({rec['arch']})"
    return text
