"""The always-visible summary bar: params, FLOPs, MACs -- original -> planned -- and the
predicted speed-up."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from studio.format import human


class SummaryBar(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.labels = {}
        for key in ("model", "params", "flops", "macs", "speedup", "plan"):
            lab = QLabel()
            lab.setObjectName(f"summary_{key}")
            lab.setTextFormat(lab.textFormat().RichText)
            self.labels[key] = lab
            lay.addWidget(lab)
            if key != "plan":
                lay.addSpacing(14)
        lay.addStretch(1)
        session.planChanged.connect(self.refresh)
        session.modelChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        s = self.session
        if not s.loaded:
            self.labels["model"].setText("<i>no model</i>")
            for k in ("params", "flops", "macs", "speedup", "plan"):
                self.labels[k].setText("")
            return
        orig, pred = s.structure.original, s.predicted()
        self.labels["model"].setText(f"<b>{s.lm.name}</b>")
        for key, title in (("params", "Params"), ("flops", "FLOPs"), ("macs", "MACs")):
            a, b = getattr(orig, key), getattr(pred, key)
            pct = (b / a - 1) * 100 if a else 0.0
            color = "#2e7d32" if pct < 0 else "#555"
            self.labels[key].setText(
                f"{title} {human(a)} → <b>{human(b)}</b> "
                f"<span style='color:{color}'>({pct:+.1f}%)</span>"
            )
        sp = orig.flops / pred.flops if pred.flops else float("inf")
        self.labels["speedup"].setText(
            f"Predicted speed-up <b>{sp:.2f}×</b> <span style='color:#777'>(FLOPs)</span>"
        )
        n = s.plan.n_removed()
        nb = len(s.plan.drop_blocks)
        self.labels["plan"].setText(
            f"<span style='color:#777'>plan: {n} channels, {nb} blocks</span>"
        )
