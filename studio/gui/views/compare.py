"""Compare: the original model next to the current (pruned) one -- accuracy, cost, measured
latency, speed-up and its realisation."""

from __future__ import annotations

import html

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

from studio.core.export import RUNTIME_WORDS
from studio.core.export.report import acc, change, count, megabytes, model_bytes, points, ratio
from studio.gui.views.plotting import LabelAxis

# What a stakeholder asks first comes first: a laptop's bottom panel shows ~5 rows.
ROWS = (
    "top-1",
    "speed-up batch 1",
    "FLOPs",
    "params",
    "latency batch 1",
    "top-5",
    "loss",
    "MACs",
    "size",
    "latency batch N",
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
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.note = QLabel("Run Evaluate (and Measure latency) to fill this table.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color:#555")
        self.names = LabelAxis("bottom", spacing_px=110)
        self.plot = pg.PlotWidget(
            background="w",
            title="per-layer output channels: original (grey) vs current (green)",
            axisItems={"bottom": self.names},
        )
        self.plot.setMenuEnabled(False)
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        self.plot.setLabel("bottom", "layer, in the original's execution order (wheel: zoom)")
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

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(metric, original, current, change), formatted one way (the report's)."""
        s = self.session
        if not s.loaded:
            return []
        r = s.results
        o, c = r.get("eval_original", {}), r.get("eval_current", {})
        out = []
        for k, name in (("top1", "top-1"), ("top5", "top-5")):
            if k in o and k in c:
                out.append((name, acc(o[k]), acc(c[k]), points(c[k], o[k])))
        if "loss" in o and "loss" in c:
            out.append(
                ("loss", f"{o['loss']:.4f}", f"{c['loss']:.4f}", change(c["loss"], o["loss"]))
            )
        oc, cc = s.original_cost, s.structure.original
        for k, name in (("params", "params"), ("flops", "FLOPs"), ("macs", "MACs")):
            a, b = getattr(oc, k), getattr(cc, k)
            out.append((name, count(a), count(b), change(b, a)))
        ob, cb = self._bytes()
        out.append(("size", megabytes(ob), megabytes(cb), change(cb, ob)))
        lat = r.get("latency")
        if lat:
            bs = sorted(lat["speedup"], key=int)
            for b, label in zip(bs, ("1", "N")):
                po, pp = lat["original"]["batch"][b], lat["pruned"]["batch"][b]
                out.append(
                    (
                        f"latency batch {label}",
                        f"{po['median_ms']:.2f} ms ({po['p25_ms']:.2f}–{po['p75_ms']:.2f})",
                        f"{pp['median_ms']:.2f} ms ({pp['p25_ms']:.2f}–{pp['p75_ms']:.2f})",
                        change(pp["median_ms"], po["median_ms"]),
                    )
                )
            for b, label in zip(bs, ("1", "N")):
                q1, q3 = lat.get("speedup_iqr", {}).get(b, (lat["speedup"][b],) * 2)
                out.append(
                    (
                        f"speed-up batch {label}",
                        "1.00×",
                        ratio(lat["speedup"][b]),
                        f"IQR {q1:.2f}–{q3:.2f}",
                    )
                )
            for b, label in zip(bs, ("1", "N")):
                out.append((f"realisation batch {label}", "", f"{lat['realisation'][b]:.0%}", ""))
        return out

    def _bytes(self) -> tuple[int, int]:
        s = self.session
        key = (id(s.original.model), id(s.lm.model))
        if getattr(self, "_bytes_key", None) != key:
            self._bytes_key = key
            self._bytes_val = (model_bytes(s.original.model), model_bytes(s.lm.model))
        return self._bytes_val

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
        self.names.set_labels([n for n, _, _ in w])
        x = np.arange(len(w), dtype=float)
        self.orig_bars.setOpts(x=x, height=np.array([a for _, a, _ in w], dtype=float))
        self.cur_bars.setOpts(x=x, height=np.array([b for _, _, b in w], dtype=float))
        self.table.clearContents()
        data = {row[0]: row[1:] for row in self.rows()}
        for i, name in enumerate(ROWS):
            a, b, ch = data.get(name, ("—", "—", ""))
            for j, text in enumerate((a, b, ch)):
                self.table.setItem(i, j, QTableWidgetItem(text))
        lat = self.session.results.get("latency")
        if lat:
            bs = sorted(lat["speedup"], key=int)
            runtime = RUNTIME_WORDS.get(lat.get("runtime", "torch"), "?")
            text = (
                f"Latency: {lat['pruned']['device']}, {lat['pruned']['threads']} threads, "
                f"{runtime}, batch sizes {', '.join(bs)}; both models timed interleaved in "
                f"{lat.get('rounds', '?')} rounds: median (quartiles). Speed-up: median of the "
                f"per-round ratios. Realisation = measured speed-up ÷ FLOPs ratio (100% is the "
                f"physical ideal). Load average {lat.get('load_average') or 0:.2f} on "
                f"{lat.get('cpus', '?')} CPUs."
            )
            treated = (lat.get("treatment") or {}).get("note")
            if treated:
                text += f"\n\nNote: {treated}"
            warn = lat.get("warnings") or []
            # One line here (the panel is short on a laptop); the whole story on hover.
            if warn:
                self.note.setText(
                    "<b style='color:#c62828'>Caution: the latency numbers "
                    f"({html.escape(lat.get('runtime', 'torch'))}) are unreliable</b> "
                    + ("· <b>a note on the treatment</b> " if treated else "")
                    + "(hover for why)"
                )
                self.note.setToolTip("Caution: " + "; ".join(warn) + "\n\n" + text)
            else:
                self.note.setText(
                    f"Latency in {html.escape(lat.get('runtime', 'torch'))}: "
                    f"{html.escape(str(lat['pruned']['device']))}, "
                    f"{lat['pruned']['threads']} threads, median of interleaved rounds "
                    + (
                        "<b>· a note on the treatment</b> (hover)"
                        if treated
                        else "(hover for how it is measured)"
                    )
                )
                self.note.setToolTip(text)
        elif self.session.results.get("eval_current"):
            self.note.setText("Model ▸ Measure latency adds the measured speed.")
            self.note.setToolTip("")
        else:
            self.note.setText(
                "Run Evaluate (with a data source) and Measure latency to fill this table."
            )
            self.note.setToolTip("")
        o = self.session.results.get("eval_original", {})
        c = self.session.results.get("eval_current", {})
        if "top1" in o and "top1" in c and o["top1"] - c["top1"] > 0.05:
            # Say what recovers it, not just the drop -- next to any latency caution.
            drop = f"<b>top-1 fell {100 * (o['top1'] - c['top1']):.1f} points</b>"
            if not self.session.runs:  # nothing fine-tuned yet
                drop += (
                    ": Fine-tune (Ctrl+T) recovers most of it; with Model ▸ Reconstruct "
                    "consumers ticked, the next Apply refits the layers before any training"
                )
            else:
                drop += ": fine-tune longer, or prune less"
            self.note.setText(drop + " · " + self.note.text() if lat else drop)
