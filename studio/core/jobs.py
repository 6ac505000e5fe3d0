"""Long work is a generator of progress events that checks a cancel token between steps.

The CLI drives a generator with a progress bar, the GUI in a thread worker; both get the
generator's return value as the result. Events are plain dicts with a ``"type"`` key:
``progress`` (``step``, ``total``, ``what``), ``step`` (training step: ``loss``, ``lr`` …),
``epoch`` (epoch metrics), ``log`` (``message``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

Events = Generator[dict, None, Any]


class Cancelled(Exception):
    """Raised by ``CancelToken.check`` once the user asked to stop."""


class CancelToken:
    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def run(gen: Events, on_event: Callable[[dict], None] | None = None):
    """Drive a job generator to its end; returns the generator's return value."""
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(ev)


def progress(step: int, total: int, what: str, **extra) -> dict:
    return {"type": "progress", "step": step, "total": total, "what": what, **extra}
