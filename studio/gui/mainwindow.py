"""The main window: docks of views around the heatmap, a summary bar, menus, jobs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QToolBar,
    QUndoView,
    QWidget,
)

from studio.core import jobs as core_jobs
from studio.core.criteria.weights import CRITERIA
from studio.core.criteria.activations import DATA_CRITERIA
from studio.core.errors import UntrustedFileError
from studio.gui import dialogs
from studio.gui.jobs import JobManager, worker_threads
from studio.gui.session import Session
from studio.gui.views.autoselect import AutoSelectView
from studio.gui.views.blocks import BlocksView
from studio.gui.views.charts import ChartsView
from studio.gui.views.compare import CompareView
from studio.gui.views.heatmap import HeatmapView
from studio.gui.views.pipeline import PipelineView
from studio.gui.views.structure import StructureView
from studio.gui.views.summary import SummaryBar
from studio.gui.views.widths import WidthsView

log = logging.getLogger(__name__)
ALL = list(CRITERIA) + list(DATA_CRITERIA)


def studio_home() -> Path:
    """Where settings-side files (the recovery file) live; PRUNING_STUDIO_HOME overrides."""
    env = os.environ.get("PRUNING_STUDIO_HOME")
    base = Path(env) if env else Path(QStandardPaths.writableLocation(
        QStandardPaths.AppDataLocation) or Path.home() / ".pruning-studio")
    base.mkdir(parents=True, exist_ok=True)
    return base


def default_settings() -> QSettings:
    """QSettings of the user, or an ini file under PRUNING_STUDIO_HOME (tests, screenshots)."""
    if os.environ.get("PRUNING_STUDIO_HOME"):
        return QSettings(str(studio_home() / "settings.ini"), QSettings.IniFormat)
    return QSettings("PruningStudio", "Pruning Studio")


# -- job bodies (core generators; run in worker threads) -----------------------------------
def load_job(req: dict, trust: bool):
    def gen(token):
        from studio.core import load_model, map_structure
        from studio.core.criteria.weights import score

        yield core_jobs.progress(0, 3, f"loading {req['spec']}")
        lm = load_model(req["spec"], arch=req.get("arch"), trust=trust,
                        pretrained=req.get("pretrained", False),
                        input_size=req.get("input_size"))
        token.check()
        yield core_jobs.progress(1, 3, "mapping groups, stages and blocks")
        s = map_structure(lm)
        token.check()
        yield core_jobs.progress(2, 3, "scoring (l1)")
        scores = {"l1": score(lm.model, s, "l1")}
        return lm, s, scores
    return gen


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("Pruning Studio")
        self.settings = settings or default_settings()
        self.session = Session(self)
        self.jobs = JobManager(self)
        self._current_job = None
        self._build_views()
        self._build_actions()
        self._build_status()
        self.setAcceptDrops(True)
        self.resize(1500, 950)
        self._autosave_timer = QTimer(self, singleShot=True, interval=1500)
        self._autosave_timer.timeout.connect(self.autosave)
        self.session.planChanged.connect(self._autosave_timer.start)
        self.session.modelChanged.connect(self._model_changed)
        self.jobs.busyChanged.connect(self._busy)
        geom = self.settings.value("window/geometry")
        if geom is not None:
            self.restoreGeometry(geom)

    # -- construction --------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area, name: str) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable |
                      QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    def _build_views(self) -> None:
        s = self.session
        self.summary = SummaryBar(s)
        self.heatmap = HeatmapView(s, ALL, set(DATA_CRITERIA))
        self.setCentralWidget(self.heatmap)
        self.structure = StructureView(s)
        self.widths = WidthsView(s)
        self.blocks = BlocksView(s)
        self.autoselect = AutoSelectView(s, ALL, set(DATA_CRITERIA))
        self.charts = ChartsView(s)
        self.compare = CompareView(s)
        self.pipeline = PipelineView(s)
        self.pipeline.startRequested.connect(self.run_pipeline)
        self.pipeline.exportRequested.connect(self.export_pipeline_recipe)
        self.undo_view = QUndoView(s.undo_stack)
        self.undo_view.setEmptyLabel("<loaded model>")
        L, R, B = (Qt.LeftDockWidgetArea, Qt.RightDockWidgetArea, Qt.BottomDockWidgetArea)
        self.docks = {
            "structure": self._dock("Structure", self.structure, L, "dock_structure"),
            "autoselect": self._dock("Auto-select", self.autoselect, R, "dock_autoselect"),
            "blocks": self._dock("Stages and blocks", self.blocks, R, "dock_blocks"),
            "history": self._dock("Edit history", self.undo_view, R, "dock_history"),
            "widths": self._dock("Channel widths", self.widths, B, "dock_widths"),
            "charts": self._dock("Live charts", self.charts, B, "dock_charts"),
            "compare": self._dock("Compare", self.compare, B, "dock_compare"),
            "pipeline": self._dock("Pipelines", self.pipeline, B, "dock_pipeline"),
        }
        self._sized = False
        for v in (self.heatmap, self.autoselect):
            v.scoreRequested.connect(self.compute_scores)
            v.message.connect(lambda m: self.statusBar().showMessage(m, 6000))

    def showEvent(self, ev):  # noqa: N802
        super().showEvent(ev)
        if not self._sized:
            self._sized = True
            QTimer.singleShot(0, self._default_layout)

    def _default_layout(self) -> None:
        """Tabs and sizes of the first run (tabifying before the window exists leaves a
        stray tab bar in Qt); later runs restore the user's own layout."""
        d = self.docks
        self.tabifyDockWidget(d["blocks"], d["history"])
        self.tabifyDockWidget(d["widths"], d["charts"])
        self.tabifyDockWidget(d["charts"], d["compare"])
        self.tabifyDockWidget(d["compare"], d["pipeline"])
        d["blocks"].raise_()
        d["widths"].raise_()
        state = self.settings.value("window/state")
        if state is not None and self.restoreState(state):
            return
        self.resizeDocks([d["structure"], d["autoselect"]], [480, 360], Qt.Horizontal)
        self.resizeDocks([d["widths"]], [300], Qt.Vertical)
        self.resizeDocks([d["autoselect"], d["blocks"]], [250, 520], Qt.Vertical)

    def _action(self, text, slot, shortcut=None, tip=None) -> QAction:
        a = QAction(text, self)
        a.triggered.connect(slot)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
        return a

    def _build_actions(self) -> None:
        m = self.menuBar()
        f = m.addMenu("&File")
        self.act_open = self._action("&Open model…", self.open_dialog, QKeySequence.Open)
        f.addAction(self.act_open)
        f.addAction(self._action("Open &demo", lambda: self.load({"spec": "demo"})))
        self.recent_menu = f.addMenu("Recent models")
        self._fill_recent()
        f.addSeparator()
        f.addAction(self._action("Load plan…", self.load_plan))
        f.addAction(self._action("&Save plan…", self.save_plan, QKeySequence.Save))
        ex = f.addMenu("&Export")
        ex.addAction(self._action("Pruned model…", self.export_model))
        ex.addAction(self._action("ONNX…", self.export_onnx))
        ex.addAction(self._action("Recipe…", self.export_recipe))
        ex.addAction(self._action("Report (HTML)…", self.export_report))
        f.addSeparator()
        f.addAction(self._action("&Quit", self.close, QKeySequence.Quit))
        e = m.addMenu("&Edit")
        undo = self.session.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.Undo)
        redo = self.session.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence.Redo])
        e.addAction(undo)
        e.addAction(redo)
        e.addAction(self._action("Clear plan", self.autoselect._clear))
        md = m.addMenu("&Model")
        md.addAction(self._action("Data source…", self.choose_data))
        self.act_apply = self._action("&Apply plan (prune)", self.apply_plan, "Ctrl+P",
                                      "Physically remove the planned channels and blocks")
        self.act_eval = self._action("&Evaluate", self.evaluate, "Ctrl+E")
        self.act_latency = self._action("Measure &latency", self.measure_latency)
        self.act_ft = self._action("&Fine-tune…", self.finetune_dialog, "Ctrl+T")
        self.act_cancel = self._action("&Cancel job", self.cancel_job, "Esc")
        self.act_revert = self._action("Revert to original", self.revert)
        for a in (self.act_apply, self.act_eval, self.act_latency, self.act_ft,
                  self.act_cancel, self.act_revert):
            md.addAction(a)
        v = m.addMenu("&View")
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())
        tb = QToolBar("Main")
        tb.setObjectName("toolbar_main")
        tb.setMovable(False)
        for a in (self.act_open, self.act_apply, self.act_eval, self.act_latency, self.act_ft):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(undo)
        tb.addAction(redo)
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
        self.progress.setMaximumWidth(240)
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

    # -- jobs ----------------------------------------------------------------------------
    def _start(self, name: str, factory, on_done, on_event=None):
        job = self.jobs.run(name, factory)
        if job is None:
            self.statusBar().showMessage("Another job is running: wait for it or cancel it",
                                         5000)
            return None
        self._current_job = job
        self.job_label.setText(name)
        job.progress.connect(self._progress)
        if on_event is not None:
            job.event.connect(on_event)
        job.finished.connect(on_done)
        job.failed.connect(lambda msg, det, n=name: self._failed(n, msg, det))
        job.cancelled.connect(lambda n=name: self.statusBar().showMessage(f"{n}: cancelled",
                                                                          5000))
        return job

    def _progress(self, what: str, step: int, total: int) -> None:
        self.job_label.setText(what)
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(step)

    def _failed(self, name: str, msg: str, details: str) -> None:
        self.statusBar().showMessage(f"{name} failed: {msg}", 8000)
        dialogs.error_box(self, f"{name} failed", msg, details)

    def _busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_btn.setVisible(busy)
        self.pause_btn.setVisible(busy)
        if not busy:
            self.pause_btn.setChecked(False)
        if not busy:
            self.job_label.setText("")
        for a in (self.act_apply, self.act_eval, self.act_latency, self.act_ft,
                  self.act_revert):
            a.setEnabled(not busy and self.session.loaded)

    def cancel_job(self) -> None:
        self.pause_btn.setChecked(False)  # a paused worker must run on to see the cancel
        self.jobs.cancel_all()

    def pause_job(self, paused: bool) -> None:
        """Pause or resume the running jobs between two progress events."""
        for job in self.jobs.jobs:
            job.set_paused(paused)
        self.job_label.setText("paused" if paused else "")

    # -- loading -------------------------------------------------------------------------
    def open_dialog(self) -> None:
        from studio.core.model import zoo

        dlg = dialogs.OpenDialog(zoo.architectures(), self)
        if dlg.exec():
            self.load(dlg.request())

    def load(self, req: dict, trust: bool = False):
        def done(result):
            lm, s, scores = result
            self.session.set_model(lm, s, scores)
            self._remember(req)
            self.statusBar().showMessage(f"loaded {lm.name}", 4000)

        job = self._start(f"open {req['spec']}", load_job(req, trust), done)
        if job is not None:
            job.failed.disconnect()
            job.failed.connect(lambda msg, det: self._load_failed(req, msg, det))
        return job

    def _load_failed(self, req: dict, msg: str, details: str) -> None:
        if "pass --trust" in msg or UntrustedFileError.__name__ in details:
            if dialogs.ask_trust(self, req["spec"], msg.split(";")[0]):
                self.load(req, trust=True)
            return
        self._failed(f"open {req['spec']}", msg, details)

    def _recent(self) -> list[dict]:
        """The recent-models list, stored as one JSON string. Anything unreadable in the
        settings (hand-edited, an older format) is skipped, never fatal."""
        raw = self.settings.value("recent")
        try:
            items = json.loads(raw) if isinstance(raw, str) else []
        except ValueError:
            items = []
        return [r for r in items if isinstance(r, dict) and isinstance(r.get("spec"), str)] \
            if isinstance(items, list) else []

    def _remember(self, req: dict) -> None:
        recent = [r for r in self._recent() if r != req]
        recent.insert(0, req)
        self.settings.setValue("recent", json.dumps(recent[:8]))
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for req in self._recent():
            self.recent_menu.addAction(req["spec"], lambda req=req: self.load(req))

    def dragEnterEvent(self, ev):  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802
        for url in ev.mimeData().urls():
            p = url.toLocalFile()
            if p:
                arch = None
                if Path(p).is_file():
                    arch, ok = QInputDialog.getText(
                        self, "Architecture", "Architecture of this checkpoint (leave empty "
                        "for a whole pickled model):", text="")
                    if not ok:
                        return
                self.load({"spec": p, "arch": arch or None})
                return

    def _model_changed(self) -> None:
        s = self.session
        self.setWindowTitle(f"Pruning Studio — {s.lm.name}" if s.loaded else "Pruning Studio")
        self.data_label.setText(f"data: {s.data_spec or '— (Model ▸ Data source…)'}")
        self._busy(self.jobs.busy())

    # -- scoring, pruning, evaluation, fine-tuning ---------------------------------------
    def _data(self):
        from studio.core.train.data import load_data

        s = self.session
        return load_data(s.data_spec, s.lm.input_size, num_classes=s.lm.num_classes)

    def choose_data(self) -> None:
        text, ok = QInputDialog.getText(
            self, "Data source", "demo (demo:N: another split of its digits), synthetic, "
            "cifar10:DIR, cifar100:DIR, or an image folder (train/ and val/ class "
            "subfolders):", text=self.session.data_spec or "")
        if ok:
            self.session.data_spec = text.strip() or None
            self._model_changed()

    def compute_scores(self, criterion: str) -> None:
        s = self.session
        if not s.loaded or criterion in s.scores:
            return
        if criterion in DATA_CRITERIA and not s.data_spec:
            self.statusBar().showMessage(f"'{criterion}' needs data: Model ▸ Data source…", 8000)
            return
        lm, st = s.lm, s.structure

        def gen(token):
            from studio.core.verbs import compute_scores

            data = self._data() if criterion in DATA_CRITERIA else None
            return (yield from compute_scores(lm, st, criterion, data, batches=8,
                                              cancel=token))

        self._start(f"scoring ({criterion})", gen,
                    lambda sc: s.lm is lm and s.set_scores(criterion, sc))

    def apply_plan(self) -> None:
        s = self.session
        if not s.loaded or s.plan.is_empty():
            self.statusBar().showMessage("The plan is empty: select channels or blocks first",
                                         5000)
            return
        lm, st, plan = s.lm, s.structure, s.plan.copy()
        home = studio_home()

        def gen(token):
            from studio.core import map_structure, prune, save_pruned
            from studio.core.criteria.weights import score
            from studio.core.model.loader import LoadedModel

            yield core_jobs.progress(0, 3, "pruning (surgery)")
            pruned, report = prune(lm, st, plan)
            new = LoadedModel(pruned, lm.source, f"{lm.name.split(' [')[0]} [pruned "
                              f"{len(lm.plans) + 1}x]", lm.arch, lm.input_size,
                              lm.plans + [plan.to_dict()])
            yield core_jobs.progress(1, 3, "mapping the pruned model")
            s2 = map_structure(new)
            scores = {"l1": score(pruned, s2, "l1")}
            yield core_jobs.progress(2, 3, "saving a recovery copy")
            save_pruned(home / "recovery-model", new, pruned, None, report)
            return new, s2, scores, report

        def done(res):
            new, s2, scores, report = res
            pct = report["after"]["flops"] / report["before"]["flops"]
            s.adopt_pruned(new, s2, f"prune {len(s.history)}", scores)
            self.statusBar().showMessage(f"pruned: FLOPs now {pct:.1%} of the previous model",
                                         6000)

        self._start("apply plan", gen, done)

    def revert(self) -> None:
        s = self.session
        if s.original is not None and s.original is not s.lm:
            self.load({"spec": "demo"} if s.original.source.get("demo") else
                      {"spec": s.original.folder or s.original.source.get("file")
                       or s.original.arch, "arch": s.original.source.get("arch")})

    def evaluate(self) -> None:
        s = self.session
        if not s.loaded:
            return
        if not s.data_spec:
            self.statusBar().showMessage("Evaluate needs data: Model ▸ Data source…", 8000)
            return
        orig, cur = s.original.model, s.lm.model

        def gen(token):
            from studio.core.train.data import loader
            from studio.core.train.evaluate import evaluate

            data = self._data()
            data.check_model(cur, s.lm.input_size)
            val = loader(data.val, 256)
            a = yield from evaluate(orig, val, cancel=token)
            b = a if orig is cur else (yield from evaluate(cur, val, cancel=token))
            return a, b, data.note

        def done(res):
            a, b, note = res
            s.results.update(eval_original=a, eval_current=b)
            s.resultsChanged.emit()
            self.docks["compare"].raise_()
            self.statusBar().showMessage(f"top-1 {a['top1']:.4f} → {b['top1']:.4f}"
                                         + (f"  ({note})" if note else ""), 8000)

        self._start("evaluate", gen, done)

    def measure_latency(self) -> None:
        s = self.session
        if not s.loaded:
            return
        orig, cur = s.original.model, s.lm.model
        ratio = s.structure.original.flops / s.original_cost.flops
        size = s.lm.input_size

        def gen(token):
            from studio.core.train.evaluate import compare_latency

            yield core_jobs.progress(0, 1, "measuring latency")
            return compare_latency(orig, cur, size, ratio, batch_sizes=(1, 16),
                                   threads=worker_threads(), repeats=15)

        def done(lat):
            s.results["latency"] = lat
            s.resultsChanged.emit()
            self.docks["compare"].raise_()

        self._start("latency", gen, done)

    def finetune_dialog(self) -> None:
        s = self.session
        if not s.loaded:
            return
        dlg = dialogs.FinetuneDialog(self, s.data_spec)
        if not dlg.exec():
            return
        s.data_spec = dlg.data.text().strip() or s.data_spec
        self._model_changed()
        from studio.core.train.finetune import FinetuneConfig

        cfg = FinetuneConfig(epochs=dlg.epochs.value(), lr=dlg.lr.value(),
                             optimizer=dlg.opt.currentText(),
                             label_smoothing=dlg.smooth.value(),
                             kd_weight=0.5 if dlg.kd.isChecked() else 0.0)
        self.finetune(cfg)

    def finetune(self, cfg):
        s = self.session
        if not s.data_spec:
            self.statusBar().showMessage("Fine-tuning needs data: Model ▸ Data source…", 8000)
            return None
        model = s.lm.model
        teacher = s.original.model if cfg.kd_weight > 0 and s.original.model is not model \
            else None
        self.charts.clear()
        self.docks["charts"].raise_()

        def gen(token):

            from studio.core.train.finetune import finetune

            return (yield from finetune(model, self._data(), cfg, teacher=teacher,
                                        cancel=token))

        def done(res):
            best = res["best"]
            if best.get("top1", -1) >= 0:
                s.results["eval_current"] = {"top1": best["top1"], "top5": best["top5"],
                                             "loss": best["loss"]}
            s.history.append({**s.history[-1], "label": "fine-tuned"})
            s.historyChanged.emit()
            s.resultsChanged.emit()
            self.statusBar().showMessage(
                f"fine-tuning {'cancelled' if res['cancelled'] else 'done'}: best top-1 "
                f"{best.get('top1', float('nan')):.4f}", 8000)

        return self._start("fine-tune", gen, done, self.charts.on_event)

    def run_pipeline(self, cfg):
        """Run a pipeline on the current model; its result becomes the working model
        (sensitivity only analyses: its suggestion is applied as an undoable plan edit)."""
        s = self.session
        if not s.loaded:
            return None
        if not s.data_spec:
            self.statusBar().showMessage("Pipelines need data: Model ▸ Data source…", 8000)
            return None
        lm = s.lm
        self.pipeline.reset(cfg.pipeline)
        self.docks["pipeline"].raise_()

        def gen(token):

            from studio.core.pipelines.common import run_pipeline, sensitivity

            data = self._data()
            if cfg.pipeline == "sensitivity":
                return ("sensitivity", (yield from sensitivity(lm, data, cfg, token)))
            res = yield from run_pipeline(lm, data, cfg, token)
            from studio.core import map_structure
            from studio.core.criteria.weights import score

            new = res["model"]
            s2 = map_structure(new)
            return ("model", (new, s2, {"l1": score(new.model, s2, "l1")}, res["history"]))

        def done(out):
            kind, res = out
            if kind == "sensitivity":
                s.results["sensitivity"] = res
                self.pipeline.finished_sensitivity(res)
                return
            new, s2, scores, history = res
            s.results["pipeline"] = history
            s.adopt_pruned(new, s2, cfg.pipeline, scores)
            self.statusBar().showMessage(f"{cfg.pipeline} done: FLOPs now "
                                         f"{s2.original.flops / s.original_cost.flops:.1%} of "
                                         f"the original", 8000)

        return self._start(f"pipeline ({cfg.pipeline})", gen, done, self.pipeline.on_event)

    def export_pipeline_recipe(self, cfg, path: str | None = None) -> dict | None:
        """The recipe ``run --recipe`` executes for this pipeline on the current model."""
        from studio.core.export.common import make_recipe, save_recipe

        s = self.session
        path = path or self._ask_path("Export recipe", "recipe.json", "Recipe (*.json)")
        if not path or not s.loaded:
            return None
        base = self.recipe()
        pc = cfg.as_dict()
        ft = pc.pop("finetune")
        rec = make_recipe(base["model"], base["plans"][:len(s.lm.plans) - len(s.original.plans)],
                          data=s.data_spec, finetune={"epochs": ft["epochs"],
                                                      "kd_weight": ft["kd_weight"]},
                          pipeline={k: pc[k] for k in ("pipeline", "rounds", "candidates",
                                                       "generations", "criterion", "seed")},
                          target={"flops": pc["flops_target"], "criterion": pc["criterion"]})
        if rec["plans"]:  # plans already applied in the session come first, then the job
            rec["applied_plans"] = rec.pop("plans")
        save_recipe(rec, path)
        self.statusBar().showMessage(f"wrote {path}", 5000)
        return rec

    # -- plans and exports ---------------------------------------------------------------
    def load_plan(self) -> None:
        from studio.core import Plan, validate
        from studio.core.errors import StudioError

        p, _ = QFileDialog.getOpenFileName(self, "Load plan", "", "Plan (*.json)")
        if not p or not self.session.loaded:
            return
        try:
            plan = Plan.load(p)
            validate(plan, self.session.structure)
        except StudioError as e:
            dialogs.error_box(self, "Cannot load plan", str(e))
            return
        self.session.replace_plan(plan, f"load plan {Path(p).name}")

    def save_plan(self, path: str | None = None) -> None:
        if not self.session.loaded:
            return
        path = path or QFileDialog.getSaveFileName(self, "Save plan", "plan.json",
                                                   "Plan (*.json)")[0]
        if path:
            self.session.plan.save(path)
            self.statusBar().showMessage(f"saved {path}", 4000)

    def _ask_path(self, title: str, default: str, filt: str, folder: bool = False):
        if folder:
            return QFileDialog.getSaveFileName(self, title, default, "Folder (*)")[0]
        return QFileDialog.getSaveFileName(self, title, default, filt)[0]

    def export_model(self, path: str | None = None):
        """Save the current model (the CLI's folder format) in a worker: large weights
        must not freeze the window."""
        s = self.session
        path = path or self._ask_path("Export pruned model (folder)", "pruned-model", "",
                                      folder=True)
        if not path or not s.loaded:
            return None
        lm = s.lm
        report = {"model": lm.name, "before": s.original_cost.as_dict(),
                  "after": s.structure.original.as_dict(), "results": s.results}

        def gen(token):
            from studio.core import save_pruned

            yield core_jobs.progress(0, 1, "saving the model")
            return save_pruned(path, lm, lm.model, None, report)

        return self._start("export model", gen,
                           lambda out: self.statusBar().showMessage(f"exported {out}", 5000))

    def export_onnx(self, path: str | None = None) -> None:
        s = self.session
        path = path or self._ask_path("Export ONNX", "model.onnx", "ONNX (*.onnx)")
        if not path or not s.loaded:
            return
        model, size = s.lm.model, s.lm.input_size

        def gen(token):
            from studio.core.export.common import export_onnx

            yield core_jobs.progress(0, 1, "exporting ONNX")
            return export_onnx(model, size, path)

        self._start("export ONNX", gen, lambda r: self.statusBar().showMessage(
            f"wrote {r['path']} (onnxruntime max |diff| {r['max_abs_diff']:.1e})"
            + (f" — {r['hint']}" if r.get("hint") else ""), 15000))

    def recipe(self, finetune: dict | None = None) -> dict:
        """What ``run --recipe`` needs to redo this session headless: the original model,
        every applied plan and the one being edited, in order."""
        from studio.core.export.common import make_recipe

        s = self.session
        src = dict(s.original.source) if s.original else {}
        if s.original is not None and s.original.folder:
            src = {"spec": s.original.folder}
        plans = list(s.lm.plans[len(s.original.plans):]) if s.original else []
        if s.plan is not None and not s.plan.is_empty():
            plans.append(s.plan.to_dict())
        return make_recipe(src, plans, data=s.data_spec, finetune=finetune)

    def export_recipe(self, path: str | None = None) -> None:
        from studio.core.export.common import save_recipe

        path = path or self._ask_path("Export recipe", "recipe.json", "Recipe (*.json)")
        if path and self.session.loaded:
            save_recipe(self.recipe(), path)
            self.statusBar().showMessage(f"wrote {path}", 5000)

    def export_report(self, path: str | None = None) -> Path | None:
        import pyqtgraph.exporters as exporters
        from PySide6.QtCore import QBuffer, QIODevice

        from studio.core.export.common import html_report, plan_steps

        s = self.session
        path = path or self._ask_path("Export report", "report.html", "HTML (*.html)")
        if not path or not s.loaded:
            return None

        def png(item) -> bytes:
            img = exporters.ImageExporter(item)
            img.parameters()["width"] = 900
            qimg = img.export(toBytes=True)
            buf = QBuffer()
            buf.open(QIODevice.WriteOnly)
            qimg.save(buf, "PNG")
            return bytes(buf.data())

        images = {"Channel widths (original vs planned)": png(self.widths.plot.getPlotItem()),
                  "Importance heatmap": png(self.heatmap.plot)}
        if self.charts.epochs:
            images["Fine-tuning accuracy"] = png(self.charts.acc_plot)
        if len(s.history) > 1:
            images["Cost over prune steps"] = png(self.charts.cost_plot)
            images["Per-layer widths: original vs current"] = png(
                self.compare.plot.getPlotItem())
        widths = self.compare.widths()
        plan_lines = [f"{len(s.lm.plans)} prune step(s) applied to {s.original.name}",
                      *plan_steps(s.lm.plans)]
        if not s.plan.is_empty():
            plan_lines.append(f"pending (not applied): {s.plan.n_removed()} channels, "
                              f"{len(s.plan.drop_blocks)} blocks")
        out = html_report(path, title=f"Pruning report — {s.original.name}",
                          summary={"model": s.lm.name, "architecture": s.lm.arch,
                                   "input size": "×".join(map(str, s.lm.input_size)),
                                   "data": s.data_spec or "—"},
                          metrics=[(n, a, b) for n, a, b in self.compare.rows()],
                          images=images, plan_summary=plan_lines, widths=widths)
        self.statusBar().showMessage(f"wrote {out}", 5000)
        return out

    # -- recovery and closing ------------------------------------------------------------
    def autosave(self) -> None:
        if not self.session.loaded:
            return
        from studio.core.io import atomic_write_text

        snap = self.session.snapshot()
        if snap["plans"]:
            snap["folder"] = str(studio_home() / "recovery-model")
        atomic_write_text(studio_home() / "recovery.json", json.dumps(snap))

    @staticmethod
    def recovery_file() -> Path:
        return studio_home() / "recovery.json"

    def restore(self, snap: dict):
        """Reload a recovered session: its model (the recovery copy when pruned) and plan."""
        from studio.core import Plan

        src = snap.get("source") or {}
        if snap.get("folder") and Path(snap["folder"]).is_dir():
            req = {"spec": snap["folder"]}
        elif src.get("demo"):
            req = {"spec": "demo"}
        elif src.get("file"):
            req = {"spec": src["file"], "arch": src.get("arch")}
        else:
            req = {"spec": src.get("arch", "demo")}
        self.session.data_spec = snap.get("data")
        job = self.load(req)
        if job is not None and snap.get("plan"):
            def apply_plan(_res):
                try:
                    plan = Plan.from_dict(snap["plan"])
                    if plan.fingerprint == self.session.structure.fingerprint:
                        self.session.replace_plan(plan, "restored plan")
                except Exception as e:  # noqa: BLE001 - a stale file must not stop the window
                    log.warning("recovery plan not restored: %s", e)
            job.finished.connect(apply_plan)
        return job

    def closeEvent(self, ev):  # noqa: N802
        if self.jobs.busy():
            r = QMessageBox.question(self, "A job is running",
                                     "A job is still running. Cancel it and quit?",
                                     QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            if r != QMessageBox.Yes:
                ev.ignore()
                return
        self.jobs.wait_all()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.recovery_file().unlink(missing_ok=True)  # a clean exit needs no recovery
        ev.accept()

