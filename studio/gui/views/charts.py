"""Live charts: loss and top-1/top-5 while fine-tuning, and FLOPs/params over the session's
prune steps. Curves are created once and fed numpy arrays; redraws are throttled."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget
from superqt.utils import qthrottled


class ChartsView(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground("w")
        self.loss_plot = self.glw.addPlot(title="training loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setClipToView(True)
        self.loss_plot.setDownsampling(mode="peak", auto=True)
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen(52, 120, 198, width=1.5))
        self.acc_plot = self.glw.addPlot(title="accuracy")
        self.acc_plot.setLabel("bottom", "epoch")
        self.acc_plot.addLegend(offset=(-10, -10))
        self.acc_plot.setYRange(0, 1)
        self.top1 = self.acc_plot.plot(
            pen=pg.mkPen(46, 125, 50, width=2), symbol="o", symbolSize=5, name="val top-1"
        )
        self.top5 = self.acc_plot.plot(pen=pg.mkPen(129, 199, 132, width=2), name="val top-5")
        self.train1 = self.acc_plot.plot(
            pen=pg.mkPen(150, 150, 150, style=Qt.DashLine), name="train top-1"
        )
        self.cost_plot = self.glw.addPlot(title="cost over prune steps (share of original)")
        self.cost_plot.setLabel("bottom", "prune step")
        self.cost_plot.addLegend(offset=(-10, 10))
        self.cost_plot.setYRange(0, 1.05)
        self.flops_curve = self.cost_plot.plot(
            pen=pg.mkPen(52, 120, 198, width=2), symbol="s", symbolSize=6, name="FLOPs"
        )
        self.params_curve = self.cost_plot.plot(
            pen=pg.mkPen(239, 140, 32, width=2), symbol="t", symbolSize=6, name="params"
        )
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.glw)
        self.clear()
        session.historyChanged.connect(self._history)

    def start_run(self) -> None:
        self.clear()

    def has_data(self) -> bool:
        return bool(self.epochs)

    def clear(self) -> None:
        self.steps, self.losses = [], []
        self.epochs, self.v1, self.v5, self.t1 = [], [], [], []
        self._redraw()

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

    @qthrottled(timeout=400)  # ~2.5 redraws/s: each takes the GIL from the training thread
    def _redraw(self) -> None:
        self.loss_curve.setData(np.asarray(self.steps, float), np.asarray(self.losses, float))
        e = np.asarray(self.epochs, float)
        self.top1.setData(e, np.asarray(self.v1, float))
        self.top5.setData(e, np.asarray(self.v5, float))
        self.train1.setData(e, np.asarray(self.t1, float))

    def _history(self) -> None:
        h = self.session.history
        if not h:
            return
        x = np.arange(len(h), dtype=float)
        f0, p0 = h[0]["flops"], h[0]["params"]
        self.flops_curve.setData(x, np.array([e["flops"] / f0 for e in h]))
        self.params_curve.setData(x, np.array([e["params"] / p0 for e in h]))
        ax = self.cost_plot.getAxis("bottom")
        ax.setTicks([[(i, e["label"][:14]) for i, e in enumerate(h)]])
