"""Importance heatmap: rows are channel groups (or the member layers of the focused group),
columns their channels, colour the score. Each row is as long as its group is wide (or
stretched to the widest, on request); colour is the rank within the row, the score over the
row's maximum, or the percentile among all channels.

Mouse: click toggles a channel for removal, shift-click extends a range, dragging a
rectangle selects (ctrl-drag deselects); the wheel zooms (shift: channels only, ctrl: rows
only), the middle button pans, the minimap under the map moves the view. Keyboard: arrows
move the cursor, space marks, +/- zoom, 0 fits. Planned removals are drawn in red."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.plan.edits import ReplacePlan, SetChannels
from studio.gui.views.criterion import CriterionPicker
from studio.gui.views.plotting import LabelAxis

REMOVED_RGBA = (220, 30, 30, 200)
BLOCKED_RGBA = (120, 120, 120, 170)  # not prunable / inside a dropped block
MAX_COLUMNS = 16384  # wider groups are drawn several channels to a column
COLOURS = (
    ("rank", "colour: rank in row"),
    ("max", "colour: ÷ row max"),
    ("global", "colour: global rank"),
)
COLOUR_LABEL = {
    "rank": "rank in row (0: weakest)",
    "max": "score / row max",
    "global": "percentile, all rows",
}


class _ViewBox(pg.ViewBox):
    """Wheel zooms both axes about the pointer; with shift only the channels, with ctrl only
    the rows."""

    def wheelEvent(self, ev, axis=None):  # noqa: N802
        mods = ev.modifiers()
        if mods & Qt.ShiftModifier:
            axis = 0
        elif mods & Qt.ControlModifier:
            axis = 1
        super().wheelEvent(ev, axis)


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
            ev.ignore()  # the view box pans (middle) or zooms (right)
            return
        ev.accept()
        self.view.dragged(ev.buttonDownPos(), ev.pos(), ev.isStart(), ev.isFinish(), ev.modifiers())

    def hoverEvent(self, ev):  # noqa: N802
        if not ev.isExit():
            self.view.hovered(ev.pos())


class _Minimap(pg.PlotWidget):
    """The whole map, small, with the part in view outlined; click or drag to move there."""

    def __init__(self, heatmap):
        super().__init__(background="w")
        self.heatmap = heatmap
        self.setFixedHeight(54)
        self.setMenuEnabled(False)
        self.hideButtons()
        for ax in ("left", "bottom"):
            self.getPlotItem().hideAxis(ax)
        vb = self.getViewBox()
        vb.setMouseEnabled(False, False)
        vb.invertY(True)
        self.img = pg.ImageItem()
        self.addItem(self.img)
        self.box = QGraphicsRectItem()
        self.box.setPen(QPen(QColor(220, 30, 30), 0))
        self.addItem(self.box)
        self.setToolTip("Overview: click or drag to move the map's view")

    def mousePressEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.LeftButton:
            self._center(ev)

    def mouseMoveEvent(self, ev):  # noqa: N802
        if ev.buttons() & Qt.LeftButton:
            self._center(ev)

    def _center(self, ev) -> None:
        p = self.getViewBox().mapSceneToView(self.mapToScene(ev.position().toPoint()))
        self.heatmap.center_on(p.x(), p.y())


class HeatmapView(QWidget):
    scoreRequested = Signal(str)  # a data-driven criterion without scores yet
    message = Signal(str)
    HELP = (
        "click: mark a channel · shift-click: range · drag: rectangle (ctrl: unmark) · "
        "wheel: zoom · middle-drag: pan · arrows + space: keyboard · red: planned, grey: fixed"
    )

    def __init__(self, session, criteria: list[str], data_criteria: set[str], parent=None):
        super().__init__(parent)
        self.session = session
        self.data_criteria = data_criteria
        self.rows: list[tuple[str, str, np.ndarray]] = []  # (label, group id, scores)
        self.maps: list[np.ndarray] = []  # per row: column -> channel (-1: past the row's end)
        self.W = 1
        self._anchor = None
        self.cursor: tuple[int, int] | None = None  # (row, column) of the keyboard cursor
        self.crit = CriterionPicker(session, criteria, data_criteria)
        self.crit.scoreRequested.connect(self.scoreRequested)
        self.order = QComboBox()
        self.order.addItems(["by index", "by score"])
        self.order.setToolTip("Columns: channels by their index, or sorted by score")
        self.mode = QComboBox()
        self.mode.addItems(["rows: groups", "rows: focused layers"])
        self.mode.setToolTip(
            "Rows: one per channel group, or one per member layer of the focused group"
        )
        self.colour = QComboBox()
        for key, text in COLOURS:
            self.colour.addItem(text, key)
        self.colour.setToolTip(
            "Colour: rank within the row (the weakest quarter is always dark), score over the "
            "row's maximum, or rank among all channels of the network"
        )
        self.stretch = QCheckBox("stretch rows")
        self.stretch.setToolTip(
            "Off: every row is as long as its group has channels. On: every row is stretched "
            "to the widest group's width."
        )
        self.find = QLineEdit(placeholderText="find layer (e.g. layer3.2.conv2 or …:17)")
        self.find.setClearButtonEnabled(True)
        self.find.setToolTip(
            "Type a layer or group name, optionally ':channel', and press Enter to go there"
        )
        self.find.returnPressed.connect(lambda: self.goto(self.find.text()))
        self.fit_btn = QToolButton(text="Fit")
        self.fit_btn.setToolTip("Show the whole map (key 0)")
        self.zin_btn = QToolButton(text="+")
        self.zin_btn.setToolTip("Zoom in on the channels (key +)")
        self.zout_btn = QToolButton(text="−")
        self.zout_btn.setToolTip("Zoom out (key -)")
        self.fit_btn.clicked.connect(self.fit)
        self.zin_btn.clicked.connect(lambda: self.zoom(0.5))
        self.zout_btn.clicked.connect(lambda: self.zoom(2.0))
        top = QHBoxLayout()
        top.addWidget(QLabel("Criterion"))
        top.addWidget(self.crit)
        top.addWidget(self.order)
        top.addWidget(self.mode)
        top.addWidget(self.colour)
        top.addWidget(self.stretch)
        second = QHBoxLayout()
        second.addWidget(self.find, 1)
        for b in (self.zin_btn, self.zout_btn, self.fit_btn):
            second.addWidget(b)
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground("w")
        self.glw.setFocusPolicy(Qt.StrongFocus)
        self.glw.installEventFilter(self)
        self.row_axis = LabelAxis("left", spacing_px=15, offset=0.5, width=190)
        self.vb = _ViewBox()
        self.plot = self.glw.addPlot(viewBox=self.vb, axisItems={"left": self.row_axis})
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.vb.invertY(True)
        self.vb.setMouseMode(pg.ViewBox.PanMode)
        self.plot.setLabel("bottom", "channel")
        self.img = _Image(self)
        self.overlay = pg.ImageItem()
        self.plot.addItem(self.img)
        self.plot.addItem(self.overlay)
        self.cbar = pg.ColorBarItem(
            values=(0, 1),
            colorMap=pg.colormap.get("viridis"),
            label=COLOUR_LABEL["rank"],
            interactive=False,
        )
        self.cbar.setImageItem(self.img, insert_in=self.plot)
        self.focus_box = self._box(QPen(QColor(239, 140, 32), 0))
        self.drag_box = self._box(QPen(QColor(255, 255, 255), 0, Qt.DashLine))
        cpen = QPen(QColor(255, 255, 255), 2)
        cpen.setCosmetic(True)
        self.cursor_box = self._box(cpen)
        self.minimap = _Minimap(self)
        self.minimap.setVisible(False)
        self.info = QLabel(self.HELP)
        self.info.setStyleSheet("color:#555")
        self.info.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addLayout(second)
        lay.addWidget(self.glw, 1)
        lay.addWidget(self.minimap)
        lay.addWidget(self.info)
        for combo in (self.order, self.mode, self.colour):
            combo.currentIndexChanged.connect(self._rebuild)
        self.stretch.toggled.connect(self._rebuild)
        self.vb.sigRangeChanged.connect(self._range_changed)
        session.modelChanged.connect(self._model_changed)
        session.scoresChanged.connect(lambda c: c == session.criterion and self._rebuild())
        session.criterionChanged.connect(lambda _c: self._rebuild())
        session.planChanged.connect(self._update_overlay)
        session.focusChanged.connect(self._focus_changed)

    def _box(self, pen: QPen) -> QGraphicsRectItem:
        box = QGraphicsRectItem()
        box.setPen(pen)
        box.setVisible(False)
        box.setZValue(10)
        self.plot.addItem(box)
        return box

    def minimumSizeHint(self):  # noqa: N802
        from PySide6.QtCore import QSize

        return QSize(360, 220)

    # -- data ---------------------------------------------------------------------------
    def _model_changed(self) -> None:
        s = self.session
        self.cursor = None
        self._anchor = None
        if s.loaded:
            names = sorted(set(s.structure.layer_groups()) | set(s.structure.group_index))
            comp = QCompleter(names, self.find)
            comp.setCaseSensitivity(Qt.CaseInsensitive)
            comp.setFilterMode(Qt.MatchContains)
            comp.setMaxVisibleItems(12)
            self.find.setCompleter(comp)
        self._rebuild()

    def _focus_changed(self, gid) -> None:
        if self.mode.currentIndex() == 1:
            self._rebuild()
            return
        self._update_focus_box()
        rows = [r for r, (_, g, _) in enumerate(self.rows) if g == gid]
        if rows:
            self.show_row(rows[0])

    def _row_labels(self) -> list[tuple[str, str, np.ndarray]]:
        s = self.session
        sc = s.current_scores()
        if self.mode.currentIndex() == 1 and s.focus:
            g = s.structure.group_index[s.focus]
            rows = [(layer, g.id, v) for layer, v in sc[g.id].members.items()]
            rows.insert(0, (f"{g.id} (group)", g.id, sc[g.id].group))
            return rows
        stage = {st.id: st.name for st in s.structure.stages}
        return [
            (f"{stage[g.id]} (stage)" if g.id in stage else g.id, g.id, sc[g.id].group)
            for g in s.structure.groups
        ]

    def _rebuild(self) -> None:
        s = self.session
        if not s.loaded:
            return
        if s.current_scores() is None:
            self.img.clear()
            self.overlay.clear()
            self.rows, self.maps = [], []
            self.row_axis.set_labels([])
            self.info.setText(
                f"Scores for '{s.criterion}' are not computed yet"
                + (
                    " (needs data: Model ▸ Data source…)"
                    if s.criterion in self.data_criteria
                    else ""
                )
            )
            return
        self.info.setText(self.HELP)
        self.rows = [
            (lab, gid, np.asarray(v, dtype=np.float64)) for lab, gid, v in self._row_labels()
        ]
        widths = [len(v) for _, _, v in self.rows]
        self.W = max(1, min(max(widths, default=1), MAX_COLUMNS))
        stretch = self.stretch.isChecked()
        by_score = self.order.currentIndex() == 1
        colour = self.colour.currentData()
        img = np.full((len(self.rows), self.W), np.nan, dtype=np.float32)
        self.maps = []
        values = self._colour_values(colour)
        for r, (_, _, v) in enumerate(self.rows):
            c = len(v)
            perm = np.argsort(v, kind="stable") if by_score else np.arange(c)
            n = self.W if stretch or c > self.W else c  # columns the row fills
            cols = np.full(self.W, -1, dtype=np.int64)
            if c:
                cols[:n] = perm[(np.arange(n) * c) // n]
                img[r, :n] = values[r][cols[:n]]
            self.maps.append(cols)
        self.img.setImage(img, autoLevels=False, levels=(0, 1))
        self.img.setRect(QRectF(0, 0, self.W, len(self.rows)))
        self.cbar.getAxis("left").setLabel(COLOUR_LABEL[colour])
        self.row_axis.set_labels(
            [
                f"{lab}  [{len(v)}]" if self.mode.currentIndex() == 0 else lab
                for lab, _, v in self.rows
            ]
        )
        self.plot.setLabel(
            "bottom",
            ("position in row (stretched)" if stretch else "channel")
            + (", weakest first" if by_score else ""),
        )
        n = max(len(self.rows), 1)
        self.vb.setLimits(
            xMin=0, xMax=self.W, yMin=0, yMax=n, minXRange=min(self.W, 4), minYRange=min(n, 2)
        )
        self.minimap.img.setImage(img, autoLevels=False, levels=(0, 1))
        self.minimap.img.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.minimap.img.setRect(QRectF(0, 0, self.W, n))
        self.minimap.getViewBox().setRange(xRange=(0, self.W), yRange=(0, n), padding=0)
        if self.cursor is not None and self.cursor[0] >= len(self.rows):
            self.cursor = None
        self.fit()
        self._update_overlay()
        self._update_focus_box()
        self._update_cursor()

    def _colour_values(self, colour: str) -> list[np.ndarray]:
        """Per row, a value in [0, 1] for each channel (NaN scores stay NaN)."""
        out = []
        if colour == "global":
            allv = np.concatenate([v for _, _, v in self.rows]) if self.rows else np.zeros(0)
            srt = np.sort(allv[np.isfinite(allv)])
            denom = max(len(srt) - 1, 1)
            for _, _, v in self.rows:
                out.append(np.searchsorted(srt, v, side="left") / denom)
            return out
        for _, _, v in self.rows:
            c = len(v)
            if colour == "rank":
                ranks = np.empty(c)
                ranks[np.argsort(v, kind="stable")] = np.arange(c)
                out.append(ranks / max(c - 1, 1))
            else:
                top = float(np.nanmax(np.abs(v))) if c else 0.0
                out.append(v / top if top > 0 else np.zeros(c))
        return out

    def _update_overlay(self) -> None:
        s = self.session
        if not self.rows or s.plan is None:
            return
        rgba = np.zeros((len(self.rows), self.W, 4), dtype=np.uint8)
        dropped = set(s.plan.drop_blocks)
        for r, (_, gid, _) in enumerate(self.rows):
            g = s.structure.group_index[gid]
            inside = self.maps[r] >= 0
            if not g.prunable or (g.block and g.block in dropped):
                rgba[r, inside] = BLOCKED_RGBA
                continue
            removed = s.plan.removed(gid)
            if removed:
                mask = np.zeros(g.channels + 1, bool)  # index -1 (past the end): False
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

    # -- view: zoom, pan, minimap ---------------------------------------------------------
    def fit(self) -> None:
        self.vb.setRange(xRange=(0, self.W), yRange=(0, max(len(self.rows), 1)), padding=0)

    def zoom(self, factor: float) -> None:
        """Zoom the channels axis about the cursor (or the centre of the view)."""
        (x0, x1), _ = self.vb.viewRange()
        cx = self.cursor[1] + 0.5 if self.cursor else (x0 + x1) / 2
        half = max((x1 - x0) * factor / 2, 2.0)
        self.vb.setXRange(cx - half, cx + half, padding=0)

    def center_on(self, x: float, y: float) -> None:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        wx, wy = (x1 - x0) / 2, (y1 - y0) / 2
        self.vb.setRange(xRange=(x - wx, x + wx), yRange=(y - wy, y + wy), padding=0)

    def show_row(self, r: int) -> None:
        """Scroll (not zoom) so that row ``r`` is in view."""
        _, (y0, y1) = self.vb.viewRange()
        if y0 <= r and r + 1 <= y1:
            return
        h = y1 - y0
        top = min(max(r + 0.5 - h / 2, 0), max(len(self.rows) - h, 0))
        self.vb.setYRange(top, top + h, padding=0)

    def show_cell(self, r: int, col: int, px_per_channel: float = 10.0) -> None:
        """Bring a cell into view, zooming in until a channel is clickable."""
        (x0, x1), _ = self.vb.viewRange()
        width_px = max(self.vb.width(), 100.0)
        span = x1 - x0
        if width_px / max(span, 1e-9) < px_per_channel:
            span = max(width_px / px_per_channel, 4.0)
        if not (x0 <= col and col + 1 <= x0 + span) or span != x1 - x0:
            left = min(max(col + 0.5 - span / 2, 0), max(self.W - span, 0))
            self.vb.setXRange(left, left + span, padding=0)
        self.show_row(r)

    def _range_changed(self, *_a) -> None:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        n = max(len(self.rows), 1)
        zoomed = (x1 - x0) < self.W * 0.98 or (y1 - y0) < n * 0.98
        self.minimap.setVisible(bool(self.rows) and zoomed)
        self.minimap.box.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

    # -- cells ----------------------------------------------------------------------------
    def _cell(self, pos) -> tuple[int, int] | None:
        r, col = int(np.floor(pos.y())), int(np.floor(pos.x()))
        if 0 <= r < len(self.rows) and 0 <= col < self.W and self.maps[r][col] >= 0:
            return r, col
        return None

    def _channels(self, r: int, c0: int, c1: int) -> set[int]:
        lo, hi = sorted((c0, c1))
        chans = self.maps[r][lo : hi + 1]
        return {int(c) for c in chans[chans >= 0]}

    def describe(self, r: int, col: int, rich: bool = True) -> str:
        label, gid, v = self.rows[r]
        ch = int(self.maps[r][col])
        g = self.session.structure.group_index[gid]
        layers = g.layers
        more = f" +{len(layers) - 6} more" if len(layers) > 6 else ""
        state = "marked for removal" if ch in set(self.session.plan.removed(gid)) else "kept"
        if not g.prunable:
            state = f"fixed ({g.reason})"
        rank = int(np.sum(v < v[ch])) + 1
        head = (
            f"{label}: channel {ch} of {len(v)} · score {float(v[ch]):.4g} (rank {rank}) · {state}"
        )
        if not rich:
            return head
        return f"<b>{head}</b><br>coupled layers: {', '.join(layers[:6])}{more}"

    def hovered(self, pos) -> None:
        cell = self._cell(pos)
        if cell is None:
            return
        self.img.setToolTip(self.describe(*cell))
        self.info.setText(self.describe(*cell, rich=False))

    def clicked(self, pos, mods) -> None:
        cell = self._cell(pos)
        if cell is None:
            return
        r, col = cell
        self.cursor = (r, col)
        self._update_cursor()
        self._toggle(r, col, extend=bool(mods & Qt.ShiftModifier))

    def _toggle(self, r: int, col: int, extend: bool = False) -> None:
        gid = self.rows[r][1]
        current = set(self.session.plan.removed(gid))
        if extend and self._anchor and self._anchor[0] == r:
            new = current | self._channels(r, self._anchor[1], col)
        else:
            ch = int(self.maps[r][col])
            if ch < 0:  # the padding right of a narrower row: no channel there
                return
            new = current ^ {ch}
            self._anchor = (r, col)
        self._set(gid, new, "select channels")
        # Last: focusing may rebuild the rows (in the focused-group mode).
        self.session.set_focus(gid)

    def dragged(self, p0, p1, start, finish, mods) -> None:
        r0, c0 = int(np.floor(p0.y())), int(np.floor(p0.x()))
        r1, c1 = int(np.floor(p1.y())), int(np.floor(p1.x()))
        n = len(self.rows)
        if not (0 <= r0 < n and 0 <= c0 < self.W):
            return
        r1, c1 = min(max(r1, 0), n - 1), min(max(c1, 0), self.W - 1)
        x0, x1 = sorted((c0, c1))
        y0, y1 = sorted((r0, r1))
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
            chans = self._channels(r, x0, x1)
            if not chans:
                continue
            cur = set(plan.removed(gid))
            new = self._legal(gid, cur - chans if unmark else cur | chans)
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

    # -- finding and the keyboard -------------------------------------------------------
    def goto(self, text: str) -> bool:
        """Go to a layer or group (``NAME`` or ``NAME:CHANNEL``): focus its group, put the
        cursor on it and bring it into view."""
        s = self.session
        text = text.strip()
        if not s.loaded or not text or not self.rows:
            return False
        name, _, chan = text.rpartition(":") if ":" in text else (text, "", "")
        owner = s.structure.layer_groups()
        gid = name if name in s.structure.group_index else owner.get(name)
        if gid is None:
            hits = [n for n in owner if name.lower() in n.lower()]
            gid = owner[hits[0]] if hits else None
        if gid is None:
            st = s.structure
            if name == getattr(st, "classifier", None):
                why = f"{name} is the classifier: its outputs are the classes, never pruned"
            elif name in st.table.index:
                why = f"{name} is in no channel group the studio can prune"
            else:
                why = f"no layer or group named '{name}' in this model"
            self.message.emit(why)
            return False
        s.set_focus(gid)
        rows = [r for r, (lab, g, _) in enumerate(self.rows) if g == gid]
        if self.mode.currentIndex() == 1:
            rows = [r for r, (lab, _, _) in enumerate(self.rows) if lab == name] or rows
        if not rows:
            return False
        r = rows[0]
        col = 0
        if chan:
            try:
                ch = int(chan)
            except ValueError:
                self.message.emit(f"'{chan}' is not a channel number")
                return False
            hit = np.flatnonzero(self.maps[r] == ch) if ch >= 0 else []
            if not len(hit):
                self.message.emit(f"{name} has channels 0 to {len(self.rows[r][2]) - 1}")
                return False
            col = int(hit[0])
        self.cursor = (r, col)
        self._update_cursor()
        self.show_cell(r, col) if chan else self.show_row(r)
        self.info.setText(self.describe(r, col, rich=False))
        self.glw.setFocus()
        return True

    def _update_cursor(self) -> None:
        self.row_axis.highlight = self.cursor[0] if self.cursor else None
        self.row_axis.picture = None
        self.row_axis.update()
        if self.cursor is None or not self.rows:
            self.cursor_box.setVisible(False)
            return
        r, col = self.cursor
        self.cursor_box.setRect(QRectF(col, r, 1, 1))
        self.cursor_box.setVisible(True)

    def _move_cursor(self, dr: int, dc: int, home: bool = False, end: bool = False) -> None:
        if not self.rows:
            return
        r, col = self.cursor or (0, 0)
        r = min(max(r + dr, 0), len(self.rows) - 1)
        last = int(np.sum(self.maps[r] >= 0)) - 1
        col = 0 if home else last if end else min(max(col + dc, 0), max(last, 0))
        self.cursor = (r, col)
        self._update_cursor()
        self.show_cell(r, col, px_per_channel=0.0)
        self.info.setText(self.describe(r, col, rich=False))

    def eventFilter(self, obj, ev):  # noqa: N802
        if obj is self.glw and ev.type() == QEvent.KeyPress:
            return self.handle_key(ev.key(), ev.modifiers())
        return super().eventFilter(obj, ev)

    def handle_key(self, key, mods=Qt.NoModifier) -> bool:
        moves = {
            Qt.Key_Left: (0, -1),
            Qt.Key_Right: (0, 1),
            Qt.Key_Up: (-1, 0),
            Qt.Key_Down: (1, 0),
            Qt.Key_PageUp: (-10, 0),
            Qt.Key_PageDown: (10, 0),
        }
        if key in moves:
            dr, dc = moves[key]
            if mods & Qt.ControlModifier:
                dc *= 16
            self._move_cursor(dr, dc)
        elif key in (Qt.Key_Home, Qt.Key_End):
            self._move_cursor(0, 0, home=key == Qt.Key_Home, end=key == Qt.Key_End)
        elif key in (Qt.Key_Space, Qt.Key_Return, Qt.Key_Enter) and self.cursor:
            self._toggle(*self.cursor, extend=bool(mods & Qt.ShiftModifier))
        elif key in (Qt.Key_Plus, Qt.Key_Equal):
            self.zoom(0.5)
        elif key in (Qt.Key_Minus, Qt.Key_Underscore):
            self.zoom(2.0)
        elif key in (Qt.Key_0, Qt.Key_F):
            self.fit()
        else:
            return False
        return True
