"""Channel widths: every conv/linear layer's output channels, original (grey) and planned
(blue) -- the network's shape at a glance. Clicking a bar focuses that layer's group."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.gui.views.plotting import cache_axes

ORIGINAL = pg.mkBrush(205, 205, 205)
PLANNED = pg.mkBrush(52, 120, 198)
FOCUSED = pg.mkBrush(239, 140, 32)


class WidthsView(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.layers: list[str] = []
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("left", "output channels")
        self.plot.setLabel("bottom", "layer (execution order)")
        self.plot.showGrid(y=True, alpha=0.2)
        cache_axes(self.plot.getPlotItem())
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        self.orig = pg.BarGraphItem(x=[], height=[], width=0.85, brush=ORIGINAL, pen=None)
        self.planned = pg.BarGraphItem(x=[], height=[], width=0.55, brush=PLANNED, pen=None)
        self.plot.addItem(self.orig)
        self.plot.addItem(self.planned)
        legend = self.plot.addLegend(offset=(-10, 10))
        legend.addItem(self.orig, "original")
        legend.addItem(self.planned, "planned")
        self.info = QLabel(" ")
        self.info.setStyleSheet("color:#555")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot)
        lay.addWidget(self.info)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self.plot.scene().sigMouseMoved.connect(self._hover)
        session.modelChanged.connect(self._reload)
        session.planChanged.connect(self._update)
        session.focusChanged.connect(lambda _g: self._update())

    def _reload(self) -> None:
        s = self.session.structure
        kinds = {r.name: r.kind for r in s.table.rows}
        self.layers = [n for n in s.table.executed_order if kinds.get(n) in ("conv", "linear")]
        self.owner = s.layer_groups()
        idx = s.table.index
        self.x = np.arange(len(self.layers))
        self.h0 = np.array([s.table.cout[idx[n]] for n in self.layers], dtype=float)
        self.orig.setOpts(x=self.x, height=self.h0)
        self.plot.setXRange(-1, len(self.layers), padding=0.01)
        self.plot.setYRange(0, float(self.h0.max()) * 1.05 if len(self.h0) else 1)
        self._update()

    def _update(self) -> None:
        if not self.layers:
            return
        widths = self.session.widths()
        h = np.array([widths.get(n, (0, 0))[1] for n in self.layers], dtype=float)
        focus = self.session.focus
        brushes = [
            FOCUSED if focus and self.owner.get(n) == focus else PLANNED for n in self.layers
        ]
        self.planned.setOpts(x=self.x, height=h, brushes=brushes)

    def _index_at(self, scene_pos) -> int | None:
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return None
        x = vb.mapSceneToView(scene_pos).x()
        i = int(round(x))
        return i if 0 <= i < len(self.layers) else None

    def _hover(self, pos) -> None:
        i = self._index_at(pos)
        if i is None:
            return
        n = self.layers[i]
        w = self.session.widths().get(n, (0, 0))[1]
        self.info.setText(
            f"{n}: {int(self.h0[i])} → {w} channels   (group "
            f"{self.owner.get(n, '—')}; click to focus)"
        )

    def _clicked(self, ev) -> None:
        if ev.button() != Qt.LeftButton:
            return
        i = self._index_at(ev.scenePos())
        if i is not None:
            self.session.set_focus(self.owner.get(self.layers[i]))
