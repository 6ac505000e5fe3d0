"""``pruning-studio gui``: start the window (it paints first, then loads in the background).
``--screenshot FILE.png`` loads, renders every panel, saves the window and exits."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pruning-studio gui", description="Open the studio window.")
    ap.add_argument("model", nargs="?", default="demo", help="model to open (default: demo)")
    ap.add_argument("--arch", help="architecture of a state_dict checkpoint")
    ap.add_argument("--input-size", metavar="C,H,W")
    ap.add_argument("--data", help="data source for evaluation, data criteria, fine-tuning")
    ap.add_argument("--screenshot", metavar="FILE.png", help="save a PNG of the window, exit")
    ap.add_argument("--flops-target", type=float, help="auto-select to this FLOPs share first")
    ap.add_argument("--focus", help="group to focus (for screenshots)")
    ap.add_argument("--tour", action="store_true", help=argparse.SUPPRESS)  # docs screenshots
    ap.add_argument("--show", default="widths", help=argparse.SUPPRESS)  # bottom tab to raise
    ap.add_argument("--pipeline", help=argparse.SUPPRESS)  # docs: run this pipeline first
    ap.add_argument("--no-restore", action="store_true", help="ignore a recovery file")
    ap.add_argument("--debug", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING)
    if a.screenshot:
        import tempfile

        # A fresh, throw-away settings/recovery home: screenshots show the default layout.
        os.environ["PRUNING_STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-shot-")
        if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Pruning Studio")
    app.setOrganizationName("PruningStudio")
    from studio.gui.mainwindow import MainWindow

    win = MainWindow()
    app.aboutToQuit.connect(win.jobs.wait_all)
    win.session.data_spec = a.data
    req = {"spec": a.model, "arch": a.arch, "input_size": a.input_size}
    if a.screenshot:
        return _screenshot(app, win, req, a)
    win.show()
    recovery = win.recovery_file()
    if recovery.exists() and not a.no_restore:
        try:
            snap = json.loads(recovery.read_text())
        except (OSError, json.JSONDecodeError):
            snap = None
        if snap and QMessageBox.question(
                win, "Restore session?", "Pruning Studio did not close cleanly last time. "
                "Restore the model and the plan you were editing?") == QMessageBox.Yes:
            QTimer.singleShot(0, lambda: win.restore(snap))
            return app.exec()
    QTimer.singleShot(0, lambda: win.load(req))  # paint first, then load
    return app.exec()


def _screenshot(app, win, req, a) -> int:
    """Load synchronously (same core calls as the worker), render, grab, exit."""
    from studio.core import jobs
    from studio.core.jobs import CancelToken
    from studio.gui.mainwindow import load_job

    win.resize(1600, 1000)
    win.show()
    app.processEvents()
    lm, s, scores = jobs.run(load_job(req, trust=False)(CancelToken()))
    win.session.set_model(lm, s, scores)
    if a.flops_target:
        win.autoselect.slider.setValue(int(round(a.flops_target * 100)))
        win.autoselect.run(merge=False)
    if a.tour:  # the real jobs, as a user would run them: prune, fine-tune, evaluate, time
        import time

        from studio.core.train.finetune import FinetuneConfig

        def wait(job):
            while job is not None and win.jobs.busy():
                app.processEvents()
                time.sleep(0.01)

        win.session.data_spec = win.session.data_spec or "demo"
        wait(win.apply_plan() or win._current_job)
        wait(win.finetune(FinetuneConfig(epochs=5, log_every=2, kd_weight=0.5)))
        wait(win.evaluate() or win._current_job)
        wait(win.measure_latency() or win._current_job)
        win.autoselect.slider.setValue(60)
        win.autoselect.run(merge=False)
    if a.pipeline:
        import time

        win.session.data_spec = win.session.data_spec or "demo"
        cfg = win.pipeline.config()
        cfg.pipeline, cfg.candidates, cfg.generations = a.pipeline, 8, 3
        cfg.finetune.epochs = 3
        i = win.pipeline.mode.findData(a.pipeline)
        win.pipeline.mode.setCurrentIndex(i)
        job = win.run_pipeline(cfg)
        while job is not None and win.jobs.busy():
            app.processEvents()
            time.sleep(0.01)
    if a.focus:
        win.session.set_focus(a.focus)
    if a.show in win.docks:
        win.docks[a.show].raise_()
    for _ in range(5):
        app.processEvents()
    win.grab().save(a.screenshot)
    print(f"wrote {a.screenshot}")
    win.close()
    return 0
