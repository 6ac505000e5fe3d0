"""Stages and blocks: each stage with its width (a control that keeps the stage's most
important channels) and its residual blocks, which can be dropped (become identity)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.plan.edits import SetBlock, SetChannels


class BlocksView(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Stage / block", "Channels", "Drop", "Note"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.tree.setRootIsDecorated(True)
        self.spins: dict[str, QSpinBox] = {}
        self.block_items: dict[str, QTreeWidgetItem] = {}
        self._updating = False
        hint = QLabel(
            "Tick a block to drop it (it becomes identity). The stage width keeps "
            "its most important channels under the current criterion."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color:#555")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(hint)
        lay.addWidget(self.tree)
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.currentItemChanged.connect(self._current)
        session.modelChanged.connect(self._reload)
        session.planChanged.connect(self._sync)

    def _reload(self) -> None:
        s = self.session.structure
        self._updating = True
        self.tree.clear()
        self.spins.clear()
        self.block_items.clear()
        staged = set()
        for st in s.stages:
            top = QTreeWidgetItem([st.name, "", "", f"group {st.id}"])
            top.setData(0, Qt.UserRole, ("stage", st.id))
            self.tree.addTopLevelItem(top)
            spin = QSpinBox()
            spin.setRange(1, st.channels)
            spin.setValue(st.channels)
            spin.setSuffix(f" / {st.channels}")
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(lambda v, gid=st.id: self._stage_width(gid, v))
            self.tree.setItemWidget(top, 1, spin)
            self.spins[st.id] = spin
            for b in st.blocks:
                self._add_block(top, b)
                staged.add(b)
            top.setExpanded(True)
        rest = [b for b in s.blocks if b.name not in staged]
        if rest:
            top = QTreeWidgetItem(["other residual blocks", "", "", ""])
            self.tree.addTopLevelItem(top)
            for b in rest:
                self._add_block(top, b.name)
            top.setExpanded(True)
        if not s.blocks:
            self.tree.addTopLevelItem(QTreeWidgetItem(["(no residual blocks in this model)"]))
        self._updating = False
        self._sync()

    def _add_block(self, parent: QTreeWidgetItem, name: str) -> None:
        info = self.session.structure.block_index[name]
        it = QTreeWidgetItem(
            [
                name,
                "x".join(map(str, info.out_shape)),
                "",
                info.type + ("" if info.droppable else " — kept"),
            ]
        )
        it.setData(0, Qt.UserRole, ("block", name))
        flags = it.flags() | Qt.ItemIsUserCheckable
        if not info.droppable:
            flags &= ~Qt.ItemIsEnabled
        it.setFlags(flags)
        it.setCheckState(2, Qt.Unchecked)
        for col in range(4):
            it.setToolTip(col, info.reason)
        parent.addChild(it)
        self.block_items[name] = it

    def _sync(self) -> None:
        s = self.session
        if not s.loaded:
            return
        self._updating = True
        dropped = set(s.plan.drop_blocks)
        for name, it in self.block_items.items():
            it.setCheckState(2, Qt.Checked if name in dropped else Qt.Unchecked)
        for gid, spin in self.spins.items():
            g = s.structure.group_index[gid]
            spin.blockSignals(True)
            spin.setValue(g.channels - len(s.plan.removed(gid)))
            spin.blockSignals(False)
        self._updating = False

    def _item_changed(self, it: QTreeWidgetItem, col: int) -> None:
        if self._updating or col != 2:
            return
        kind, name = it.data(0, Qt.UserRole) or (None, None)
        if kind == "block":
            self.session.edit(SetBlock(name, it.checkState(2) == Qt.Checked))

    def _stage_width(self, gid: str, width: int) -> None:
        if self._updating:
            return
        g = self.session.structure.group_index[gid]
        chans = self.session.least_important(gid, g.channels - width)
        self.session.edit(
            SetChannels(gid, chans, text=f"stage width {width}"), merge_id=self.session.MERGE_STAGE
        )

    def _current(self, it, _prev) -> None:
        if it is None:
            return
        kind, name = it.data(0, Qt.UserRole) or (None, None)
        if kind == "stage":
            self.session.set_focus(name)
