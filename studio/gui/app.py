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
    ap.add_argument(
        "model",
        nargs="?",
        help="model to open: demo, an architecture, timm:NAME, FILE.py:NAME, a checkpoint "
        "or a folder (default: the start page; demo for --screenshot)",
    )
    ap.add_argument("--arch", help="architecture of a state_dict checkpoint")
    ap.add_argument("--weights", metavar="FILE", help="a state_dict for the architecture")
    ap.add_argument("--model-args", metavar="JSON", help="arguments of the model's class")
    ap.add_argument("--pretrained", action="store_true")
    ap.add_argument(
        "--trust",
        action="store_true",
        help="allow the model file to run code (pickles, code a folder names)",
    )
    ap.add_argument("--input-size", metavar="C,H,W or C,L")
    ap.add_argument(
        "--code-root",
        metavar="DIR",
        help="folder of the model's own code (a moved folder, a pickle of your classes)",
    )
    ap.add_argument("--data", help="data source for evaluation, data criteria, fine-tuning")
    ap.add_argument("--screenshot", metavar="FILE.png", help="save a PNG of the window, exit")
    ap.add_argument("--size", default="1600x1000", help="window size for --screenshot")
    ap.add_argument("--flops-target", type=float, help="auto-select to this FLOPs share first")
    ap.add_argument("--focus", help="group to focus (for screenshots)")
    ap.add_argument("--find", metavar="LAYER[:CH]", help="show this layer (and channel) first")
    ap.add_argument("--tour", action="store_true", help=argparse.SUPPRESS)  # docs screenshots
    ap.add_argument("--show", default="widths", help=argparse.SUPPRESS)  # bottom tab to raise
    ap.add_argument("--pipeline", help=argparse.SUPPRESS)  # docs: run this pipeline first
    ap.add_argument("--no-restore", action="store_true", help="ignore a recovery file")
    ap.add_argument("--debug", action="store_true")
    return ap


def _request(a):
    from studio.core.model.request import ModelRequest

    if a.model is None and not a.screenshot:
        return None
    args = json.loads(a.model_args) if a.model_args else {}
    return ModelRequest(
        spec=a.model or "demo",
        arch=a.arch,
        weights=a.weights,
        pretrained=a.pretrained,
        model_args=args,
        input_size=a.input_size,
        trust=a.trust,
        code_root=a.code_root,
    )


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING)
    if a.screenshot:
        import tempfile

        # A fresh, throw-away settings/recovery home: screenshots show the default layout.
        os.environ["PRUNING_STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-shot-")
        if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        req = _request(a)
    except ValueError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    if a.data:
        from studio.core.train.spec import spec_problem  # no torch: nothing waits on it

        problem = spec_problem(a.data)
        if problem:
            print(f"error: --data: {problem}", file=sys.stderr)
            return 2
    from studio.gui import system

    system.prefer_utf8_locale()
    problem = system.platform_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    warning = system.binding_problem()
    if warning:
        print(warning, file=sys.stderr)
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    prefetch = None
    if req is not None and not a.screenshot and not _from_file_manager(a):
        from studio.core.jobs import Prefetch

        # Import torch, load, map and score the model in a thread while the window is built;
        # the window's open job follows it. Started after Qt's own imports: what both
        # threads import later (torch, the studio's core) waits on Python's per-module
        # import locks, and no module of one imports the other's (no lock cycle).
        prefetch = Prefetch("studio.core.verbs:open_model", req)

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Pruning Studio")
    app.setDesktopFileName("pruning-studio")  # Wayland/X11 match the window to its entry
    app.setOrganizationName("PruningStudio")
    from studio.gui.errors import enable_crash_log, install_excepthook
    from studio.gui.mainwindow import MainWindow
    from studio.gui.recovery import studio_home

    enable_crash_log(studio_home())
    win = MainWindow()
    win.code_root = a.code_root
    install_excepthook(win)
    app.aboutToQuit.connect(win.jobs.wait_all)
    win.session.set_data(a.data)
    if a.screenshot:
        return _screenshot(app, win, req, a)
    win.show()
    snap = None if a.no_restore else win.recovery.pending()
    if (
        snap
        and QMessageBox.question(
            win,
            "Restore session?",
            "Pruning Studio did not close cleanly last time. "
            "Restore the models and the plan you were working on?",
        )
        == QMessageBox.Yes
    ):
        if prefetch is not None:
            prefetch.cancel()
        QTimer.singleShot(0, lambda: win.recovery.restore(snap))
        return app.exec()
    win.recovery.clear()
    if req is not None and _from_file_manager(a):
        QTimer.singleShot(0, lambda: win.open_path(a.model))  # as a drop: recipes, .py, …
    elif req is not None:
        QTimer.singleShot(0, lambda: win.load(req, prefetch))  # paint first, then show it
    else:
        win._model_changed()  # the start page
    return app.exec()


def _from_file_manager(a) -> bool:
    """A bare existing path (what a desktop entry's %f passes): opened as a dropped file, so
    recipes, plans and model code get their own handling."""
    plain = not (
        a.arch
        or a.weights
        or a.model_args
        or a.pretrained
        or a.trust
        or a.input_size
        or a.code_root
    )
    return plain and bool(a.model) and os.path.exists(a.model)


def _screenshot(app, win, req, a) -> int:
    """Load synchronously (the same verb as the job), render, grab, exit."""
    import time

    from studio.core import verbs
    from studio.core.jobs import run

    w, h = (int(v) for v in a.size.lower().split("x"))
    win.resize(w, h)
    win.show()
    app.processEvents()
    if a.show == "start":  # the page a window without a model opens on
        win._model_changed()
        return _grab(app, win, a.screenshot)
    opened = _off_the_gui_thread(lambda: run(verbs.open_model(req)))
    win.session.set_model(opened.lm, opened.structure, opened.scores)

    def wait(job):
        while job is not None and win.jobs.busy():
            app.processEvents()
            time.sleep(0.01)

    if a.flops_target:
        win.autoselect.slider.setValue(int(round(a.flops_target * 100)))
        win.autoselect.run(merge=False)
    if a.tour:  # the real jobs, as a user would run them: prune, fine-tune, evaluate, time
        from studio.core.train.finetune import FinetuneConfig

        win.session.set_data(win.session.data_spec or "demo")
        wait(win.apply_plan())
        wait(win.finetune(FinetuneConfig(epochs=5, log_every=2, kd_weight=0.5)))
        wait(win.evaluate())
        wait(win.measure_latency())
        win.autoselect.slider.setValue(60)
        win.autoselect.run(merge=False)
    if a.pipeline:
        win.session.set_data(win.session.data_spec or "demo")
        cfg = win.pipeline.config()
        cfg.pipeline, cfg.candidates, cfg.generations = a.pipeline, 8, 3
        cfg.finetune.epochs = 3
        win.pipeline.mode.setCurrentIndex(win.pipeline.mode.findData(a.pipeline))
        wait(win.run_pipeline(cfg))
    if a.focus:
        win.session.set_focus(a.focus)
    if a.find:
        win.heatmap.goto(a.find)
    if a.show in win.docks:
        win.docks[a.show].raise_()
    return _grab(app, win, a.screenshot)


def _off_the_gui_thread(fn):
    """``fn()`` in a thread that ends with it, as a job would run it: torch work on the GUI
    thread would leave it an OpenMP team, and every later job's small ops would pay for it
    (jobs.py; the demo's latency read ~3x too high in the screenshots)."""
    import threading

    out = {}

    def call():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            out["error"] = e

    t = threading.Thread(target=call)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _grab(app, win, path: str) -> int:
    for _ in range(5):
        app.processEvents()
    win.grab().save(path)
    print(f"wrote {path}")
    win.session.exported = True
    win.session.undo_stack.setClean()
    win.close()
    return 0
