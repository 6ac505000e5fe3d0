"""Background jobs: a core verb (a generator) in a superqt thread worker, with progress,
pause, cancel and errors that reach the GUI thread. Only one job that changes the model runs
at a time.

A job gets plain data when it starts (a request, a plan, a config, models that nobody
mutates) and hands its result back by signal; it never touches a Qt object or the session.

Threads and OpenMP: every thread that runs parallel torch ops owns a GNU OpenMP team for as
long as it lives, and once a process holds more team threads than cores, libgomp stops
spin-waiting and small ops pay a wake-up each (measured: training the demo at 0.45x).
So a job's thread exits when the job ends (pool expiry 0) and the GUI thread never runs
torch work; each job uses PyTorch's default thread count (``worker_threads``).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

import torch
from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

from studio.core.jobs import Cancelled, CancelToken

log = logging.getLogger(__name__)


_DEFAULT_THREADS = torch.get_num_threads()  # before anything in this process changes it


def release_memory() -> None:
    """Hand memory that a finished job freed back to the OS. glibc keeps freed blocks in
    its heaps, so a scoring pass's activations would stay in the window's resident size
    and the next job's peak would stack on them. No-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def worker_threads() -> int:
    """CPU threads for a job's torch work: PyTorch's default (one per physical core), as a
    plain PyTorch script would use; PRUNING_STUDIO_THREADS overrides. Leaving the GUI
    thread a core of its own would halve training on a 2-core machine and buys nothing:
    the event loop needs little CPU (docs/benchmarks.md, event-loop lag)."""
    env = os.environ.get("PRUNING_STUDIO_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else _DEFAULT_THREADS


class JobFailure(Exception):
    """A RuntimeError raised inside a job, re-raised as a plain Exception: superqt treats a
    RuntimeError as "the worker was deleted" and would swallow it."""


class Job(QObject):
    progress = Signal(str, int, int)  # what, step, total
    event = Signal(dict)  # every event the generator yields
    finished = Signal(object)  # the generator's return value
    failed = Signal(str, str, object)  # one-line message, details, the exception
    cancelled = Signal()
    done = Signal()  # after finished/failed/cancelled

    def __init__(self, name: str, verb, args: tuple, kwargs: dict, mutates: bool, parent=None):
        super().__init__(parent)
        self.name, self.mutates = name, mutates
        self.token = CancelToken()
        self.result = None
        self.error: BaseException | None = None
        self._call = (verb, args, kwargs)
        self.worker = None
        self._running = False  # from start() until done: the thread may not have begun yet

    def start(self) -> None:
        verb, args, kwargs = self._call
        token = self.token

        def body():  # runs in the worker thread: plain data in, plain data out
            torch.set_num_threads(worker_threads())
            try:
                return (yield from verb(*args, cancel=token, **kwargs))
            except RuntimeError as e:
                raise JobFailure(str(e)) from e
            finally:
                release_memory()

        # _ignore_errors: superqt would re-raise in the GUI thread; we show a dialog instead
        self.worker = create_worker(body, _start_thread=False, _ignore_errors=True)
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_return)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._finished)
        self._running = True
        self.worker.start()

    def _finished(self) -> None:
        self._running = False
        self.done.emit()

    def cancel(self) -> None:
        self.token.cancel()
        self.set_paused(False)

    def set_paused(self, paused: bool) -> None:
        """superqt's generator workers pause between two yields."""
        if self.worker is None:
            return
        if paused and not self.worker.is_paused:
            self.worker.pause()
        elif not paused and self.worker.is_paused:
            self.worker.resume()

    def _on_event(self, ev) -> None:
        if isinstance(ev, dict):
            if ev.get("type") in ("progress", "step"):
                self.progress.emit(
                    ev.get("what", self.name), int(ev.get("step", 0)), int(ev.get("total") or 0)
                )
            self.event.emit(ev)

    def _on_return(self, value) -> None:
        self.result = value
        self.finished.emit(value)

    def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, Cancelled):
            self.cancelled.emit()
            return
        if isinstance(exc, JobFailure) and exc.__cause__ is not None:
            exc = exc.__cause__
        self.error = exc
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.debug("job %s failed: %s", self.name, details)
        self.failed.emit(error_text(exc), details, exc)

    def is_running(self) -> bool:
        return self._running


# What the window offers for an error's ``fix`` (the command line names its flags instead).
WINDOW_FIXES = {
    "arch": "choose its architecture in File ▸ Open model… (Architecture, for a state_dict)",
    "input_size": "set the input size in File ▸ Open model…",
    "code_root": "start the window with --code-root DIR, the folder of the model's code",
}


def error_text(exc: BaseException) -> str:
    """One line for the user: a studio error's own words, else what happened."""
    from studio.core.errors import StudioError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, StudioError):
        hint = WINDOW_FIXES.get(getattr(exc, "fix", None) or "")
        return (text or type(exc).__name__) + (f" -- {hint}" if hint else "")
    if isinstance(exc, MemoryError):
        return "out of memory: the model or the batch is too large for this machine"
    if isinstance(exc, OSError):
        from studio.core.io import os_error

        return str(os_error(exc, getattr(exc, "filename", None) or "a file", "use"))
    return (
        f"internal error ({type(exc).__name__}{': ' + text[:200] if text else ''}); the "
        f"details below help a bug report"
    )


class JobManager(QObject):
    """Starts jobs, keeps one model-changing job at a time, and waits for all on quit."""

    started = Signal(object)
    ended = Signal(object)
    busyChanged = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.jobs: list[Job] = []
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().setExpiryTimeout(0)  # module docstring: OpenMP teams

    def mutating(self) -> Job | None:
        return next((j for j in self.jobs if j.mutates and j.is_running()), None)

    def busy(self) -> bool:
        return any(j.is_running() for j in self.jobs)

    def start(self, name: str, verb, *args, mutates: bool = True, **kwargs) -> Job | None:
        """Run ``verb(*args, cancel=token, **kwargs)`` (a generator) in a thread; None if a
        model-changing job is running already."""
        if mutates and self.mutating() is not None:
            return None
        job = Job(name, verb, args, kwargs, mutates, self)
        self.jobs.append(job)
        job.done.connect(lambda j=job: self._ended(j))
        self.started.emit(job)
        self.busyChanged.emit(True)
        job.start()
        return job

    def _ended(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self.ended.emit(job)
        self.busyChanged.emit(self.busy())

    def cancel_all(self) -> None:
        for j in list(self.jobs):
            j.cancel()

    def wait_all(self, timeout_ms: int = 30000) -> None:
        """Cancel every job and wait for its thread (connected to ``aboutToQuit``)."""
        from PySide6.QtCore import QCoreApplication, QThreadPool

        self.cancel_all()
        QThreadPool.globalInstance().waitForDone(timeout_ms)
        QCoreApplication.processEvents()  # deliver the workers' last (queued) signals
