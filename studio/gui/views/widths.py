"""Channel widths: every conv/linear layer's output channels, original (grey) and planned
(blue) -- the network's shape at a glance. Layer names label the bars as far as they fit
(all of them once zoomed in: wheel or drag); hovering a bar names it with its widths, and
clicking it focuses its group in every view."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.gui.views.plotting import LabelAxis, cache_axes, placeholder, show_placeholder

ORIGINAL = pg.mkBrush(205, 205, 205)
PLANNED = pg.mkBrush(52, 120, 198)
FOCUSED = pg.mkBrush(239, 140, 32)


class WidthsView(QWidget):
    KEY = (
        "<span style='color:#999'>■</span> original &nbsp; <span style='color:#3478c6'>■"
        "</span> planned &nbsp; <span style='color:#ef8c20'>■</span> focused group &nbsp;·"
        "&nbsp; hover a bar for its layer, click to focus its group"
    )

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.layers: list[str] = []
        self.names = LabelAxis("bottom", spacing_px=110)
        self.plot = pg.PlotWidget(background="w", axisItems={"bottom": self.names})
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("left", "output channels")
        self.plot.setLabel("bottom", "layer, in execution order (wheel to zoom, hover for names)")
        self.plot.showGrid(y=True, alpha=0.2)
        cache_axes(self.plot.getPlotItem())
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        self.orig = pg.BarGraphItem(x=[], height=[], width=0.85, brush=ORIGINAL, pen=None)
        self.planned = pg.BarGraphItem(x=[], height=[], width=0.55, brush=PLANNED, pen=None)
        self.plot.addItem(self.orig)
        self.plot.addItem(self.planned)
        self.empty_note = placeholder(self.plot.getPlotItem(), "open a model to see its widths")
        show_placeholder(self.plot.getPlotItem(), self.empty_note, True)
        self.info = QLabel(self.KEY)
        self.info.setWordWrap(True)
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
        show_placeholder(self.plot.getPlotItem(), self.empty_note, not self.session.loaded)
        if not self.session.loaded:
            return
        s = self.session.structure
        kinds = {r.name: r.kind for r in s.table.rows}
        self.layers = [n for n in s.table.executed_order if kinds.get(n) in ("conv", "linear")]
        self.owner = s.layer_groups()
        idx = s.table.index
        self.names.set_labels(self.layers)
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
            self.info.setText(self.KEY)
            self.plot.setToolTip("")
            return
        n = self.layers[i]
        w = self.session.widths().get(n, (0, 0))[1]
        h0 = int(self.h0[i])
        change = f" ({(w / h0 - 1) * 100:+.0f}%)" if h0 and w != h0 else ""
        text = (
            f"<b>{n}</b>: {h0} → {w} channels{change} · group {self.owner.get(n, '—')}"
            " · click to focus"
        )
        self.info.setText(text)
        self.plot.setToolTip(text)

    def _clicked(self, ev) -> None:
        if ev.button() != Qt.LeftButton:
            return
        i = self._index_at(ev.scenePos())
        if i is not None:
            self.session.set_focus(self.owner.get(self.layers[i]))
