"""Auto-select: criterion, scope, FLOPs target slider, round_to, protected layers. Moving
the slider replaces the plan live (one undo step per drag). The slider always shows the
share of the current model's FLOPs that the plan keeps: it follows undo, redo, a loaded
plan, clicks in the heatmap and Apply."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.plan.plan import predict
from studio.core.plan.selection import select
from studio.core.plan.target import LATENCY_STEP, MIN_LATENCY_STEP
from studio.gui.views.criterion import CriterionPicker

SCOPE_TIPS = {
    "global": "Rank every group's channels together (scores normalised per group)",
    "uniform": "Remove the same share of every group",
    "latency": "Remove channels where they save the most time measured on this machine "
    "(each layer timed alone at the batch below, under the deploy treatment; a job). Pays "
    "off at batch 16 and more on CPUs; no group loses more than half its channels",
}


class AutoSelectView(QWidget):
    scoreRequested = Signal(str)
    latencyRequested = Signal(dict)
    message = Signal(str)

    def __init__(self, session, criteria: list[str], data_criteria: set[str], parent=None):
        super().__init__(parent)
        self.session = session
        self.crit = CriterionPicker(session, criteria, data_criteria)
        self.scope = QComboBox()
        for i, (name, tip) in enumerate(SCOPE_TIPS.items()):
            self.scope.addItem(name)
            self.scope.setItemData(i, tip, Qt.ToolTipRole)
        self.scope.setToolTip("How the plan is spread over the groups (hover the choices)")
        self.lat_batch = QSpinBox()
        self.lat_batch.setRange(1, 256)
        self.lat_batch.setValue(16)
        self.lat_batch.setToolTip(
            "The batch size the layers are timed at: the one you will run the model at"
        )
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(5, 100)
        self.slider.setValue(100)
        self.slider.setTracking(True)
        self.slider.setMinimumWidth(80)
        self.slider.setToolTip(
            "Keep this share of the current model's FLOPs (100%: no pruning). Follows the "
            "plan however it was edited."
        )
        self.target_label = QLabel("100%")
        self.target_label.setMinimumWidth(36)
        for combo in (self.crit, self.scope):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self.round_to = QSpinBox()
        self.round_to.setRange(1, 64)
        self.protect = QLineEdit(placeholderText="layer names, comma-separated")
        self.apply_btn = QPushButton("Select to target")
        self.clear_btn = QPushButton("Clear plan")
        form = QFormLayout()
        form.addRow("Criterion", self.crit)
        form.addRow("Scope", self.scope)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.target_label)
        form.addRow("Keep FLOPs", row)
        form.addRow("Round channels to", self.round_to)
        form.addRow("Latency batch", self.lat_batch)
        self._form = form
        form.addRow("Protected layers", self.protect)
        btns = QHBoxLayout()
        btns.addWidget(self.apply_btn)
        btns.addWidget(self.clear_btn)
        btns.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(btns)
        lay.addStretch(1)
        self.slider.valueChanged.connect(self._slider)
        self.scope.currentTextChanged.connect(self._scope_changed)
        self._scope_changed(self.scope.currentText())
        self.slider.sliderReleased.connect(self._released)
        self.apply_btn.clicked.connect(lambda: self.run(merge=False))
        self.clear_btn.clicked.connect(session.clear_plan)
        self.crit.scoreRequested.connect(self.scoreRequested)
        session.scoresChanged.connect(self._scores_arrived)
        session.planChanged.connect(self._follow_plan)
        self._pending = False

    def sizeHint(self):  # noqa: N802
        from PySide6.QtCore import QSize

        return QSize(380, 260)

    def _scope_changed(self, scope: str) -> None:
        latency = scope == "latency"
        self._form.setRowVisible(self.lat_batch, latency)
        if latency and self.round_to.value() < MIN_LATENCY_STEP:
            self.round_to.setValue(LATENCY_STEP)
        # the latency scope moves in steps of this many channels: finer ones time noise
        self.round_to.setMinimum(MIN_LATENCY_STEP if latency else 1)
        self.apply_btn.setToolTip(
            "Time the layers at the latency batch (a job; the table is kept for next time), "
            "then select to the FLOPs share on the slider"
            if latency
            else "Select to the FLOPs share on the slider"
        )

    def _scores_arrived(self, c: str) -> None:
        if self._pending and c == self.crit.currentData():
            self._pending = False
            self.run(merge=False)

    def _follow_plan(self) -> None:
        """Show what the plan keeps, unless the user is dragging the slider."""
        s = self.session
        if not s.loaded or self.slider.isSliderDown():
            return
        share = (
            s.predicted().flops / s.structure.original.flops if s.structure.original.flops else 1
        )
        v = min(max(int(round(share * 100)), self.slider.minimum()), 100)
        self.slider.blockSignals(True)
        self.slider.setValue(v)
        self.slider.blockSignals(False)
        self.target_label.setText(f"{share:.0%}")

    def _slider(self, v: int) -> None:
        self.target_label.setText(f"{v}%")
        if self.slider.isSliderDown() and self.scope.currentText() != "latency":
            self.run(merge=True)

    def _released(self) -> None:
        if self.scope.currentText() != "latency":  # a measuring job: on the button only
            self.run(merge=True)

    def target(self) -> float:
        return self.slider.value() / 100

    def run(self, merge: bool) -> None:
        s = self.session
        if not s.loaded:
            return
        c = self.crit.currentData()
        scores = s.scores.get(c)
        if scores is None:
            self._pending = True
            self.scoreRequested.emit(c)
            return
        t = self.target()
        protect = [p.strip() for p in self.protect.text().split(",") if p.strip()]
        if self.scope.currentText() == "latency" and t < 1.0:
            self.latencyRequested.emit(
                {
                    "criterion": c,
                    "flops_target": t,
                    "round_to": self.round_to.value(),
                    "latency_batch": self.lat_batch.value(),
                    "protect": protect,
                    "drop_blocks": list(s.plan.drop_blocks),
                }
            )
            return
        try:
            if t >= 1.0:
                from studio.core.plan.plan import Plan

                plan = Plan.empty(s.structure)
                plan.drop_blocks = list(s.plan.drop_blocks)
            else:
                plan = select(
                    s.structure,
                    scores,
                    flops_target=t,
                    scope=self.scope.currentText(),
                    round_to=self.round_to.value(),
                    protect=protect,
                    drop_blocks=list(s.plan.drop_blocks),
                    meta={"criterion": c},
                )
        except StudioError as e:
            self.message.emit(str(e))
            self._follow_plan()  # the plan did not change: the slider shows what it keeps
            return
        full = s.structure.original.flops
        got = predict(plan, s.structure).flops / full if full and t < 1.0 else t
        label = f"auto-select {c} to {got:.0%} FLOPs"
        if abs(got - t) > 0.02:
            how = []
            if self.round_to.value() > 1:
                how.append(f"channels kept in multiples of {self.round_to.value()}")
            if self.scope.currentText() == "uniform":
                how.append("the same share from every group")
            if s.plan.drop_blocks:
                how.append(f"{len(s.plan.drop_blocks)} dropped blocks")
            if protect:
                how.append("protected layers")
            if not how:
                how.append("the nearest reachable")
            self.message.emit(
                f"asked {t:.0%} of the FLOPs; the nearest plan keeps {got:.0%}"
                + (f" ({', '.join(how)})" if how else "")
            )
            label += f" (asked {t:.0%})"
        s.replace_plan(plan, label, merge_id=s.MERGE_AUTOSELECT if merge else -1)
