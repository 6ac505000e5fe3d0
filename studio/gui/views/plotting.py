"""pyqtgraph helpers shared by the views."""

from __future__ import annotations

from PySide6.QtWidgets import QGraphicsItem


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
    buf = QBuffer()
    buf.open(QIODevice.WriteOnly)
    qimg.save(buf, "PNG")
    return bytes(buf.data())
