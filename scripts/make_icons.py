"""Render the application icon (studio/resources/icons/pruning-studio.svg) to the PNG sizes
desktops ask for: python scripts/make_icons.py (Qt's SVG renderer, offscreen)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ICONS = Path(__file__).resolve().parents[1] / "studio" / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841
    svg = QSvgRenderer(str(ICONS / "pruning-studio.svg"))
    for n in SIZES:
        img = QImage(n, n, QImage.Format_ARGB32)
        img.fill(Qt.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.Antialiasing)
        svg.render(p)
        p.end()
        img.setText("Software", "pruning-studio install-desktop")  # its marker
        out = ICONS / f"pruning-studio-{n}.png"
        img.save(str(out))
        print(f"wrote {out.relative_to(ICONS.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
