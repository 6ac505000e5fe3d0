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


class Prefetch:
    """A job started before anything can watch it -- opening the model named on the command
    line while Qt and the window are still loading. Its events are kept; ``follow`` replays
    them as they come and returns the job's result (or raises its error), so a window job
    that follows it sees what a fresh job would. Plain Python: no Qt object is touched.

    ``start`` takes ``module:function`` so the import of the job's module (torch) runs in
    the prefetch thread too, beside the caller's imports.
    """

    def __init__(self, target: str, *args, **kwargs):
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._cancel = CancelToken()
        self._thread = threading.Thread(
            target=self._run, args=(target, args, kwargs), name="prefetch", daemon=True
        )
        self._thread.start()

    def _run(self, target: str, args, kwargs) -> None:
        try:
            import importlib

            module, _, name = target.partition(":")
            fn = getattr(importlib.import_module(module), name)
            gen = fn(*args, cancel=self._cancel, **kwargs)
            while True:
                try:
                    ev = next(gen)
                except StopIteration as stop:
                    self._value = stop.value
                    break
                with self._cond:
                    self._events.append(ev)
                    self._cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - handed to whoever follows
            self._error = e
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def cancel(self) -> None:
        self._cancel.cancel()

    def follow(self, cancel: CancelToken | None = None) -> Events:
        """The job's events (those already past first), then its result."""
        seen = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda n=seen: self._done or len(self._events) > n, timeout=0.1)
                new, done = self._events[seen:], self._done
            seen += len(new)
            yield from new
            if cancel is not None and cancel.cancelled:
                self._cancel.cancel()
                cancel.check()
            if done and seen == len(self._events):
                if self._error is not None:
                    raise self._error
                return self._value
