"""Long work is a generator of progress events that checks a cancel token between steps.

The CLI drives a generator with a progress bar, the window in a thread worker; both get the
generator's return value as the result. Events are typed records (``TypedDict``: plain
dicts, so they also go straight into ``metrics.jsonl``), told apart by their ``type``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any, Literal, TypedDict


class Progress(TypedDict):
    type: Literal["progress"]
    step: int
    total: int
    what: str


class TrainStep(TypedDict):
    type: Literal["step"]
    step: int
    total: int
    epoch: int
    loss: float
    lr: float


class EpochEnd(TypedDict):
    type: Literal["epoch"]
    epoch: int
    epochs: int
    step: int
    train_loss: float
    train_top1: float
    val_top1: float
    val_top5: float
    val_loss: float
    lr: float
    images_per_s: float
    seconds: float


class Round(TypedDict, total=False):
    type: Literal["round"]
    round: int
    rounds: int
    flops: int
    params: int
    val_top1: float
    epochs: int
    base_flops: int


class Candidate(TypedDict, total=False):
    type: Literal["candidate"]
    total: int
    base_flops: int
    flops: int
    heldout_top1: float
    index: int
    generation: int


class Curve(TypedDict):
    type: Literal["curve"]
    group: str
    ratios: list[float]
    top1: list[float]
    base: float


class Log(TypedDict):
    type: Literal["log"]
    message: str


Event = Progress | TrainStep | EpochEnd | Round | Candidate | Curve | Log
Events = Generator[Event, None, Any]


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


def check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.check()


def run(gen: Events, on_event: Callable[[Event], None] | None = None):
    """Drive a job generator to its end; returns the generator's return value."""
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(ev)


def record(gen: Events, into: list, types=("step", "epoch")) -> Events:
    """Pass ``gen``'s events on, keeping those of ``types`` in ``into`` (a metrics log)."""
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        if ev.get("type") in types:
            into.append(ev)
        yield ev


def progress(step: int, total: int, what: str) -> Progress:
    return {"type": "progress", "step": step, "total": total, "what": what}


def log(message: str) -> Log:
    return {"type": "log", "message": message}
