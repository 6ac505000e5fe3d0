"""Pipelines panel: choose a pipeline and its settings, start or cancel it, watch it live --
accuracy and FLOPs per round (iterative), held-out accuracy vs FLOPs of every candidate with
the Pareto front and the chosen one (sampling, search), sensitivity curves per group (click
one to focus its group; the suggested plan is applied as an undoable edit)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.criteria import ALL as CRITERIA

MODES = [
    ("iterative", "Iterative prune → fine-tune"),
    ("sampling", "Sub-model sampling"),
    ("search", "Evolutionary search"),
    ("sensitivity", "Sensitivity analysis"),
    ("oneshot", "One-shot"),
    ("abc", "ABCPruner (bee colony)"),
    ("amc", "AMC (reinforcement learning)"),
    ("metapruning", "MetaPruning (PruningNet)"),
]
# pipelines that compare candidate sub-models (the FLOPs/accuracy scatter)
CANDIDATES = ("sampling", "search", "abc", "amc", "metapruning")


def pareto(points: np.ndarray) -> np.ndarray:
    """Indices of the points not dominated in (lower FLOPs, higher accuracy), by FLOPs."""
    order = np.argsort(points[:, 0], kind="stable")
    front, best = [], -np.inf
    for i in order:
        if points[i, 1] > best:
            front.append(i)
            best = points[i, 1]
    return np.asarray(front, dtype=int)


class PipelineView(QWidget):
    startRequested = Signal(object)  # a PipelineConfig
    exportRequested = Signal(object)

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.mode = QComboBox()
        for key, label in MODES:
            self.mode.addItem(label, key)
        self.crit = QComboBox()
        self.crit.addItems(list(CRITERIA))
        self.target = QDoubleSpinBox(
            decimals=2, minimum=0.05, maximum=0.95, value=0.3, singleStep=0.05
        )
        self.rounds = QSpinBox(minimum=1, maximum=20, value=3)
        self.cands = QSpinBox(minimum=2, maximum=500, value=12)
        self.gens = QSpinBox(minimum=1, maximum=50, value=3)
        self.episodes = QSpinBox(minimum=2, maximum=2000, value=40)
        self.meta_epochs = QSpinBox(minimum=1, maximum=100, value=2)
        self.epochs = QSpinBox(minimum=0, maximum=500, value=6)
        self.reconstruct = QCheckBox("reconstruct consumers (least squares)")
        self.reconstruct.setToolTip(
            "after pruning, refit the layers that consume pruned channels so their "
            "outputs match the original's (He et al. 2017): far better accuracy before "
            "fine-tuning"
        )
        self.kd = QCheckBox("distil from the original")
        self.kd.setChecked(True)
        self.start = QPushButton("Start")
        self.export = QPushButton("Export recipe…")
        self.apply_suggestion = QPushButton("Use suggested plan")
        self.apply_suggestion.setEnabled(False)
        self.suggest_target = QDoubleSpinBox(
            decimals=2, minimum=0.05, maximum=0.95, value=0.3, singleStep=0.05
        )
        form = QFormLayout()
        form.addRow("Pipeline", self.mode)
        form.addRow("Criterion", self.crit)
        form.addRow("FLOPs target", self.target)
        form.addRow("Rounds (iterative)", self.rounds)
        form.addRow("Candidates / population", self.cands)
        form.addRow("Generations / cycles", self.gens)
        form.addRow("Episodes (AMC)", self.episodes)
        form.addRow("PruningNet epochs", self.meta_epochs)
        form.addRow("Fine-tuning epochs (total)", self.epochs)
        form.addRow("", self.kd)
        form.addRow("", self.reconstruct)
        self.form = form
        self.mode.currentIndexChanged.connect(self._mode_changed)
        btns = QHBoxLayout()
        btns.addWidget(self.start)
        btns.addWidget(self.export)
        sug = QHBoxLayout()
        sug.addWidget(self.apply_suggestion)
        sug.addWidget(QLabel("at"))
        sug.addWidget(self.suggest_target)
        left = QVBoxLayout()
        left.addLayout(form)
        left.addLayout(sug)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color:#555")
        left.addWidget(self.status)
        left.addStretch(1)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        for ax in ("bottom", "left"):  # shares and accuracies: no "x0.001" SI scaling
            self.plot.getAxis(ax).enableAutoSIPrefix(False)
        # bottom right, see-through: the chosen point sits at the top (best accuracy)
        self.legend = self.plot.addLegend(
            offset=(-10, -10), brush=pg.mkBrush(255, 255, 255, 190), labelTextSize="8pt"
        )
        # The settings scroll on their own; the chart always gets the panel's full height
        # (a laptop's bottom dock is ~180 px tall).
        settings = QWidget()
        settings.setLayout(left)
        scroll = QScrollArea()
        scroll.setWidget(settings)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(settings.sizeHint().width() + 16)
        column = QVBoxLayout()  # Start and Export stay in view however short the panel
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(btns)
        column.addWidget(scroll, 1)
        self.plot.setMinimumHeight(100)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(column, 1)
        lay.addWidget(self.plot, 2)
        self.start.clicked.connect(lambda: self.startRequested.emit(self.config()))
        self.export.clicked.connect(lambda: self.exportRequested.emit(self.config()))
        self.apply_suggestion.clicked.connect(self._use_suggestion)
        self.sensitivity = None
        self.reset("")
        self._mode_changed()
        session.resultsChanged.connect(self._results)
        session.modelChanged.connect(self._model_changed)

    def _mode_changed(self) -> None:
        """Show only the settings the chosen pipeline reads."""
        mode = self.mode.currentData()
        used = {
            self.rounds: mode == "iterative",
            self.cands: mode in ("sampling", "search", "abc", "metapruning"),
            self.gens: mode in ("search", "abc", "metapruning"),
            self.episodes: mode == "amc",
            self.meta_epochs: mode == "metapruning",
        }
        for w, on in used.items():
            self.form.setRowVisible(w, on)

    def _results(self) -> None:
        sens = self.session.results.get("sensitivity")
        if sens is not None and sens is not self.sensitivity:
            self.finished_sensitivity(sens)

    def _model_changed(self) -> None:
        if self.sensitivity is not None and self.session.results.get("sensitivity") is None:
            self.sensitivity = None
            self.apply_suggestion.setEnabled(False)

    def config(self):
        from studio.core.pipelines.config import PipelineConfig
        from studio.core.train.finetune import FinetuneConfig

        return PipelineConfig(
            pipeline=self.mode.currentData(),
            criterion=self.crit.currentText(),
            flops_target=self.target.value(),
            rounds=self.rounds.value(),
            candidates=self.cands.value(),
            generations=self.gens.value(),
            episodes=self.episodes.value(),
            meta_epochs=self.meta_epochs.value(),
            reconstruct=self.reconstruct.isChecked(),
            finetune=FinetuneConfig(
                epochs=self.epochs.value(), kd_weight=0.5 if self.kd.isChecked() else 0.0
            ),
        )

    # -- live charts -------------------------------------------------------------------
    def reset(self, mode: str) -> None:
        self.plot.clear()
        self.legend.clear()
        self.points, self.rounds_data, self.curves = [], [], {}
        self.apply_suggestion.setEnabled(False)
        if mode in CANDIDATES:
            self.plot.setLabel("bottom", "FLOPs (share of original)")
            self.plot.setLabel("left", "held-out top-1")
            self.plot.getPlotItem().setToolTip(
                "each candidate: top-1 on held-out training images after its BatchNorm "
                "statistics are re-estimated"
            )
            self.scatter = pg.ScatterPlotItem(
                size=8, brush=pg.mkBrush(52, 120, 198, 160), pen=None, name="candidates"
            )
            self.front = pg.PlotDataItem(pen=pg.mkPen(239, 140, 32, width=2), name="Pareto front")
            self.best = pg.ScatterPlotItem(
                size=14, symbol="star", brush=pg.mkBrush(220, 30, 30), name="chosen"
            )
            for it in (self.scatter, self.front, self.best):
                self.plot.addItem(it)
        elif mode == "sensitivity":
            self.plot.setLabel("bottom", "share of the group's channels removed")
            self.plot.setLabel("left", "held-out top-1")
        else:
            self.plot.setLabel("bottom", "round")
            self.plot.setLabel("left", "share / top-1")
            self.acc_curve = self.plot.plot(
                pen=pg.mkPen(46, 125, 50, width=2), symbol="o", name="val top-1"
            )
            self.flops_curve = self.plot.plot(
                pen=pg.mkPen(52, 120, 198, width=2), symbol="s", name="FLOPs"
            )

    def on_event(self, ev: dict) -> None:
        t = ev.get("type")
        if t == "round":
            self.rounds_data.append((ev["round"], ev["val_top1"], ev["flops"] / ev["base_flops"]))
            r = np.array(self.rounds_data, float)
            self.acc_curve.setData(r[:, 0], r[:, 1])
            self.flops_curve.setData(r[:, 0], r[:, 2])
            self.status.setText(
                f"round {ev['round']}/{ev['rounds']}: top-1 "
                f"{ev['val_top1']:.4f} at {r[-1, 2]:.0%} FLOPs"
            )
        elif t == "candidate":
            self.points.append((ev["flops"] / ev["base_flops"], ev["heldout_top1"]))
            p = np.array(self.points, float)
            self.scatter.setData(p[:, 0], p[:, 1])
            f = pareto(p)
            self.front.setData(p[f, 0], p[f, 1])
            b = int(np.argmax(p[:, 1]))
            self.best.setData([p[b, 0]], [p[b, 1]])
            self.status.setText(
                f"{len(p)}/{ev['total']} candidates; best held-out top-1 {p[b, 1]:.4f}"
            )
        elif t == "curve":
            i = len(self.curves)
            color = pg.intColor(i, hues=12)
            item = self.plot.plot(
                ev["ratios"],
                ev["top1"],
                pen=pg.mkPen(color, width=2),
                symbol="o",
                symbolSize=4,
                symbolBrush=color,
                name=ev["group"][:22],
            )
            item.setCurveClickable(True)
            item.sigClicked.connect(lambda _it, _ev=None, g=ev["group"]: self.session.set_focus(g))
            self.curves[ev["group"]] = item
            self.status.setText(
                f"sensitivity: {len(self.curves)} groups done (click a curve to focus its group)"
            )

    def finished_sensitivity(self, sens: dict) -> None:
        self.sensitivity = sens
        self.apply_suggestion.setEnabled(True)
        self.status.setText(
            f"sensitivity done: {sens['evaluations']} evaluations; base "
            f"held-out top-1 {sens['base_top1']:.4f}"
        )

    def _use_suggestion(self) -> None:
        from studio.core.pipelines.sensitivity import suggest_ratios

        s = self.session
        if self.sensitivity is None or not s.loaded:
            return
        scores = s.scores.get(self.crit.currentText()) or s.scores.get("l1")
        if set(self.sensitivity["curves"]) - set(s.structure.group_index):
            self.status.setText("the model changed since the analysis: run it again")
            return
        plan = suggest_ratios(s.structure, scores, self.sensitivity, self.suggest_target.value())
        s.replace_plan(plan, f"sensitivity plan at {self.suggest_target.value():.0%} FLOPs")
