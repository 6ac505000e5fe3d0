"""The start page, shown while no model is open: open the demo, open a model, or pick one
of the recent models."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class StartPage(QWidget):
    demoRequested = Signal()
    openRequested = Signal()
    recentRequested = Signal(dict)
    helpRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        title = QLabel("<h1>Pruning Studio</h1>")
        blurb = QLabel(
            "See which filters, stage channels and residual blocks of a CNN matter, remove "
            "them physically, fine-tune, and measure what it bought: params, FLOPs, measured "
            "latency, accuracy."
        )
        blurb.setWordWrap(True)
        self.demo_btn = QPushButton("Open the demo — ResNet-20 trained on real handwritten digits")
        self.open_btn = QPushButton("Open a model…  (torchvision, timm, checkpoint, folder, code)")
        self.help_btn = QPushButton("First steps")
        for b in (self.demo_btn, self.open_btn, self.help_btn):
            b.setMinimumHeight(34)
        self.demo_btn.setDefault(True)
        self.recent = QListWidget()
        self.recent.setMaximumHeight(180)
        self.recent_label = QLabel("<b>Recent models</b> (double-click to open)")
        self.hint = QLabel("You can also drop a checkpoint, a folder or a .py file here.")
        self.hint.setStyleSheet("color:#666")
        col = QVBoxLayout()
        col.addStretch(1)
        col.addWidget(title)
        col.addWidget(blurb)
        col.addSpacing(12)
        col.addWidget(self.demo_btn)
        col.addWidget(self.open_btn)
        col.addWidget(self.help_btn)
        col.addSpacing(12)
        col.addWidget(self.recent_label)
        col.addWidget(self.recent)
        col.addWidget(self.hint)
        col.addStretch(2)
        lay = QHBoxLayout(self)
        lay.addStretch(1)
        lay.addLayout(col, 4)
        lay.addStretch(1)
        self.demo_btn.clicked.connect(self.demoRequested)
        self.open_btn.clicked.connect(self.openRequested)
        self.help_btn.clicked.connect(self.helpRequested)
        self.recent.itemActivated.connect(
            lambda it: self.recentRequested.emit(it.data(Qt.UserRole))
        )

    def set_recent(self, items: list[tuple[str, str, dict]]) -> None:
        """(label, tooltip, record) per recent model."""
        self.recent.clear()
        for label, tip, rec in items:
            it = QListWidgetItem(label)
            it.setToolTip(tip)
            it.setData(Qt.UserRole, rec)
            self.recent.addItem(it)
        self.recent.setVisible(bool(items))
        self.recent_label.setVisible(bool(items))
