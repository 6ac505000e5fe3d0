"""Compare: the original model next to the current (pruned) one -- accuracy, cost, measured
latency, speed-up and its realisation."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.format import human

ROWS = (
    "top-1",
    "top-5",
    "loss",
    "params",
    "FLOPs",
    "MACs",
    "latency batch 1 (ms)",
    "latency batch N (ms)",
    "speed-up batch 1",
    "speed-up batch N",
    "realisation batch 1",
    "realisation batch N",
)


class CompareView(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.table = QTableWidget(len(ROWS), 3)
        self.table.setHorizontalHeaderLabels(["original", "current", "change"])
        self.table.setVerticalHeaderLabels(list(ROWS))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.note = QLabel("Run Evaluate (and Measure latency) to fill this table.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color:#555")
        self.plot = pg.PlotWidget(
            background="w", title="per-layer output channels: original (grey) vs current (green)"
        )
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "layer (execution order of the original)")
        self.orig_bars = pg.BarGraphItem(
            x=[], height=[], width=0.85, brush=pg.mkBrush(205, 205, 205), pen=None
        )
        self.cur_bars = pg.BarGraphItem(
            x=[], height=[], width=0.55, brush=pg.mkBrush(46, 125, 50), pen=None
        )
        self.plot.addItem(self.orig_bars)
        self.plot.addItem(self.cur_bars)
        left = QVBoxLayout()
        left.addWidget(self.table)
        left.addWidget(self.note)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(left, 3)
        lay.addWidget(self.plot, 2)
        session.resultsChanged.connect(self.refresh)
        session.modelChanged.connect(self.refresh)

    def rows(self) -> list[tuple[str, object, object]]:
        """(metric, original, current) -- also what the HTML report prints."""
        s = self.session
        if not s.loaded:
            return []
        r = s.results
        o, c = r.get("eval_original", {}), r.get("eval_current", {})
        oc, cc = s.original_cost, s.structure.original
        out = [
            ("top-1", o.get("top1"), c.get("top1")),
            ("top-5", o.get("top5"), c.get("top5")),
            ("loss", o.get("loss"), c.get("loss")),
            ("params", oc.params, cc.params),
            ("FLOPs", oc.flops, cc.flops),
            ("MACs", oc.macs, cc.macs),
        ]
        lat = r.get("latency")
        if lat:
            bs = sorted(lat["speedup"], key=int)
            for b, label in zip(bs, ("1", "N")):
                out.append(
                    (
                        f"latency batch {label} (ms)",
                        lat["original"]["batch"][b]["median_ms"],
                        lat["pruned"]["batch"][b]["median_ms"],
                    )
                )
            for b, label in zip(bs, ("1", "N")):
                out.append((f"speed-up batch {label}", 1.0, lat["speedup"][b]))
            for b, label in zip(bs, ("1", "N")):
                out.append((f"realisation batch {label}", None, lat["realisation"][b]))
        return out

    def widths(self) -> list[tuple[str, int, int]]:
        """(layer, original out channels, current out channels or 0 when removed)."""
        s = self.session
        if not s.loaded or s.original_structure is None:
            return []
        o, c = s.original_structure.table, s.structure.table
        kinds = {r.name: r.kind for r in o.rows}
        out = []
        for n in o.executed_order:
            if kinds.get(n) in ("conv", "linear"):
                i = c.index.get(n)
                out.append((n, int(o.cout[o.index[n]]), int(c.cout[i]) if i is not None else 0))
        return out

    def refresh(self) -> None:
        w = self.widths()
        x = np.arange(len(w), dtype=float)
        self.orig_bars.setOpts(x=x, height=np.array([a for _, a, _ in w], dtype=float))
        self.cur_bars.setOpts(x=x, height=np.array([b for _, _, b in w], dtype=float))
        self.table.clearContents()
        data = {name: (a, b) for name, a, b in self.rows()}
        for i, name in enumerate(ROWS):
            a, b = data.get(name, (None, None))
            self.table.setItem(i, 0, QTableWidgetItem(_fmt(name, a)))
            self.table.setItem(i, 1, QTableWidgetItem(_fmt(name, b)))
            ch = ""
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
                ch = f"{b - a:+.4f}" if name.startswith(("top", "loss")) else f"×{b / a:.3f}"
            self.table.setItem(i, 2, QTableWidgetItem(ch))
        lat = self.session.results.get("latency")
        if lat:
            bs = sorted(lat["speedup"], key=int)
            self.note.setText(
                f"Latency: {lat['pruned']['device']}, {lat['pruned']['threads']} threads, "
                f"batch sizes {', '.join(bs)}; median of repeats. Realisation = measured "
                f"speed-up ÷ FLOPs reduction (1.0 is the physical ideal; small or "
                f"memory-bound layers and odd channel counts keep it lower)."
            )


def _fmt(name: str, v) -> str:
    if v is None:
        return "—"
    if name in ("params", "FLOPs", "MACs"):
        return human(v)
    if isinstance(v, float):
        return f"{v:.4f}" if name.startswith(("top", "loss", "real")) else f"{v:.3f}"
    return str(v)
