"""Window responsiveness, measured in one run (offscreen Qt):

1. Plan edit -> every view refreshed, ResNet-50 at 224x224 (goal <= 50 ms): one heatmap
   click through the undo stack, timed until all views have processed planChanged, next to
   the plain re-count of the plan (the part that is core work).
2. Event-loop lag while fine-tuning the demo on the CPU in the window's worker (goal p95 <=
   100 ms): a 20 ms timer measures how late it fires; baseline: the same timer with no job.
3. Cold start to first paint vs `python -c "import torch, torchvision"`.

(The window's fine-tuning speed against a bare PyTorch loop is in bench_finetune.py.)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["PRUNING_STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-bench-")

from common import ROOT, machine, save  # noqa: E402


def _wait(app, cond, timeout=300):
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError


def refresh_bench(app, MainWindow):
    from PySide6.QtCore import QPointF, Qt

    from studio.core import predict

    w = MainWindow()
    w.resize(1600, 1000)
    w.show()
    w.load({"spec": "resnet50"})
    _wait(app, lambda: w.session.loaded and not w.jobs.busy())
    app.processEvents()
    rows = len(w.heatmap.rows)
    times, recount = [], []
    for k in range(30):
        r = k % rows
        t0 = time.perf_counter()
        w.heatmap.clicked(QPointF(5.5 + k, r + 0.5), Qt.NoModifier)
        app.processEvents()  # every view's slot has run; repaint requests are queued
        times.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        predict(w.session.plan, w.session.structure)
        recount.append((time.perf_counter() - t0) * 1e3)
    # the slider: a whole-plan replacement (global selection + refresh)
    slider = []
    for v in (80, 70, 60, 50, 40):
        t0 = time.perf_counter()
        w.autoselect.slider.setValue(v)
        w.autoselect.run(merge=True)
        app.processEvents()
        slider.append((time.perf_counter() - t0) * 1e3)
    w.session.exported = True  # nothing to save: close without the question
    w.session.undo_stack.setClean()
    w.close()
    return {
        "edit_refresh_ms_median": statistics.median(times),
        "edit_refresh_ms_p95": sorted(times)[int(0.95 * (len(times) - 1))],
        "plan_recount_ms_median": statistics.median(recount),
        "slider_select_and_refresh_ms_median": statistics.median(slider),
        "groups": rows,
        "channels": sum(g.channels for g in w.session.structure.groups),
    }


def lag_bench(app, MainWindow):
    from PySide6.QtCore import QElapsedTimer, QTimer

    from studio.core.train.finetune import FinetuneConfig

    def measure(seconds, busy_fn=None):
        """Run the real event loop (as app.exec does) with a 20 ms timer in it."""
        from PySide6.QtCore import QEventLoop

        lags = []
        clock = QElapsedTimer()
        clock.start()
        last = [clock.elapsed()]
        loop = QEventLoop()
        timer = QTimer()
        timer.setInterval(20)

        def tick():
            now = clock.elapsed()
            lags.append(max(0, now - last[0] - 20))
            last[0] = now
            if now > seconds * 1000 or (busy_fn is not None and not busy_fn()):
                loop.quit()

        timer.timeout.connect(tick)
        timer.start()
        loop.exec()
        timer.stop()
        lags.sort()
        if not lags:
            return {"p50_ms": None, "p95_ms": None, "max_ms": None, "ticks": 0}
        return {
            "p50_ms": lags[len(lags) // 2],
            "p95_ms": lags[int(0.95 * (len(lags) - 1))],
            "max_ms": lags[-1],
            "ticks": len(lags),
        }

    w = MainWindow()
    w.resize(1600, 1000)
    w.show()
    w.load({"spec": "demo"})
    _wait(app, lambda: w.session.loaded and not w.jobs.busy())
    idle = measure(3)
    events = []
    job = w.finetune(FinetuneConfig(epochs=6, log_every=1))
    job.event.connect(events.append)
    t0 = time.perf_counter()
    busy = measure(60, busy_fn=w.jobs.busy)
    _wait(app, lambda: not w.jobs.busy())
    dt = time.perf_counter() - t0
    w.session.exported = True  # nothing to save: close without the question
    w.session.undo_stack.setClean()
    w.close()
    from studio.gui.jobs import worker_threads

    return {
        "idle": idle,
        "finetuning": busy,
        "epochs": sum(e["type"] == "epoch" for e in events),
        "seconds": dt,
        "worker_threads": worker_threads(),
    }


def cold_start():
    code_gui = (
        "import time,sys;t=time.perf_counter();"
        "from PySide6.QtWidgets import QApplication;app=QApplication([]);"
        "from studio.gui.mainwindow import MainWindow;w=MainWindow();w.show();"
        "app.processEvents();print(time.perf_counter()-t)"
    )
    code_torch = (
        "import time;t=time.perf_counter();import torch, torchvision;print(time.perf_counter()-t)"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    g, t = [], []
    for _ in range(3):
        g.append(
            float(
                subprocess.run(
                    [sys.executable, "-c", code_gui],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=ROOT,
                ).stdout.split()[-1]
            )
        )
        t.append(
            float(
                subprocess.run(
                    [sys.executable, "-c", code_torch], capture_output=True, text=True, env=env
                ).stdout.split()[-1]
            )
        )
    return {
        "first_paint_s": statistics.median(g),
        "import_torch_s": statistics.median(t),
        "ratio": statistics.median(g) / statistics.median(t),
    }


OPEN_CHILD = """
import os, sys
from PySide6 import QtWidgets
from PySide6.QtCore import QTimer
_exec = QtWidgets.QApplication.exec
def exec_(*_a):  # the window is shown: watch for the model, then report and leave
    def poll():
        for w in QtWidgets.QApplication.topLevelWidgets():
            s = getattr(w, "session", None)
            if s is not None and getattr(s, "lm", None) is not None:
                QtWidgets.QApplication.processEvents()  # the heatmap painted
                print("READY", flush=True)
                os._exit(0)
    t = QTimer(); t.timeout.connect(poll); t.start(5)
    QtWidgets.QApplication.instance()._bench_timer = t
    return _exec()
QtWidgets.QApplication.exec = exec_
from studio.cli import main
sys.exit(main(["gui", *sys.argv[1:], "--no-restore"]))
"""


def open_to_heatmap(arch: str = "resnet50", repeats: int = 5):
    """`pruning-studio gui resnet50` from process start until the window shows its
    heatmap (model loaded, mapped, L1-scored, painted), against `import torch,
    torchvision` in a fresh process, alternating; with the structure cache empty (first
    open of the architecture) and filled (every later open). Also timed: the same two
    imports as the studio makes them (torchvision without ``torch._dynamo``), to show how
    much of the margin that is."""
    import tempfile

    def wall(cmd, env) -> float:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT
        )
        for line in p.stdout:
            if line.startswith("READY"):
                break
        dt = time.perf_counter() - t0
        p.kill()
        p.wait()
        return dt

    import compileall

    # As installed from a wheel: the studio's modules compiled (this machine sets
    # PYTHONDONTWRITEBYTECODE, so a checkout would recompile ~0.4 s of them every start).
    compileall.compile_dir(str(ROOT / "studio"), quiet=1)
    base = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    warm_cache = tempfile.mkdtemp(prefix="bench-open-cache-")
    lazy_import = (
        "import torch; from studio.core.model.tv import torchvision; torchvision(); print('READY')"
    )
    imp, lazy, cold, warm = [], [], [], []
    for _ in range(repeats):
        imp.append(wall([sys.executable, "-c", "import torch, torchvision; print('READY')"], base))
        lazy.append(wall([sys.executable, "-c", lazy_import], base))
        env = dict(base, PRUNING_STUDIO_CACHE=tempfile.mkdtemp(prefix="bench-open-cold-"))
        cold.append(wall([sys.executable, "-c", OPEN_CHILD, arch], env))
        env = dict(base, PRUNING_STUDIO_CACHE=warm_cache)
        warm.append(wall([sys.executable, "-c", OPEN_CHILD, arch], env))
    m = statistics.median
    return {
        "arch": arch,
        "repeats": repeats,
        "import_torch_s": m(imp),
        # torchvision as the studio imports it (studio/core/model/tv.py: without dynamo)
        "import_torch_studio_s": m(lazy),
        "first_open_s": m(cold),
        "cached_open_s": m(warm[1:] or warm),  # the first warm run fills the cache
        "first_ratio": m(cold) / m(imp),
        "cached_ratio": m(warm[1:] or warm) / m(imp),
    }


def main():
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance() or QApplication([])
    from studio.gui.mainwindow import MainWindow

    res = {"refresh": refresh_bench(app, MainWindow)}
    print(res["refresh"], flush=True)
    res["lag"] = lag_bench(app, MainWindow)
    print(res["lag"], flush=True)
    res["cold_start"] = cold_start()
    print(res["cold_start"], flush=True)
    res["open_heatmap"] = open_to_heatmap()
    print(res["open_heatmap"], flush=True)
    save("gui", {**res, **machine()})


if __name__ == "__main__":
    main()
