"""Structure view: every layer with its channels (original -> planned), cost, group and
stage. Selecting a row focuses its channel group, highlighted in every view."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.format import human

COLUMNS = ("Layer", "Type", "In", "Out", "Kernel", "FLOPs", "Params", "Group", "Stage")
HIGHLIGHT = QColor(255, 236, 179)
REMOVED = QColor(230, 230, 230)
_ROOT = QModelIndex()
_HIGHLIGHT, _REMOVED = QBrush(HIGHLIGHT), QBrush(REMOVED)
_ROLES = {Qt.DisplayRole: 0, Qt.BackgroundRole: 1, Qt.UserRole: 2, Qt.ToolTipRole: 3}


class LayerTable(QAbstractTableModel):
    def __init__(self, session):
        super().__init__()
        self.session = session
        self.rows: list = []
        self.owner: dict[str, str] = {}
        self.stage_of: dict[str, str] = {}
        self.members: set[str] = set()
        self.planned: dict[str, tuple[int, int]] = {}
        self.cost: dict[str, tuple[int, int]] = {}

    def reload(self) -> None:
        self.beginResetModel()
        s = self.session.structure
        self.rows = [r for r in s.table.layer_rows() if r.kind in ("conv", "linear", "norm")]
        self.owner = s.layer_groups()
        self.stage_of = {st.id: st.name for st in s.stages}
        self.members = set()
        self._update_plan()
        self.endResetModel()

    def _update_plan(self) -> None:
        s = self.session
        from studio.core.plan.plan import removal_vectors

        rm_in, rm_out, dropped = removal_vectors(s.plan, s.structure)
        cin, cout, params, flops, _ = s.structure.table.evaluate(rm_in, rm_out, dropped)
        idx = s.structure.table.index
        self.planned = {}
        self.cost = {}
        self.text = []  # display strings per row, built once per plan edit
        for r in self.rows:
            i = idx[r.name]
            gone = dropped is not None and dropped[i]
            pin, pout = (0, 0) if gone else (int(cin[i]), int(cout[i]))
            f, p = int(flops[i]), int(params[i])
            self.planned[r.name] = (pin, pout)
            self.cost[r.name] = (f, p)
            group = self.owner.get(r.name, "")
            self.text.append(
                (
                    r.name,
                    r.type,
                    f"{r.in_channels}" if pin == r.in_channels else f"{r.in_channels} → {pin}",
                    f"{r.out_channels}" if pout == r.out_channels else f"{r.out_channels} → {pout}",
                    "×".join(map(str, r.kernel)) or "-",
                    human(r.flops) if f == r.flops else f"{human(r.flops)} → {human(f)}",
                    human(r.params) if p == r.params else f"{human(r.params)} → {human(p)}",
                    group,
                    self.stage_of.get(group, ""),
                )
            )

    def plan_changed(self) -> None:
        if not self.rows:
            return
        self._update_plan()
        self.dataChanged.emit(self.index(0, 2), self.index(len(self.rows) - 1, 6))

    def set_members(self, layers: set[str]) -> None:
        if layers == self.members:
            return
        self.members = layers
        if self.rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self.rows) - 1, len(COLUMNS) - 1)
            )

    def rowCount(self, parent=_ROOT):  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=_ROOT):  # noqa: N802
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        # Called for every visible cell and role on each repaint: one dict lookup decides.
        kind = _ROLES.get(role)
        if kind == 0:
            return self.text[index.row()][index.column()]
        if kind is None:
            return None
        r = self.rows[index.row()]
        c = index.column()
        if role == Qt.UserRole:  # sort keys
            return (
                r.name,
                r.type,
                r.in_channels,
                r.out_channels,
                r.kernel,
                r.flops,
                r.params,
                self.owner.get(r.name, ""),
                "",
            )[c]
        if role == Qt.BackgroundRole:
            if r.name in self.members:
                return _HIGHLIGHT
            if self.planned.get(r.name) == (0, 0):
                return _REMOVED
        if role == Qt.ToolTipRole and c == 7:
            return "Channel group that owns this layer's output channels"
        return None


class StructureView(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.model = LayerTable(session)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.proxy.setSortRole(Qt.UserRole)
        self.search = QLineEdit(placeholderText="Filter layers (name, type, group, stage)…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setSortingEnabled(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        # Shown as Layer, In, Out, Type, ...: in a laptop-wide dock the channel counts
        # (original -> planned) come right after the name.
        self.table.horizontalHeader().moveSection(1, 3)
        self.table.selectionModel().currentRowChanged.connect(self._row_selected)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.search)
        lay.addWidget(self.table)
        session.modelChanged.connect(self._reload)
        session.planChanged.connect(self.model.plan_changed)
        session.focusChanged.connect(self._focus)

    def sizeHint(self):  # noqa: N802 - Qt's name; the first-run width of the dock
        from PySide6.QtCore import QSize

        return QSize(500, 600)

    def _reload(self) -> None:
        self.model.reload()
        for col, w in enumerate((150, 90, 70, 70, 50, 110, 110, 150)):
            self.table.setColumnWidth(col, w)

    def _row_selected(self, current, _previous) -> None:
        if not current.isValid():
            return
        row = self.model.rows[self.proxy.mapToSource(current).row()]
        s = self.session.structure
        gid = self.model.owner.get(row.name)
        if gid is None:  # e.g. the classifier: focus the group feeding it
            gid = next((g.id for g in s.groups if row.name in g.layers), None)
        # On the next turn of the event loop: typing in the filter hides the current row
        # while the proxy is removing rows, and the focus repaints the whole model -- done
        # at once, that corrupted the proxy (a crash).
        QTimer.singleShot(0, lambda: self._set_focus(gid))

    def _set_focus(self, gid) -> None:
        s = self.session
        if s.loaded and (gid is None or gid in s.structure.group_index):  # still this model
            s.set_focus(gid)

    def _focus(self, gid) -> None:
        g = self.session.structure.group_index.get(gid) if gid else None
        self.model.set_members(set(g.layers) if g else set())
