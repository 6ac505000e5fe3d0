"""pyqtgraph helpers shared by the views."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsItem


def elide(text: str, n: int = 30) -> str:
    """``text`` cut in the middle to at most ``n`` characters."""
    return text if len(text) <= n else text[: n // 2 - 1] + "…" + text[-(n - n // 2) :]


class LabelAxis(pg.AxisItem):
    """An axis of named positions (rows of a map, bars of a chart) labelled at a level of
    detail: as many names as fit without overlapping, for the positions in view -- every
    one once zoomed in far enough. ``highlight`` is always labelled."""

    def __init__(self, orientation: str, spacing_px: float, offset: float = 0.0, **kw):
        super().__init__(orientation)
        self.labels: list[str] = []
        self.highlight: int | None = None
        self.spacing_px, self.offset = spacing_px, offset
        self._gap = spacing_px
        if "width" in kw:
            self.setWidth(kw["width"])
        self.setStyle(autoExpandTextSpace=False, hideOverlappingLabels=True)

    def set_labels(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self._gap = self.spacing_px
        if self.orientation in ("bottom", "top") and self.labels:
            # names run along the axis: leave room for the longest one shown
            from PySide6.QtGui import QFontMetrics

            metrics = QFontMetrics(self.style.get("tickFont") or self.font())
            widest = max(metrics.horizontalAdvance(elide(t)) for t in self.labels)
            self._gap = max(self.spacing_px, widest + 16)
        self.picture = None
        self.update()

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 - pyqtgraph's name
        if not self.labels or size <= 0:
            return []
        lo_v, hi_v = sorted((minVal, maxVal))  # an inverted view gives them reversed
        lo = max(0, int(np.floor(lo_v)))
        hi = min(len(self.labels), int(np.ceil(hi_v)) + 1)
        per_item = size / max(hi_v - lo_v, 1e-9)
        step = max(1, int(np.ceil(self._gap / max(per_item, 1e-9))))
        shown = list(range(-(-lo // step) * step, hi, step))
        h = self.highlight
        if h is not None and lo <= h < hi and h not in shown:
            near = [i for i in shown if abs(i - h) < step]
            shown = sorted(set(shown) - set(near) | {h})
        return [(float(step), [i + self.offset for i in shown if lo_v <= i + self.offset <= hi_v])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        n = len(self.labels)
        return [elide(self.labels[int(np.floor(v))]) if 0 <= v < n else "" for v in values]


def cache_axes(plot) -> None:
    """Axes do not change on an edit: draw them from a pixmap cache instead of re-rendering
    their text on every repaint (the largest cost of a refresh on big models)."""
    for name in ("left", "bottom", "right", "top"):
        plot.getAxis(name).setCacheMode(QGraphicsItem.DeviceCoordinateCache)


def png(item, width: int = 900) -> bytes:
    """A plot item rendered to PNG bytes (for reports)."""
    import pyqtgraph.exporters as exporters
    from PySide6.QtCore import QBuffer, QIODevice

    exp = exporters.ImageExporter(item)
    exp.parameters()["width"] = width
    qimg = exp.export(toBytes=True)
    qimg.setText("Software", "pruning-studio")  # lets a later export replace the file
    buf = QBuffer()
    buf.open(QIODevice.WriteOnly)
    qimg.save(buf, "PNG")
    return bytes(buf.data())


class IntAxis(pg.AxisItem):
    """An axis of counts (epochs, rounds, steps of a session): whole numbers only."""

    def tickValues(self, minVal, maxVal, size):  # noqa: N802
        lo, hi = sorted((minVal, maxVal))
        levels = []
        for spacing, values in super().tickValues(lo, hi, size):
            ints = [v for v in values if abs(v - round(v)) < 1e-9]
            if spacing >= 1 and ints:
                levels.append((max(spacing, 1.0), ints))
        if not levels and hi - lo < 1e6:
            levels = [(1.0, [float(v) for v in range(int(np.ceil(lo)), int(np.floor(hi)) + 1)])]
        return levels

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        return [str(int(round(v))) for v in values]


def placeholder(plot, text: str) -> pg.TextItem:
    """A grey note in the middle of an empty plot (its axes hidden until data arrives)."""
    item = pg.TextItem(text, color=(120, 120, 120), anchor=(0.5, 0.5))
    item.setPos(0.5, 0.5)
    plot.addItem(item, ignoreBounds=True)
    return item


def show_placeholder(plot, item: pg.TextItem, empty: bool) -> None:
    item.setVisible(empty)
    for ax in ("left", "bottom"):
        plot.getAxis(ax).setStyle(showValues=not empty)
    if empty:
        plot.getViewBox().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        item.setPos(0.5, 0.5)
    else:
        plot.getViewBox().enableAutoRange()


class Hover:
    """A vertical line and a label that follow the pointer over a plot and name the values
    of every curve at the nearest x (TensorBoard's hover)."""

    def __init__(self, plot, curves: dict, fmt: str = "{:.4f}", x_name: str = "x"):
        self.plot, self.curves, self.fmt, self.x_name = plot, curves, fmt, x_name
        self.line = pg.InfiniteLine(angle=90, pen=pg.mkPen(150, 150, 150, style=Qt.DashLine))
        self.label = pg.TextItem(color=(30, 30, 30), fill=pg.mkBrush(255, 255, 255, 220))
        self.label.setZValue(20)
        for item in (self.line, self.label):
            item.setVisible(False)
            plot.addItem(item, ignoreBounds=True)
        self.text = ""
        plot.scene().sigMouseMoved.connect(self.moved)

    def moved(self, scene_pos) -> None:
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            self.line.setVisible(False)
            self.label.setVisible(False)
            return
        p = vb.mapSceneToView(scene_pos)
        self.at(p.x(), p.y())

    def at(self, x: float, y: float | None = None) -> str:
        """Show the values nearest to ``x``; returns the label's text (tests read it)."""
        best, lines = None, []
        for name, curve in self.curves.items():
            xs, ys = curve.getData()
            if xs is None or not len(xs) or not curve.isVisible():
                continue
            i = int(np.argmin(np.abs(np.asarray(xs) - x)))
            best = xs[i] if best is None or abs(xs[i] - x) < abs(best - x) else best
            lines.append(f"{name}: {self.fmt.format(float(ys[i]))}")
        if best is None:
            self.line.setVisible(False)
            self.label.setVisible(False)
            return ""
        xv = f"{best:g}"
        self.text = f"{self.x_name} {xv}\n" + "\n".join(lines)
        self.line.setPos(best)
        self.line.setVisible(True)
        self.label.setText(self.text)
        (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
        right = best > (x0 + x1) / 2  # keep the label inside the plot
        self.label.setAnchor((1, 0) if right else (0, 0))
        self.label.setPos(best, y1)
        self.label.setVisible(True)
        return self.text


def svg(item) -> bytes:
    """A plot item as SVG through Qt's own generator (pyqtgraph's SVG exporter cannot parse
    the paths of current Qt versions)."""
    from PySide6.QtCore import QBuffer, QIODevice, QRectF
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    rect = item.sceneBoundingRect()
    buf = QBuffer()
    buf.open(QIODevice.WriteOnly)
    gen = QSvgGenerator()
    gen.setOutputDevice(buf)
    gen.setSize(rect.size().toSize())
    gen.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
    gen.setTitle("chart")
    gen.setDescription("pruning-studio")  # lets a later export replace the file
    painter = QPainter(gen)
    item.scene().render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
    painter.end()
    return bytes(buf.data())


def export_chart(item, path) -> None:
    """Save a plot as PNG or SVG (by the name's suffix), marked as the studio's so that a
    later export may replace it; never over a file the studio did not write."""
    from pathlib import Path

    from studio.core.errors import OutputError
    from studio.core.io import atomic_write_bytes
    from studio.core.outputs import check_file

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise OutputError(f"{path.name}: charts are saved as .png or .svg")
    check_file(path)
    if suffix == ".svg":
        data = svg(item)
    else:
        data = png(item, width=1600)
    atomic_write_bytes(path, data)
