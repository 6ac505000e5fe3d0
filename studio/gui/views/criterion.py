"""The criterion picker that the heatmap and auto-select share: it follows the session's
criterion and asks for scores that are not computed yet."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox


class CriterionPicker(QComboBox):
    scoreRequested = Signal(str)  # the picked criterion has no scores yet

    def __init__(self, session, criteria: list[str], data_criteria: set[str], parent=None):
        super().__init__(parent)
        self.session = session
        for c in criteria:
            self.addItem(c + ("  (data)" if c in data_criteria else ""), c)
        self.currentIndexChanged.connect(self._picked)
        session.criterionChanged.connect(self._follow)

    def criterion(self) -> str:
        return self.currentData()

    def _picked(self) -> None:
        c = self.currentData()
        self.session.set_criterion(c)
        if self.session.loaded and c not in self.session.scores:
            self.scoreRequested.emit(c)

    def _follow(self, c: str) -> None:
        i = self.findData(c)
        if i >= 0 and i != self.currentIndex():
            self.blockSignals(True)
            self.setCurrentIndex(i)
            self.blockSignals(False)
