"""Live charts: loss and top-1/top-5 while fine-tuning, and FLOPs/params over the session's
prune steps -- with TensorBoard's basics: values on hover, smoothing of the loss (raw curve
faint, smoothed bold), axes that fit the data with integer epochs, earlier runs of the
session overlaid, a note instead of empty axes, and export of each chart as PNG or SVG.
Curves are created once and fed numpy arrays; redraws are throttled."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import qthrottled

from studio.gui.views.plotting import Hover, IntAxis, placeholder, show_placeholder

KEY = (  # the charts' legend, outside the small plots (hover a curve for its values)
    "<span style='color:#2e7d32'>━</span> val top-1 &nbsp;<span style='color:#81c784'>━"
    "</span> val top-5 &nbsp;<span style='color:#969696'>┅</span> train top-1 &nbsp;"
    "<span style='color:#ba96c8'>┈</span> earlier runs &nbsp;│&nbsp; <span "
    "style='color:#3478c6'>━</span> FLOPs &nbsp;<span style='color:#ef8c20'>━</span> params"
)
EARLIER = [(150, 150, 150), (186, 150, 200), (200, 170, 120), (120, 170, 190)]


def smooth(y: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    if weight <= 0 or len(y) == 0:
        return y
    out = np.empty(len(y))
    last, norm = 0.0, 0.0
    for i, v in enumerate(y):
        last = last * weight + (1 - weight) * v
        norm = norm * weight + (1 - weight)
        out[i] = last / norm
    return out


class ChartsView(QWidget):
    exportRequested = Signal(object, str)  # a plot item, its name

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground("w")
        self.loss_plot = self.glw.addPlot(title="training loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setClipToView(True)
        self.loss_plot.setDownsampling(mode="peak", auto=True)
        self.loss_raw = self.loss_plot.plot(pen=pg.mkPen(52, 120, 198, 70, width=1))
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen(52, 120, 198, width=2))
        self.acc_plot = self.glw.addPlot(title="accuracy", axisItems={"bottom": IntAxis("bottom")})
        self.acc_plot.setLabel("bottom", "epoch")
        self.top1 = self.acc_plot.plot(
            pen=pg.mkPen(46, 125, 50, width=2), symbol="o", symbolSize=5, name="val top-1"
        )
        self.top5 = self.acc_plot.plot(pen=pg.mkPen(129, 199, 132, width=2), name="val top-5")
        self.train1 = self.acc_plot.plot(
            pen=pg.mkPen(150, 150, 150, style=Qt.DashLine), name="train top-1"
        )
        self.earlier: list = []  # curves of earlier runs (val top-1)
        self.cost_plot = self.glw.addPlot(
            title="cost over prune steps (share of original)",
            axisItems={"bottom": IntAxis("bottom")},
        )
        self.cost_plot.setLabel("bottom", "step of the session")
        # Shares of the original: 0 to 1 always, so a 0.2% step does not look like a cliff.
        self.cost_plot.setYRange(0, 1.05, padding=0)
        self.cost_plot.getViewBox().setMouseEnabled(y=False)
        self.cost_plot.enableAutoRange(axis="y", enable=False)
        self.flops_curve = self.cost_plot.plot(
            pen=pg.mkPen(52, 120, 198, width=2), symbol="s", symbolSize=6, name="FLOPs"
        )
        self.params_curve = self.cost_plot.plot(
            pen=pg.mkPen(239, 140, 32, width=2), symbol="t", symbolSize=6, name="params"
        )
        for p in (self.loss_plot, self.acc_plot, self.cost_plot):
            p.setMenuEnabled(False)
            p.showGrid(y=True, alpha=0.15)
            for ax in ("left", "bottom"):
                p.getAxis(ax).enableAutoSIPrefix(False)
        self.notes = {
            self.loss_plot: placeholder(self.loss_plot, "no fine-tuning yet\nModel ▸ Fine-tune…"),
            self.acc_plot: placeholder(self.acc_plot, "accuracy per epoch\nappears here"),
            self.cost_plot: placeholder(self.cost_plot, "apply a plan to see\nthe cost per step"),
        }
        self.hovers = {
            "loss": Hover(
                self.loss_plot, {"loss": self.loss_curve, "raw": self.loss_raw}, x_name="step"
            ),
            "acc": Hover(
                self.acc_plot,
                {"val top-1": self.top1, "val top-5": self.top5, "train top-1": self.train1},
                x_name="epoch",
            ),
            "cost": Hover(
                self.cost_plot,
                {"FLOPs": self.flops_curve, "params": self.params_curve},
                fmt="{:.1%}",
                x_name="step",
            ),
        }
        self.smoothing = QSlider(Qt.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setMaximumWidth(140)
        self.smoothing.setToolTip("Smoothing of the loss (exponential moving average)")
        self.smooth_label = QLabel("0.60")
        self.show_earlier = QCheckBox("earlier runs")
        self.show_earlier.setChecked(True)
        self.show_earlier.setToolTip("Overlay the val top-1 of this session's earlier runs")
        self.export_btn = QToolButton(text="Export chart ▾")
        self.export_btn.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.export_btn)
        for name, plot in (
            ("training loss", self.loss_plot),
            ("accuracy", self.acc_plot),
            ("cost over steps", self.cost_plot),
        ):
            menu.addAction(name, lambda p=plot, n=name: self.exportRequested.emit(p, n))
        self.export_btn.setMenu(menu)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Smoothing"))
        bar.addWidget(self.smoothing)
        bar.addWidget(self.smooth_label)
        bar.addSpacing(12)
        bar.addWidget(self.show_earlier)
        bar.addStretch(1)
        key = QLabel(KEY)
        key.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # never widens the dock
        key.setMinimumWidth(0)
        bar.addWidget(key, 3)
        bar.addStretch(1)
        bar.addWidget(self.export_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        lay.addLayout(bar)
        lay.addWidget(self.glw, 1)
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.show_earlier.toggled.connect(lambda _on: self._draw_earlier())
        self.clear()
        session.historyChanged.connect(self._history)
        session.modelChanged.connect(self._history)

    def _smoothing_changed(self, v: int) -> None:
        self.smooth_label.setText(f"{v / 100:.2f}")
        self._redraw()

    def start_run(self) -> None:
        self.clear()
        self._draw_earlier()

    def has_data(self) -> bool:
        return bool(self.epochs)

    def clear(self) -> None:
        self.steps, self.losses = [], []
        self.epochs, self.v1, self.v5, self.t1 = [], [], [], []
        self._redraw()

    def _draw_earlier(self) -> None:
        for c in self.earlier:
            self.acc_plot.removeItem(c)
        self.earlier = []
        if not self.show_earlier.isChecked():
            return
        for i, run in enumerate(self.session.runs[-4:]):
            ep = run["epochs"]
            if not ep:
                continue
            color = EARLIER[i % len(EARLIER)]
            c = self.acc_plot.plot(
                np.array([e["epoch"] for e in ep], float),
                np.array([e["val_top1"] for e in ep], float),
                pen=pg.mkPen(*color, width=1.5, style=Qt.DotLine),
                name=f"{run['label']} (val top-1)",
            )
            self.earlier.append(c)
            self.hovers["acc"].curves[run["label"]] = c
        self._placeholders()

    def on_event(self, ev: dict) -> None:
        """Feed fine-tuning events (called for every event; drawing is throttled)."""
        if ev.get("type") == "step":
            self.steps.append(ev["step"])
            self.losses.append(ev["loss"])
        elif ev.get("type") == "epoch":
            self.epochs.append(ev["epoch"])
            self.v1.append(ev["val_top1"])
            self.v5.append(ev["val_top5"])
            self.t1.append(ev["train_top1"])
        self._redraw()

    @qthrottled(timeout=1000)  # one redraw a second: each takes CPU from the training threads
    def _redraw(self) -> None:
        x = np.asarray(self.steps, float)
        y = np.asarray(self.losses, float)
        w = self.smoothing.value() / 100
        self.loss_raw.setData(x, y)
        self.loss_raw.setVisible(w > 0)
        self.loss_curve.setData(x, smooth(y, w))
        e = np.asarray(self.epochs, float)
        self.top1.setData(e, np.asarray(self.v1, float))
        self.top5.setData(e, np.asarray(self.v5, float))
        self.train1.setData(e, np.asarray(self.t1, float))
        self._placeholders()

    def _placeholders(self) -> None:
        show_placeholder(self.loss_plot, self.notes[self.loss_plot], not self.steps)
        has_acc = bool(self.epochs) or bool(self.earlier)
        show_placeholder(self.acc_plot, self.notes[self.acc_plot], not has_acc)
        show_placeholder(self.cost_plot, self.notes[self.cost_plot], len(self.session.history) < 2)

    def _history(self) -> None:
        h = self.session.history
        if not h:
            return
        x = np.arange(len(h), dtype=float)
        f0, p0 = h[0]["flops"], h[0]["params"]
        self.flops_curve.setData(x, np.array([e["flops"] / f0 for e in h]))
        self.params_curve.setData(x, np.array([e["params"] / p0 for e in h]))
        self._placeholders()
