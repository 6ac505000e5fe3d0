"""Importance heatmap: rows are channel groups (or the member layers of the focused group),
columns their channels (by index or by score), colour the normalised score. Click toggles a
channel for removal, shift-click extends a range, dragging a rectangle selects (ctrl-drag
deselects). Planned removals are drawn in red over the scores."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from studio.core.plan.edits import ReplacePlan, SetChannels
from studio.gui.views.criterion import CriterionPicker
from studio.gui.views.plotting import cache_axes

REMOVED_RGBA = (220, 30, 30, 200)
BLOCKED_RGBA = (120, 120, 120, 170)  # not prunable / inside a dropped block


class _Image(pg.ImageItem):
    """ImageItem that reports clicks, drags and hovers in data coordinates."""

    def __init__(self, view):
        super().__init__()
        self.view = view
        self.setAcceptHoverEvents(True)

    def mouseClickEvent(self, ev):  # noqa: N802 - pyqtgraph's name
        if ev.button() == Qt.LeftButton:
            ev.accept()
            self.view.clicked(ev.pos(), ev.modifiers())

    def mouseDragEvent(self, ev):  # noqa: N802
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        self.view.dragged(ev.buttonDownPos(), ev.pos(), ev.isStart(), ev.isFinish(), ev.modifiers())

    def hoverEvent(self, ev):  # noqa: N802
        if not ev.isExit():
            self.view.hovered(ev.pos())


class HeatmapView(QWidget):
    scoreRequested = Signal(str)  # a data-driven criterion without scores yet
    message = Signal(str)
    HELP = (
        "Click a channel to mark it for removal · shift-click: range · drag: rectangle · "
        "ctrl-drag: unmark · red: planned removal, grey: cannot be pruned"
    )

    def __init__(self, session, criteria: list[str], data_criteria: set[str], parent=None):
        super().__init__(parent)
        self.session = session
        self.data_criteria = data_criteria
        self.rows: list[tuple[str, str, np.ndarray]] = []  # (label, group id, scores)
        self.W = 1
        self._anchor = None
        self.crit = CriterionPicker(session, criteria, data_criteria)
        self.crit.scoreRequested.connect(self.scoreRequested)
        self.order = QComboBox()
        self.order.addItems(["channels by index", "channels by score"])
        self.mode = QComboBox()
        self.mode.addItems(["rows: channel groups", "rows: layers of the focused group"])
        self.info = QLabel(self.HELP)
        self.info.setStyleSheet("color:#555")
        top = QHBoxLayout()
        top.addWidget(QLabel("Criterion"))
        top.addWidget(self.crit)
        top.addWidget(self.order)
        top.addWidget(self.mode)
        top.addStretch(1)
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground("w")
        self.plot = self.glw.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.getViewBox().setMouseEnabled(False, False)
        self.plot.getViewBox().invertY(True)
        self.plot.setLabel("bottom", "channels (each row stretched to full width)")
        cache_axes(self.plot)
        self.img = _Image(self)
        self.overlay = pg.ImageItem()
        self.plot.addItem(self.img)
        self.plot.addItem(self.overlay)
        self.cbar = pg.ColorBarItem(
            values=(0, 1),
            colorMap=pg.colormap.get("viridis"),
            label="score / row max",
            interactive=False,
        )
        self.cbar.setImageItem(self.img, insert_in=self.plot)
        self.focus_box = QGraphicsRectItem()
        self.focus_box.setPen(QPen(QColor(239, 140, 32), 0))
        self.focus_box.setVisible(False)
        self.plot.addItem(self.focus_box)
        self.drag_box = QGraphicsRectItem()
        self.drag_box.setPen(QPen(QColor(255, 255, 255), 0, Qt.DashLine))
        self.drag_box.setVisible(False)
        self.plot.addItem(self.drag_box)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addWidget(self.glw)
        lay.addWidget(self.info)
        self.order.currentIndexChanged.connect(self._rebuild)
        self.mode.currentIndexChanged.connect(self._rebuild)
        session.modelChanged.connect(self._rebuild)
        session.scoresChanged.connect(lambda c: c == session.criterion and self._rebuild())
        session.criterionChanged.connect(lambda _c: self._rebuild())
        session.planChanged.connect(self._update_overlay)
        session.focusChanged.connect(self._focus_changed)

    # -- data ---------------------------------------------------------------------------
    def _focus_changed(self, _gid) -> None:
        if self.mode.currentIndex() == 1:
            self._rebuild()
        else:
            self._update_focus_box()

    def _rebuild(self) -> None:
        s = self.session
        if not s.loaded:
            return
        sc = s.current_scores()
        if sc is None:
            self.img.clear()
            self.overlay.clear()
            self.rows = []
            self.info.setText(
                f"Scores for '{s.criterion}' are not computed yet"
                + (" (needs data)" if s.criterion in self.data_criteria else "")
            )
            return
        self.info.setText(self.HELP)
        if self.mode.currentIndex() == 1 and s.focus:
            g = s.structure.group_index[s.focus]
            self.rows = [(layer, g.id, v) for layer, v in sc[g.id].members.items()]
            self.rows.insert(0, (f"{g.id} (group)", g.id, sc[g.id].group))
        else:
            stage = {st.id: st.name for st in s.structure.stages}
            self.rows = [
                (f"{stage[g.id]} (stage)" if g.id in stage else g.id, g.id, sc[g.id].group)
                for g in s.structure.groups
            ]
        self.W = max(len(v) for _, _, v in self.rows) if self.rows else 1
        self.W = min(self.W, 4096)
        by_score = self.order.currentIndex() == 1
        img = np.full((len(self.rows), self.W), np.nan, dtype=np.float32)
        self.maps = []
        for r, (_, _gid, v) in enumerate(self.rows):
            v = np.asarray(v, dtype=np.float64)
            c = len(v)
            perm = np.argsort(v, kind="stable") if by_score else np.arange(c)
            cols = perm[(np.arange(self.W) * c) // self.W]  # column -> channel
            self.maps.append(cols)
            top = float(np.nanmax(np.abs(v))) if c else 0.0
            img[r] = (v[cols] / top) if top > 0 else 0.0
        self.img.setImage(img, autoLevels=False, levels=(0, 1))
        self.img.setRect(QRectF(0, 0, self.W, len(self.rows)))
        ax = self.plot.getAxis("left")
        step = max(1, len(self.rows) // 40)
        ax.setTicks(
            [[(r + 0.5, lab[:28]) for r, (lab, _, _) in enumerate(self.rows) if r % step == 0]]
        )
        self.plot.setXRange(0, self.W, padding=0)
        self.plot.setYRange(0, len(self.rows), padding=0)
        self._update_overlay()
        self._update_focus_box()

    def _update_overlay(self) -> None:
        s = self.session
        if not self.rows or s.plan is None:
            return
        rgba = np.zeros((len(self.rows), self.W, 4), dtype=np.uint8)
        dropped = set(s.plan.drop_blocks)
        for r, (_, gid, _) in enumerate(self.rows):
            g = s.structure.group_index[gid]
            if not g.prunable or (g.block and g.block in dropped):
                rgba[r, :] = BLOCKED_RGBA
                continue
            removed = s.plan.removed(gid)
            if removed:
                mask = np.zeros(g.channels, bool)
                mask[removed] = True
                rgba[r, mask[self.maps[r]]] = REMOVED_RGBA
        self.overlay.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.overlay.setRect(QRectF(0, 0, self.W, len(self.rows)))

    def _update_focus_box(self) -> None:
        gid = self.session.focus
        rows = [r for r, (_, g, _) in enumerate(self.rows) if g == gid]
        if not rows or self.mode.currentIndex() == 1:
            self.focus_box.setVisible(False)
            return
        self.focus_box.setRect(QRectF(0, rows[0], self.W, 1))
        self.focus_box.setVisible(True)

    # -- mouse --------------------------------------------------------------------------
    def _cell(self, pos) -> tuple[int, int] | None:
        r, col = int(np.floor(pos.y())), int(np.floor(pos.x()))
        if 0 <= r < len(self.rows) and 0 <= col < self.W:
            return r, col
        return None

    def _channels(self, r: int, c0: int, c1: int) -> set[int]:
        lo, hi = sorted((c0, c1))
        return {int(c) for c in self.maps[r][lo : hi + 1]}

    def hovered(self, pos) -> None:
        cell = self._cell(pos)
        if cell is None:
            return
        r, col = cell
        label, gid, v = self.rows[r]
        ch = int(self.maps[r][col])
        g = self.session.structure.group_index[gid]
        layers = g.layers
        more = f" +{len(layers) - 6} more" if len(layers) > 6 else ""
        state = "marked for removal" if ch in set(self.session.plan.removed(gid)) else "kept"
        self.img.setToolTip(
            f"<b>{label}</b><br>channel {ch} of {len(v)} · score {float(v[ch]):.4g} · {state}"
            f"<br>coupled layers: {', '.join(layers[:6])}{more}"
        )

    def clicked(self, pos, mods) -> None:
        cell = self._cell(pos)
        if cell is None:
            return
        r, col = cell
        gid = self.rows[r][1]
        current = set(self.session.plan.removed(gid))
        if mods & Qt.ShiftModifier and self._anchor and self._anchor[0] == r:
            new = current | self._channels(r, self._anchor[1], col)
        else:
            ch = int(self.maps[r][col])
            new = current ^ {ch}
            self._anchor = (r, col)
        self._set(gid, new, "select channels")
        # Last: focusing may rebuild the rows (in the focused-group mode).
        self.session.set_focus(gid)

    def dragged(self, p0, p1, start, finish, mods) -> None:
        a, b = self._cell(p0), self._cell(p1)
        if a is None:
            return
        b = b or a
        x0, x1 = sorted((a[1], b[1]))
        y0, y1 = sorted((a[0], b[0]))
        self.drag_box.setRect(QRectF(x0, y0, x1 - x0 + 1, y1 - y0 + 1))
        self.drag_box.setVisible(not finish)
        if not finish:
            return
        plan = self.session.plan.copy()
        unmark = bool(mods & Qt.ControlModifier)
        for r in range(y0, y1 + 1):
            gid = self.rows[r][1]
            g = self.session.structure.group_index[gid]
            if not g.prunable:
                continue
            cur = set(plan.removed(gid))
            chans = self._channels(r, x0, x1)
            new = cur - chans if unmark else cur | chans
            new = self._legal(gid, new)
            if new is None:
                continue
            plan.set_removed(gid, new)
        self.session.edit(
            ReplacePlan(plan, text="unmark rectangle" if unmark else "mark rectangle")
        )

    def _legal(self, gid: str, chans: set[int]) -> set[int] | None:
        """Complete whole positions for grouped convs; refuse emptying a group."""
        s = self.session.structure
        g = s.group_index[gid]
        if not g.prunable:
            self.message.emit(f"group {gid} cannot be pruned: {g.reason}")
            return None
        if g.orbit is not None and chans:
            chans = set(s.orbit_closure(gid, sorted(chans)).tolist())
        if len(chans) >= g.channels:
            self.message.emit(f"group {gid}: at least one channel must stay")
            return None
        return chans

    def _set(self, gid: str, chans: set[int], text: str) -> None:
        chans = self._legal(gid, chans)
        if chans is not None:
            self.session.edit(SetChannels(gid, sorted(chans), text=text))
