"""The main window: it assembles the views around the heatmap, the menus, the toolbar and
the status bar, and turns the actions' questions into dialogs. What the window *does*
lives in ``actions`` (jobs), ``exports``, ``recovery`` and ``recent``."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QToolBar,
    QUndoView,
    QWidget,
)
from superqt.utils import qthrottled

from studio.core import criteria
from studio.core.errors import StudioError
from studio.core.export import RUNTIME_WORDS, RUNTIMES
from studio.core.model.request import ModelRequest
from studio.gui import dialogs, recent
from studio.gui import help as help_menu
from studio.gui.actions import Actions
from studio.gui.exports import Exports
from studio.gui.jobs import JobManager
from studio.gui.recovery import Recovery, studio_home
from studio.gui.session import Session
from studio.gui.views.autoselect import AutoSelectView
from studio.gui.views.blocks import BlocksView
from studio.gui.views.charts import ChartsView
from studio.gui.views.compare import CompareView
from studio.gui.views.heatmap import HeatmapView
from studio.gui.views.pipeline import PipelineView
from studio.gui.views.start import StartPage
from studio.gui.views.structure import StructureView
from studio.gui.views.summary import SummaryBar
from studio.gui.views.widths import WidthsView

ALL = list(criteria.ALL)
DATA = set(criteria.DATA_CRITERIA)
STATE_VERSION = 3  # bump when the dock layout changes: older saved states are ignored


def default_settings() -> QSettings:
    """QSettings of the user, or an ini file under PRUNING_STUDIO_HOME (tests, screenshots)."""
    if os.environ.get("PRUNING_STUDIO_HOME"):
        return QSettings(str(studio_home() / "settings.ini"), QSettings.IniFormat)
    return QSettings("PruningStudio", "Pruning Studio")


def _catalogue(cancel=None):
    from studio.core.jobs import progress
    from studio.core.model.catalogue import entries

    yield progress(0, 1, "reading the model catalogues")
    return list(entries())


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("Pruning Studio")
        self.setWindowIcon(help_menu.app_icon())
        self.settings = settings or default_settings()
        self.session = Session(self)
        self.jobs = JobManager(self)
        self.actions = Actions(self.session, self.jobs, self)
        self.exports = Exports(self.session, self.actions, self)
        self.recovery = Recovery(self.session, self.actions, self)
        self._build_views()
        self._build_actions()
        self._build_status()
        self._connect()
        self.setAcceptDrops(True)
        self._fit_screen()
        geom = self.settings.value("window/geometry")
        if geom is not None:
            self.restoreGeometry(geom)
        self._fit_screen(only_shrink=True)

    # -- construction --------------------------------------------------------------------
    def _fit_screen(self, only_shrink: bool = False) -> None:
        """Open at most the available screen (a 1366x768 laptop included)."""
        screen = self.screen() or (self.windowHandle().screen() if self.windowHandle() else None)
        if screen is None:
            return
        avail = screen.availableGeometry()
        w, h = min(1500, avail.width()), min(950, avail.height())
        if only_shrink:
            w, h = min(self.width(), avail.width()), min(self.height(), avail.height())
        self.resize(w, h)

    def _dock(
        self, title: str, widget: QWidget, area, name: str, scroll: bool = False
    ) -> QDockWidget:
        """A dock; ``scroll`` puts a form in a scroll area, so that it never makes the window
        taller than a laptop screen."""
        d = QDockWidget(title, self)
        d.setObjectName(name)
        if scroll:
            area_ = QScrollArea()
            area_.setWidget(widget)
            area_.setWidgetResizable(True)
            area_.setFrameShape(QFrame.NoFrame)
            area_.setMinimumHeight(60)
            d.setWidget(area_)
        else:
            d.setWidget(widget)
        d.setFeatures(
            QDockWidget.DockWidgetMovable
            | QDockWidget.DockWidgetFloatable
            | QDockWidget.DockWidgetClosable
        )
        self.addDockWidget(area, d)
        return d

    def _build_views(self) -> None:
        s = self.session
        self.summary = SummaryBar(s)
        self.heatmap = HeatmapView(s, ALL, DATA)
        self.start = StartPage()
        self.pages = QStackedWidget()
        self.pages.addWidget(self.start)
        self.pages.addWidget(self.heatmap)
        self.setCentralWidget(self.pages)
        self.structure = StructureView(s)
        self.widths = WidthsView(s)
        self.blocks = BlocksView(s)
        self.autoselect = AutoSelectView(s, ALL, DATA)
        self.charts = ChartsView(s)
        self.compare = CompareView(s)
        self.pipeline = PipelineView(s)
        self.undo_view = QUndoView(s.undo_stack)
        self.undo_view.setEmptyLabel("<loaded model>")
        L, R, B = (Qt.LeftDockWidgetArea, Qt.RightDockWidgetArea, Qt.BottomDockWidgetArea)
        self.docks = {
            "structure": self._dock("Structure", self.structure, L, "dock_structure"),
            "blocks": self._dock("Stages and blocks", self.blocks, L, "dock_blocks"),
            "autoselect": self._dock(
                "Auto-select", self.autoselect, R, "dock_autoselect", scroll=True
            ),
            "history": self._dock("Edit history", self.undo_view, R, "dock_history"),
            "widths": self._dock("Channel widths", self.widths, B, "dock_widths"),
            "charts": self._dock("Live charts", self.charts, B, "dock_charts"),
            "compare": self._dock("Compare", self.compare, B, "dock_compare"),
            "pipeline": self._dock("Pipelines", self.pipeline, B, "dock_pipeline"),
        }
        self._sized = False
        self._catalogue: list[dict] = []  # the model browser's entries, once read

    def showEvent(self, ev):  # noqa: N802
        super().showEvent(ev)
        if not self._sized:
            self._sized = True
            QTimer.singleShot(0, self._first_layout)

    def _first_layout(self) -> None:
        state = self.settings.value("window/state")
        version = self.settings.value("window/state_version")
        self.reset_layout()
        if state is not None and str(version) == str(STATE_VERSION):
            self.restoreState(state, STATE_VERSION)

    def reset_layout(self) -> None:
        """The default arrangement: tabs and sizes that fit the window (View ▸ Reset).
        Only what differs from it is re-docked: docking a dock again into the tab group it
        is already in leaves Qt's previous tab bar painted over the panels."""
        d = self.docks
        size = self.size()  # re-docking may grow the window: it keeps its size
        for dock in d.values():
            dock.setFloating(False)
            dock.show()
        L, R, B = (Qt.LeftDockWidgetArea, Qt.RightDockWidgetArea, Qt.BottomDockWidgetArea)
        areas = {"structure": L, "blocks": L, "autoselect": R, "history": R}
        areas.update({k: B for k in ("widths", "charts", "compare", "pipeline")})
        moved = {k for k, area in areas.items() if self.dockWidgetArea(d[k]) != area}
        for key in moved:
            self.addDockWidget(areas[key], d[key])
        a, h = d["autoselect"], d["history"]
        if (
            moved & {"autoselect", "history"}
            or h in self.tabifiedDockWidgets(a)
            or h.geometry().top() < a.geometry().bottom()  # not below it
        ):
            for dock in (a, h):
                self.removeDockWidget(dock)
            self.addDockWidget(R, a)
            self.splitDockWidget(a, h, Qt.Vertical)
            a.show()
            h.show()
        for group in (("structure", "blocks"), ("widths", "charts", "compare", "pipeline")):
            for prev, key in zip(group, group[1:]):
                if d[key] not in self.tabifiedDockWidgets(d[group[0]]):
                    self.tabifyDockWidget(d[prev], d[key])
        d["structure"].raise_()
        d["widths"].raise_()
        w, h = max(self.width(), 800), max(self.height(), 500)
        self.resizeDocks(
            [d["structure"], d["autoselect"]], [int(w * 0.24), int(w * 0.22)], Qt.Horizontal
        )
        self.resizeDocks([d["widths"]], [int(h * 0.27)], Qt.Vertical)
        self.resizeDocks([d["autoselect"], d["history"]], [int(h * 0.4), int(h * 0.2)], Qt.Vertical)
        self.resize(size)

    def _charts(self) -> dict:
        """Every chart of the window, by name (File ▸ Export ▸ Chart)."""
        return {
            "importance heatmap": self.heatmap.plot,
            "channel widths": self.widths.plot.getPlotItem(),
            "training loss": self.charts.loss_plot,
            "accuracy": self.charts.acc_plot,
            "cost over steps": self.charts.cost_plot,
            "compare widths": self.compare.plot.getPlotItem(),
            "pipeline": self.pipeline.plot.getPlotItem(),
        }

    def _action(self, text, slot, shortcut=None, tip=None) -> QAction:
        a = QAction(text, self)
        a.triggered.connect(lambda _checked=False: slot())
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        return a

    def _runtime_menu(self, menu) -> None:
        """Model ▸ Latency runtime: what Measure latency times both models in."""
        sub = menu.addMenu("Latency &runtime")
        group = QActionGroup(self)
        self.act_runtime = {}
        labels = {"torch": "&PyTorch", "deploy": "&Deploy treatment", "onnxruntime": "&onnxruntime"}
        for name in RUNTIMES:
            a = QAction(labels[name], self, checkable=True)
            a.setStatusTip(f"Measure latency in {RUNTIME_WORDS[name]}")
            a.setChecked(name == self.session.latency_runtime)
            a.triggered.connect(lambda _c=False, n=name: self.session.set_latency_runtime(n))
            group.addAction(a)
            sub.addAction(a)
            self.act_runtime[name] = a

    def _build_actions(self) -> None:
        m = self.menuBar()
        f = m.addMenu("&File")
        self.act_open = self._action(
            "&Open model…",
            self.open_dialog,
            QKeySequence.Open,
            "Open an architecture, a checkpoint, a folder or code",
        )
        f.addAction(self.act_open)
        f.addAction(self._action("Open &demo", lambda: self.load(ModelRequest(spec="demo"))))
        f.addAction(
            self._action(
                "Open cluttered-digits demo",
                lambda: self.load(ModelRequest(spec="clutter")),
                None,
                "The harder built-in task: a wide ResNet-20 on digits among clutter and noise",
            )
        )
        self.recent_menu = f.addMenu("Recent models")
        self._fill_recent()
        f.addSeparator()
        f.addAction(self._action("Load plan…", self.load_plan))
        f.addAction(self._action("&Save plan…", self.save_plan, QKeySequence.Save))
        ex = f.addMenu("&Export")
        ex.addAction(self._action("Pruned model (folder)…", self.export_model))
        ex.addAction(self._action("ONNX…", self.export_onnx))
        ex.addAction(self._action("For deployment (torch.export .pt2)…", self.export_deploy))
        ex.addAction(self._action("Recipe…", self.export_recipe))
        ex.addAction(self._action("Report (HTML or PDF)…", self.export_report))
        charts = ex.addMenu("Chart (PNG or SVG)")
        for name, item in self._charts().items():
            charts.addAction(
                self._action(name + "…", lambda i=item, n=name: self.export_chart(i, n))
            )
        f.addSeparator()
        f.addAction(self._action("&Quit", self.close, QKeySequence.Quit))
        e = m.addMenu("&Edit")
        self.act_undo = self.session.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts(QKeySequence.Undo)
        self.act_redo = self.session.undo_stack.createRedoAction(self, "&Redo")
        keys = list(
            dict.fromkeys(
                QKeySequence.keyBindings(QKeySequence.Redo)
                + [QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")]
            )
        )
        self.act_redo.setShortcuts(keys)
        e.addAction(self.act_undo)
        e.addAction(self.act_redo)
        e.addAction(self._action("Clear plan", self.session.clear_plan))
        md = m.addMenu("&Model")
        md.addAction(self._action("Data source…", self.choose_data))
        self.act_apply = self._action(
            "&Apply plan (prune)",
            self.apply_plan,
            "Ctrl+P",
            "Physically remove the planned channels and blocks",
        )
        self.act_reconstruct = self._action(
            "Reconstruct consumers when pruning",
            self._toggle_reconstruct,
            None,
            "Apply plan then refits the layers that consume pruned channels by least "
            "squares on calibration images (needs data)",
        )
        self.act_reconstruct.setCheckable(True)
        self.act_eval = self._action(
            "&Evaluate",
            self.evaluate,
            "Ctrl+E",
            "Top-1/top-5 of the original and the current model",
        )
        self.act_latency = self._action(
            "Measure &latency",
            self.measure_latency,
            None,
            "Time both models, interleaved, with spread",
        )
        self.act_ft = self._action(
            "&Fine-tune…", self.finetune_dialog, "Ctrl+T", "Recover accuracy (live charts)"
        )
        self.act_cancel = self._action("&Cancel job", self.cancel_job, "Esc")
        self.act_revert = self._action("Revert to original", self.actions.revert)
        for a in (
            self.act_apply,
            self.act_reconstruct,
            self.act_eval,
            self.act_latency,
            self.act_ft,
            self.act_cancel,
            self.act_revert,
        ):
            md.addAction(a)
            if a is self.act_latency:
                self._runtime_menu(md)
        v = m.addMenu("&View")
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())
        v.addSeparator()
        v.addAction(self._action("Reset layout", self.reset_layout))
        help_menu.add_help_menu(self)
        tb = QToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonTextOnly)
        for a in (self.act_open, self.act_apply, self.act_eval, self.act_latency, self.act_ft):
            tb.addAction(a)
        tb.addSeparator()
        # Undo/redo with fixed labels: the stack's own text would shift the toolbar.
        self.tb_undo = self._action("Undo", self.session.undo_stack.undo)
        self.tb_redo = self._action("Redo", self.session.undo_stack.redo)
        self.session.undo_stack.canUndoChanged.connect(self.tb_undo.setEnabled)
        self.session.undo_stack.canRedoChanged.connect(self.tb_redo.setEnabled)
        self.session.undo_stack.undoTextChanged.connect(
            lambda t: self.tb_undo.setToolTip(f"Undo {t}" if t else "Undo")
        )
        self.session.undo_stack.redoTextChanged.connect(
            lambda t: self.tb_redo.setToolTip(f"Redo {t}" if t else "Redo")
        )
        self.tb_undo.setEnabled(False)
        self.tb_redo.setEnabled(False)
        tb.addAction(self.tb_undo)
        tb.addAction(self.tb_redo)
        self.addToolBar(tb)
        self.addToolBarBreak()
        sbar = QToolBar("Summary")  # the always-visible summary, full width above the docks
        sbar.setObjectName("toolbar_summary")
        sbar.setMovable(False)
        sbar.addWidget(self.summary)
        self.addToolBar(sbar)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.job_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)
        self.cancel_btn.clicked.connect(self.cancel_job)
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.setCheckable(True)
        self.pause_btn.setVisible(False)
        self.pause_btn.toggled.connect(self.pause_job)
        self.data_label = QLabel("data: —")
        sb.addPermanentWidget(self.data_label)
        sb.addPermanentWidget(self.job_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.pause_btn)
        sb.addPermanentWidget(self.cancel_btn)

    def _connect(self) -> None:
        a, s = self.actions, self.session
        a.message.connect(lambda m, ms: self.statusBar().showMessage(m, ms))
        self.exports.message.connect(lambda m, ms: self.statusBar().showMessage(m, ms))
        a.failed.connect(self._failed)
        self.exports.failed.connect(self._failed)
        a.trustNeeded.connect(self._ask_trust)
        a.keepPartial.connect(self._ask_keep)
        a.opened.connect(self._remember)
        a.eventsFor.connect(self._watch)
        self.jobs.started.connect(self._job_started)
        self.jobs.busyChanged.connect(self._busy)
        s.modelChanged.connect(self._model_changed)
        s.dataChanged.connect(lambda _d: self._model_changed())
        for v in (self.heatmap, self.autoselect):
            v.scoreRequested.connect(self.actions.score)
            v.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.autoselect.latencyRequested.connect(self.actions.select_latency)
        self.charts.exportRequested.connect(self.export_chart)
        self.pipeline.startRequested.connect(self.run_pipeline)
        self.start.demoRequested.connect(lambda: self.load(ModelRequest(spec="demo")))
        self.start.openRequested.connect(self.open_dialog)
        self.start.recentRequested.connect(self._open_recent)
        self.start.helpRequested.connect(lambda: help_menu.first_steps_dialog(self).exec())
        self.pipeline.exportRequested.connect(self.export_pipeline_recipe)

    # -- jobs ----------------------------------------------------------------------------
    def _job_started(self, job) -> None:
        self.job_label.setText(job.name)
        job.progress.connect(self._progress)

    def _watch(self, kind: str, job) -> None:
        if kind == "finetune":
            self.charts.start_run()
            self.docks["charts"].raise_()
            job.event.connect(self.charts.on_event)
        elif kind.startswith("pipeline:"):
            self.pipeline.reset(kind.partition(":")[2])
            self.docks["pipeline"].raise_()
            job.event.connect(self.pipeline.on_event)

    def _progress(self, what: str, step: int, total: int) -> None:
        self._latest_progress = (what, step, total)
        self._show_progress()

    @qthrottled(timeout=100)  # a step can take 2 ms: repaint the bar at most 10 times a second
    def _show_progress(self) -> None:
        if not self.jobs.busy():  # a throttled call that landed after the job ended
            return
        what, step, total = self._latest_progress
        self.job_label.setText(what)
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(step)

    def _failed(self, title: str, msg: str, details: str, _exc=None) -> None:
        self.statusBar().showMessage(f"{title}: {msg}", 8000)
        dialogs.error_box(self, title, msg, details)

    def _ask_trust(self, req, exc) -> None:
        if isinstance(req, tuple) and req and req[0] == "restore":
            if dialogs.ask_trust(self, exc.path, exc.reason):
                self.recovery.restore(req[1], trust=True)
            return
        if dialogs.ask_trust(self, exc.path, exc.reason):
            self.load(req.replace(trust=True))

    def _ask_keep(self, question: str, keep) -> None:
        r = QMessageBox.question(
            self,
            "Keep the partial result?",
            question,
            QMessageBox.Yes | QMessageBox.No,
            QMessageBox.No,
        )
        if r == QMessageBox.Yes:
            keep()
        else:
            self.statusBar().showMessage("cancelled: nothing changed", 6000)

    def _busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_btn.setVisible(busy)
        self.pause_btn.setVisible(busy)
        if not busy:
            self.pause_btn.setChecked(False)
            self.job_label.setText("")
        for a in (self.act_apply, self.act_eval, self.act_latency, self.act_ft, self.act_revert):
            a.setEnabled(not busy and self.session.loaded)

    def cancel_job(self) -> None:
        self.pause_btn.setChecked(False)  # a paused worker must run on to see the cancel
        self.jobs.cancel_all()

    def pause_job(self, paused: bool) -> None:
        """Pause or resume the running jobs between two progress events."""
        for job in self.jobs.jobs:
            job.set_paused(paused)
        self.job_label.setText("paused" if paused else "")

    # -- the actions, with their dialogs ------------------------------------------------
    def open_dialog(self) -> None:
        """The model browser: torchvision now, timm's catalogue as soon as a worker has read
        it (importing timm takes seconds: never on the GUI thread)."""
        tv = dialogs.torchvision_entries()
        dlg = dialogs.OpenDialog(tv + [e for e in self._catalogue if e["library"] == "timm"], self)
        if not self._catalogue:
            job = self.jobs.start("timm catalogue", _catalogue, mutates=False)
            if job is not None:

                def arrived(entries):
                    self._catalogue = list(entries)
                    if dlg.isVisible():
                        dlg.add_entries([e for e in entries if e["library"] == "timm"])

                job.finished.connect(arrived)
        while dlg.exec():
            try:
                req = dlg.request()
            except ValueError as e:
                dialogs.error_box(self, "Cannot open", str(e).splitlines()[0])
                continue
            self.load(req)
            return

    code_root: str | None = None  # gui --code-root: for every model opened in this window

    def load(self, req: ModelRequest | dict, prefetch=None):
        if isinstance(req, dict):
            req = ModelRequest(**req)
        if req.code_root is None and self.code_root:
            req = req.replace(code_root=self.code_root)
        return self.actions.open(req, prefetch)

    def _remember(self, req: ModelRequest) -> None:
        recent.remember(self.settings, req, studio_home())
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        items = recent.load(self.settings, studio_home())
        for rec in items:
            act = self.recent_menu.addAction(recent.label(rec))
            act.setToolTip(rec["spec"])
            act.triggered.connect(lambda _c=False, rec=rec: self._open_recent(rec))
        self.recent_menu.setEnabled(bool(items))
        self.start.set_recent([(recent.label(r), r["spec"], r) for r in items])

    def _open_recent(self, rec: dict):
        try:  # the user picks it from the menu: the user names it (not the settings file)
            return self.load(ModelRequest.from_record(rec, "recent model").replace(from_file=False))
        except (StudioError, ValueError) as e:
            dialogs.error_box(self, "Cannot open", str(e).splitlines()[0])
            return None

    def dragEnterEvent(self, ev):  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802
        for url in ev.mimeData().urls():
            p = url.toLocalFile()
            if p:
                self.open_path(p)
                return

    def open_recipe(self, p: str):
        """A recipe (or a plan) from the file manager, a drop or the command line: its model
        and data open, and its first selection step becomes the plan being edited. The
        recipe never grants trust; its later steps run with ``pruning-studio run``."""
        from studio.core.recipe import Recipe
        from studio.core.schema import load_json

        try:
            raw = load_json(p, "recipe or plan")
            if isinstance(raw, dict) and raw.get("format") == "pruning-studio/plan":
                if not self.session.loaded:
                    raise StudioError(f"{p}: a plan needs its model open first")
                return self.load_plan(p)
            r = Recipe.from_dict(raw, p)
        except StudioError as e:
            dialogs.error_box(self, "Cannot open the recipe", str(e).splitlines()[0], str(e))
            return None
        if r.data:
            self.session.set_data(r.data)
        first = next(iter(r.all_steps()), None)
        job = self.load(r.model.request())
        if job is not None:
            job.finished.connect(lambda _o, step=first: self._recipe_opened(p, step))
        return job

    def _recipe_opened(self, path: str, step) -> None:
        from studio.core.plan.plan import Plan, validate

        self.statusBar().showMessage(
            f"recipe {Path(path).name}: its model and data are open; all its steps run with "
            f"pruning-studio run --recipe {path}",
            15000,
        )
        s = self.session
        if step is None:
            return
        if step.plan is not None:
            plan = Plan.from_dict(step.plan.model_dump(), "recipe plan")
            try:
                validate(plan, s.structure)
            except StudioError as e:
                dialogs.error_box(self, "Cannot use the recipe's plan", str(e))
                return
            s.replace_plan(plan, "the recipe's plan")
        elif step.target is not None and step.target.flops:
            t = step.target
            i = self.autoselect.crit.findData(t.criterion)
            if i >= 0:
                self.autoselect.crit.setCurrentIndex(i)
            self.autoselect.scope.setCurrentText(t.scope)
            self.autoselect.slider.setValue(int(round(t.flops * 100)))
            self.autoselect.run(merge=False)

    def open_path(self, p: str):
        """A file or folder from drag and drop, the file manager or the command line."""
        from studio.core.model import checkpoint, usercode, zoo

        path = Path(p)
        try:
            if path.suffix == ".py":
                dlg = dialogs.CodeEntryPicker(p, usercode.entries(path), self)
                return self.load(dlg.request(p)) if dlg.exec() else None
            if path.is_file() and path.suffix in (".json", ".yaml", ".yml"):
                return self.open_recipe(p)
            if path.is_file():
                try:
                    obj = checkpoint.unwrap(checkpoint.read(path, trust=False))
                    needs_arch = checkpoint.is_state_dict(obj)
                except StudioError:
                    needs_arch = False  # the loader will say what is wrong (or ask for trust)
                if needs_arch:
                    dlg = dialogs.ArchPicker(p, zoo.architectures(), self)
                    if not dlg.exec():
                        return None
                    return self.load(ModelRequest(spec=p, arch=dlg.arch()))
            return self.load(ModelRequest(spec=p))
        except (StudioError, ValueError) as e:
            dialogs.error_box(self, "Cannot open", str(e).splitlines()[0])
            return None

    def _model_changed(self) -> None:
        s = self.session
        self.pages.setCurrentWidget(self.heatmap if s.loaded else self.start)
        self.setWindowTitle(
            f"Pruning Studio — {s.lm.name}  ·  {s.lm.describe_source()}"
            if s.loaded
            else "Pruning Studio"
        )
        self.data_label.setText(f"data: {s.data_spec or '— (Model ▸ Data source…)'}")
        # Without a model the panels have nothing to act on: greyed out, not inviting.
        for dock in self.docks.values():
            dock.widget().setEnabled(s.loaded)
        self.undo_view.setEmptyLabel("<loaded model>" if s.loaded else "<no model yet>")
        self._busy(self.jobs.busy())

    def choose_data(self) -> None:
        from studio.core.train.spec import spec_problem

        text, problem = self.session.data_spec or "", ""
        while True:
            text, ok = QInputDialog.getText(
                self,
                "Data source",
                (f"<b>{problem}</b><br><br>" if problem else "")
                + "demo (demo:N: another split of its digits), clutter, synthetic, "
                "cifar10:DIR, cifar100:DIR, or an image folder (train/ and val/ class "
                "subfolders):",
                text=text,
            )
            text = text.strip()
            if not ok:
                return
            if not text:  # cleared: no data source
                self.session.set_data(None)
                return
            problem = spec_problem(text) or ""
            if not problem:
                self.session.set_data(text)
                return

    def apply_plan(self):
        return self.actions.apply()

    def _toggle_reconstruct(self) -> None:
        self.actions.reconstruct = self.act_reconstruct.isChecked()

    def evaluate(self):
        job = self.actions.evaluate()
        if job is not None:
            job.finished.connect(lambda _r: self.docks["compare"].raise_())
        return job

    def measure_latency(self):
        job = self.actions.latency()
        if job is not None:
            job.finished.connect(lambda _r: self.docks["compare"].raise_())
        return job

    def finetune_dialog(self):
        s = self.session
        if not s.loaded:
            return None
        dlg = dialogs.FinetuneDialog(self, s.data_spec)
        if not dlg.exec():
            return None
        s.set_data(dlg.data.text().strip() or s.data_spec)
        return self.finetune(dlg.config())

    def finetune(self, cfg):
        return self.actions.finetune(cfg)

    def run_pipeline(self, cfg):
        return self.actions.run_pipeline(cfg)

    # -- plans and exports ---------------------------------------------------------------
    def load_plan(self, path: str | None = None) -> None:
        from studio.core.plan.plan import Plan, validate

        p = path or QFileDialog.getOpenFileName(self, "Load plan", "", "Plan (*.json)")[0]
        if not p or not self.session.loaded:
            return
        try:
            plan = Plan.load(p)
            validate(plan, self.session.structure)
        except StudioError as e:
            dialogs.error_box(self, "Cannot load the plan", str(e))
            return
        self.session.replace_plan(plan, f"load plan {Path(p).name}")

    def save_plan(self, path: str | None = None) -> None:
        if not self.session.loaded:
            return
        path = (
            path or QFileDialog.getSaveFileName(self, "Save plan", "plan.json", "Plan (*.json)")[0]
        )
        if not path:
            return
        from studio.core.outputs import check_file

        try:
            check_file(path)
            self.session.plan.save(path)
        except StudioError as e:
            dialogs.error_box(self, "Cannot save the plan", str(e))
            return
        self.session.mark_plan_saved()
        self.statusBar().showMessage(f"saved {path}", 4000)

    def _ask_path(self, title: str, default: str, filt: str) -> str:
        return QFileDialog.getSaveFileName(self, title, default, filt)[0]

    def export_model(self, path: str | None = None):
        path = path or self._ask_path(
            "Export pruned model (a new folder)", "pruned-model", "Folder (*)"
        )
        return self.exports.model(path) if path else None

    def export_onnx(self, path: str | None = None):
        path = path or self._ask_path("Export ONNX", "model.onnx", "ONNX (*.onnx)")
        return self.exports.onnx(path) if path else None

    def export_deploy(self, path: str | None = None):
        path = path or self._ask_path(
            "Export for deployment: BatchNorm folded, channels-last where faster",
            "model.pt2",
            "torch.export program (*.pt2)",
        )
        return self.exports.deploy(path) if path else None

    def export_recipe(self, path: str | None = None):
        path = path or self._ask_path("Export recipe", "recipe.json", "Recipe (*.json)")
        return self.exports.recipe(path) if path else None

    def export_pipeline_recipe(self, cfg, path: str | None = None):
        path = path or self._ask_path("Export recipe", "recipe.json", "Recipe (*.json)")
        return self.exports.recipe(path, cfg) if path else None

    def export_report(self, path: str | None = None):
        s = self.session
        path = path or self._ask_path(
            "Export report", "report.html", "HTML page (*.html);;PDF (*.pdf)"
        )
        if not path or not s.loaded:
            return None
        from studio.gui.views.plotting import png

        images = {"Importance heatmap (" + s.criterion + ")": png(self.heatmap.plot)}
        return self.exports.report(path, images, self.compare.widths())

    def export_chart(self, item, name: str, path: str | None = None) -> None:
        """Any chart as PNG or SVG."""
        from studio.gui.views.plotting import export_chart

        path = path or self._ask_path(
            f"Export chart: {name}", name.replace(" ", "-") + ".png", "PNG (*.png);;SVG (*.svg)"
        )
        if not path:
            return
        try:
            export_chart(item, path)
        except StudioError as e:
            dialogs.error_box(self, "Cannot export the chart", str(e))
            return
        self.statusBar().showMessage(f"wrote {path}", 5000)

    # -- closing -------------------------------------------------------------------------
    def closeEvent(self, ev):  # noqa: N802
        if self.jobs.busy():
            r = QMessageBox.question(
                self,
                "A job is running",
                "A job is still running. Cancel it and quit?",
                QMessageBox.Yes | QMessageBox.No,
                QMessageBox.No,
            )
            if r != QMessageBox.Yes:
                ev.ignore()
                return
        elif self.session.dirty:
            s = self.session
            what = []
            if not s.plan.is_empty() and not s.undo_stack.isClean():
                what.append(
                    f"a plan of {s.plan.n_removed()} channels and "
                    f"{len(s.plan.drop_blocks)} blocks that is not saved"
                )
            if s.pruned and not s.exported:
                what.append("a pruned or fine-tuned model that is not exported")
            r = QMessageBox.question(
                self,
                "Quit without saving?",
                "You have " + " and ".join(what) + ". Quit anyway?",
                QMessageBox.Yes | QMessageBox.No,
                QMessageBox.No,
            )
            if r != QMessageBox.Yes:
                ev.ignore()
                return
        self.jobs.wait_all()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(STATE_VERSION))
        self.settings.setValue("window/state_version", STATE_VERSION)
        self.recovery.clear()  # a clean exit needs no recovery
        ev.accept()

    def sizeHint(self):  # noqa: N802
        return QSize(1366, 768)
