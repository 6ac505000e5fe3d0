"""Compare: the original model next to the current (pruned) one -- accuracy, cost, measured
latency, speed-up and its realisation."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.format import human

ROWS = ("top-1", "top-5", "loss", "params", "FLOPs", "MACs", "latency batch 1 (ms)",
        "latency batch N (ms)", "speed-up batch 1", "speed-up batch N", "realisation batch 1",
        "realisation batch N")


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
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.table)
        lay.addWidget(self.note)
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
        out = [("top-1", o.get("top1"), c.get("top1")), ("top-5", o.get("top5"), c.get("top5")),
               ("loss", o.get("loss"), c.get("loss")),
               ("params", oc.params, cc.params), ("FLOPs", oc.flops, cc.flops),
               ("MACs", oc.macs, cc.macs)]
        lat = r.get("latency")
        if lat:
            bs = sorted(lat["speedup"], key=int)
            for b, label in zip(bs, ("1", "N")):
                out.append((f"latency batch {label} (ms)",
                            lat["original"]["batch"][b]["median_ms"],
                            lat["pruned"]["batch"][b]["median_ms"]))
            for b, label in zip(bs, ("1", "N")):
                out.append((f"speed-up batch {label}", 1.0, lat["speedup"][b]))
            for b, label in zip(bs, ("1", "N")):
                out.append((f"realisation batch {label}", None, lat["realisation"][b]))
        return out

    def refresh(self) -> None:
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
                f"memory-bound layers and odd channel counts keep it lower).")


def _fmt(name: str, v) -> str:
    if v is None:
        return "—"
    if name in ("params", "FLOPs", "MACs"):
        return human(v)
    if isinstance(v, float):
        return f"{v:.4f}" if name.startswith(("top", "loss", "real")) else f"{v:.3f}"
    return str(v)
