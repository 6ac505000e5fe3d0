"""The always-visible summary bar: params and FLOPs of the plan against the *original* model
and (once a step has been applied) against the current one, the speed-up the FLOPs predict
and, when it has been measured for the current model, the measured one with its spread."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from studio.format import human, pct

GREEN, GREY = "#2e7d32", "#555"


def measured_speedup(results: dict) -> tuple[str, float, float, float] | None:
    """(batch, median, q1, q3) of the measured speed-up at the smallest batch, if any."""
    lat = results.get("latency")
    if not lat or not lat.get("speedup"):
        return None
    b = min(lat["speedup"], key=int)
    q1, q3 = lat.get("speedup_iqr", {}).get(b, (lat["speedup"][b],) * 2)
    return b, float(lat["speedup"][b]), float(q1), float(q3)


class SummaryBar(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.labels = {}
        for key in ("model", "params", "flops", "speedup", "plan"):
            lab = QLabel()
            lab.setObjectName(f"summary_{key}")
            lab.setTextFormat(lab.textFormat().RichText)
            lab.setMinimumWidth(1)  # a long line is clipped, it never widens the window
            self.labels[key] = lab
            lay.addWidget(lab)
            if key != "plan":
                lay.addSpacing(14)
        lay.addStretch(1)
        session.planChanged.connect(self.refresh)
        session.modelChanged.connect(self.refresh)
        session.resultsChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        s = self.session
        if not s.loaded:
            self.labels["model"].setText("<i>no model</i>")
            for k in ("params", "flops", "speedup", "plan"):
                self.labels[k].setText("")
            return
        orig, cur, pred = s.original_cost, s.structure.original, s.predicted()
        self.labels["model"].setText(f"<b>{s.lm.name}</b>")
        for key, title in (("params", "Params"), ("flops", "FLOPs")):
            a, c, b = getattr(orig, key), getattr(cur, key), getattr(pred, key)
            vs = pct(b, a)  # against the original: the number before the arrow
            color = GREEN if b < a else GREY
            self.labels[key].setText(
                f"{title} {human(a)} → <b>{human(b)}</b> <span style='color:{color}'>({vs})</span>"
            )
            # The change against the current (already pruned) model: in the tooltip, so the
            # bar fits a laptop's width.
            self.labels[key].setToolTip(
                f"{title}: original {human(a)}, current model {human(c)}, with the plan "
                f"{human(b)} ({vs} vs original, {pct(b, c)} vs current)"
                + (f"; MACs {human(pred.macs)}" if key == "flops" else "")
            )
        ratio = orig.flops / pred.flops if pred.flops else float("inf")
        text = f"<b>{ratio:.2f}×</b> <span style='color:#777'>fewer FLOPs</span>"
        m = measured_speedup(s.results) if s.plan.is_empty() else None
        if m is not None:
            b, med, q1, q3 = m
            text += (
                f" · <b>{med:.2f}×</b> <span style='color:#777'>faster, measured "
                f"(IQR {q1:.2f}–{q3:.2f}, batch {b})</span>"
            )
        self.labels["speedup"].setText(text)
        self.labels["speedup"].setToolTip(
            "Fewer FLOPs: original FLOPs ÷ FLOPs with the plan -- a prediction, not a "
            "speed. Measured: Model ▸ Measure latency times both models interleaved; median "
            "and quartiles of the per-round speed-ups."
        )
        n = s.plan.n_removed()
        nb = len(s.plan.drop_blocks)
        self.labels["plan"].setText(
            f"<span style='color:#777'>plan: {n} channels, {nb} blocks</span>"
        )
