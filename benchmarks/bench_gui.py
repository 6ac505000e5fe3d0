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
    save("gui", {**res, **machine()})


if __name__ == "__main__":
    main()
