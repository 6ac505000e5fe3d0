"""Help ▸ Shortcuts, First steps and About (version and the licences of the stack)."""

from __future__ import annotations

from importlib import metadata

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
)

import studio


def app_icon():
    """The application icon, every size (window title bar, task switcher, About)."""
    from importlib.resources import files

    from PySide6.QtGui import QIcon

    icons = files("studio") / "resources" / "icons"
    icon = QIcon()
    for n in (16, 24, 32, 48, 64, 128, 256, 512):
        icon.addFile(str(icons / f"pruning-studio-{n}.png"))
    return icon


# The libraries the studio is built on, with their licences (as their projects state them).
STACK = (
    ("PySide6 (Qt for Python)", "PySide6", "LGPL-3.0-only"),
    ("pyqtgraph", "pyqtgraph", "MIT"),
    ("superqt", "superqt", "BSD-3-Clause"),
    ("PyTorch", "torch", "BSD-3-Clause"),
    ("torchvision", "torchvision", "BSD-3-Clause"),
    ("Torch-Pruning", "torch-pruning", "MIT"),
    ("fvcore", "fvcore", "Apache-2.0"),
    ("timm", "timm", "Apache-2.0"),
    ("NumPy", "numpy", "BSD-3-Clause"),
    ("pydantic", "pydantic", "MIT"),
    ("safetensors", "safetensors", "Apache-2.0"),
    ("ONNX", "onnx", "Apache-2.0"),
    ("ONNX Runtime", "onnxruntime", "MIT"),
    ("PyYAML", "PyYAML", "MIT"),
)

# Keys of the heatmap (not menu actions, so listed here).
HEATMAP_KEYS = (
    ("Heatmap", "click / shift-click", "mark a channel / a range in its row"),
    ("Heatmap", "drag / ctrl-drag", "mark / unmark a rectangle"),
    ("Heatmap", "wheel (shift: channels, ctrl: rows)", "zoom about the pointer"),
    ("Heatmap", "middle-drag, minimap", "pan"),
    ("Heatmap", "arrows, Page Up/Down, Home/End", "move the cursor (ctrl: 16 channels)"),
    ("Heatmap", "Space or Enter", "mark or unmark the channel under the cursor"),
    ("Heatmap", "+ / - / 0", "zoom in / out / fit"),
)

FIRST_STEPS = """
<h3>First steps</h3>
<ol>
<li><b>Open a model</b>: File ▸ Open demo (a ResNet-20 trained on real handwritten digits;
the cluttered-digits demo is the harder task),
or File ▸ Open model… for torchvision and timm architectures, checkpoints, saved folders and
your own model code. Dropping a file on the window works too.</li>
<li><b>Look</b>: the heatmap shows every channel group (rows) and its channels coloured by
importance under the chosen criterion (dark: weak). <i>Find layer</i> jumps to a layer;
hover a cell for its score and coupled layers. The widths chart below shows the network's
shape; click a bar to focus its group.</li>
<li><b>Choose what to remove</b>: click channels in the heatmap, tick whole blocks under
<i>Stages and blocks</i>, or move <i>Keep FLOPs</i> in Auto-select. The bar at the top
shows the predicted params and FLOPs at once; Ctrl+Z undoes any step.</li>
<li><b>Prune</b>: Model ▸ Apply plan (Ctrl+P) physically removes the channels (smaller dense
tensors). With Model ▸ Reconstruct consumers when pruning ticked, the layers that read the
removed channels are refit by least squares to the original's outputs (needs data): far
better accuracy before any fine-tuning.</li>
<li><b>Recover and measure</b>: choose Model ▸ Data source (the demo uses its digits), then
Fine-tune (Ctrl+T), Evaluate (Ctrl+E) and Measure latency (in the runtime chosen in
Model ▸ Latency runtime: PyTorch, the deploy treatment or onnxruntime). Compare shows
original vs current with the spread of the timings.</li>
<li><b>Share</b>: File ▸ Export the pruned model, ONNX, a recipe that replays the session
headless (<code>pruning-studio run --recipe FILE</code>) or a report (HTML or PDF).</li>
</ol>
<p>Everything here is also a command: <code>pruning-studio --help</code>.</p>
"""


# Distributions that install the same modules under another name.
ALSO_AS = {"PySide6": ("PySide6-Essentials",), "onnxruntime": ("onnxruntime-gpu",)}


def version(dist: str) -> str:
    for name in (dist, *ALSO_AS.get(dist, ())):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _dialog(parent, title: str, widget, width: int = 640, height: int = 480) -> QDialog:
    dlg = QDialog(parent)
    dlg.setWindowTitle(title)
    lay = QVBoxLayout(dlg)
    lay.addWidget(widget)
    bb = QDialogButtonBox(QDialogButtonBox.Close)
    bb.rejected.connect(dlg.reject)
    bb.accepted.connect(dlg.accept)
    lay.addWidget(bb)
    dlg.resize(width, height)
    return dlg


def shortcut_rows(menubar) -> list[tuple[str, str, str]]:
    """(menu, keys, action) of every menu action with a shortcut, then the heatmap's keys."""
    rows = []

    def walk(menu: QMenu, path: str) -> None:
        for a in menu.actions():
            if a.menu() is not None:
                walk(a.menu(), f"{path} ▸ {a.menu().title().replace('&', '')}")
            elif a.shortcuts():
                keys = ", ".join(k.toString() for k in a.shortcuts())
                rows.append((path, keys, a.text().replace("&", "")))

    for a in menubar.actions():
        if a.menu() is not None:
            walk(a.menu(), a.menu().title().replace("&", ""))
    return rows + list(HEATMAP_KEYS)


def shortcuts_dialog(parent, menubar) -> QDialog:
    rows = shortcut_rows(menubar)
    table = QTableWidget(len(rows), 3)
    table.setHorizontalHeaderLabels(["where", "keys", "does"])
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.NoEditTriggers)
    for i, row in enumerate(rows):
        for j, text in enumerate(row):
            table.setItem(i, j, QTableWidgetItem(text))
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return _dialog(parent, "Keyboard shortcuts", table)


def first_steps_dialog(parent) -> QDialog:
    text = QTextBrowser()
    text.setHtml(FIRST_STEPS)
    return _dialog(parent, "First steps", text, 620, 520)


def about_html() -> str:
    rows = "".join(
        f"<tr><td>{name}</td><td>{version(dist)}</td><td>{lic}</td></tr>"
        for name, dist, lic in STACK
    )
    return (
        f"<h3>Pruning Studio {studio.__version__}</h3>"
        "<p>See, choose and physically remove the filters, stage channels and residual "
        "blocks of a CNN; fine-tune, measure and export the result. Licence: MIT.</p>"
        "<p>Built on these libraries (their licences apply to them):</p>"
        "<table cellpadding='3'><tr><th align='left'>library</th><th align='left'>version"
        f"</th><th align='left'>licence</th></tr>{rows}</table>"
    )


def about_dialog(parent) -> QDialog:
    text = QTextBrowser()
    text.setHtml(about_html())
    return _dialog(parent, "About Pruning Studio", text, 560, 520)


def add_help_menu(window) -> QMenu:
    m = window.menuBar().addMenu("&Help")
    m.addAction("First steps", lambda: first_steps_dialog(window).exec())
    m.addAction("Keyboard shortcuts", lambda: shortcuts_dialog(window, window.menuBar()).exec())
    m.addSeparator()
    m.addAction("About Pruning Studio", lambda: about_dialog(window).exec())
    return m
