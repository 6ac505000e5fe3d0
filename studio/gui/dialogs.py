"""Dialogs: open a model from any source the core accepts (a catalogue of torchvision and
timm architectures with search, a file, the user's own code, the demo), pick the
architecture of a dropped checkpoint, fine-tune settings, consent to run code, and an error
box with expandable details."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.model.request import ModelRequest


def error_box(parent, title: str, message: str, details: str = "") -> QMessageBox:
    """A non-blocking warning; the same one already open is raised, not stacked (a failing
    data criterion fails again on every slider step)."""
    for box in parent.findChildren(QMessageBox) if parent is not None else ():
        if box.isVisible() and box.windowTitle() == title and box.text() == message:
            box.raise_()
            return box
    box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, parent)
    box.setAttribute(Qt.WA_DeleteOnClose)
    if details:
        box.setDetailedText(details)
    box.open()  # non-blocking: the window keeps running
    return box


def ask_trust(parent, path: str, reason: str) -> bool:
    msg = (
        f"{path}\n\n{reason}.\n\nLoading it runs Python code from it (unpickling, or "
        f"importing model code), which can do anything your user account can. Load it "
        f"only if you trust where it came from."
    )
    r = QMessageBox.question(
        parent, "Run code from this file?", msg, QMessageBox.Yes | QMessageBox.No, QMessageBox.No
    )
    return r == QMessageBox.Yes


def _args(text: str) -> dict:
    text = text.strip()
    if not text:
        return {}
    v = json.loads(text)
    if not isinstance(v, dict):
        raise ValueError('model arguments are a JSON object, e.g. {"num_classes": 10}')
    return v


def torchvision_entries() -> list[dict]:
    """The model browser's rows for torchvision's architectures (timm's arrive later)."""
    from studio.core.model import zoo

    return [
        {
            "spec": a,
            "library": "torchvision",
            "family": a.split("_")[0],
            "note": zoo.unsupported_reason(a) or "",
        }
        for a in zoo.architectures()
    ]


class OpenDialog(QDialog):
    """Returns a ``ModelRequest`` (``request()``), or raises ``ValueError`` with the reason
    when the fields do not make one."""

    def __init__(self, entries: list[dict], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Open model")
        self.resize(760, 560)
        archs = [e["spec"] for e in entries if e["library"] == "torchvision"]
        self.tabs = QTabWidget()
        self.tabs.addTab(self._catalogue(entries), "Architectures")
        self.tabs.addTab(self._file_tab(archs), "Checkpoint or folder")
        self.tabs.addTab(self._code_tab(), "Your code")
        dw = QWidget()
        dl = QVBoxLayout(dw)
        dl.addWidget(
            QLabel(
                "A ResNet-20 trained on real handwritten digits (scikit-learn's "
                "8×8 digits, 98.6% top-1). It opens in a second and fine-tunes "
                "on a laptop CPU."
            )
        )
        dl.addWidget(QPushButton("Open the demo", clicked=self._demo))
        dl.addStretch(1)
        self.tabs.addTab(dw, "Demo")
        self.size = QLineEdit(placeholderText="C,H,W or C,L (default: the model's own)")
        self.bb = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        self.bb.accepted.connect(self.accept)
        self.bb.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Input size", self.size)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs)
        lay.addLayout(form)
        lay.addWidget(self.bb)
        self._demo_chosen = False

    # -- tabs ---------------------------------------------------------------------------
    def _catalogue(self, entries: list[dict]) -> QWidget:
        w = QWidget()
        self.cat_model = QStandardItemModel(0, 4)
        self.cat_model.setHorizontalHeaderLabels(["Architecture", "Library", "Family", "Note"])
        self.add_entries(entries)
        self.cat_proxy = QSortFilterProxyModel(self)
        self.cat_proxy.setSourceModel(self.cat_model)
        self.cat_proxy.setFilterKeyColumn(-1)  # any column: name, library, family
        self.cat_proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.search = QLineEdit(placeholderText="Search: resnet, mobilenet, timm, efficientnet …")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.cat_proxy.setFilterFixedString)
        self.cat = QTableView()
        self.cat.setModel(self.cat_proxy)
        self.cat.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.cat.setSelectionMode(QAbstractItemView.SingleSelection)
        self.cat.verticalHeader().setVisible(False)
        self.cat.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.cat.doubleClicked.connect(lambda _i: self.accept())
        self.details = QLabel(" ")
        self.details.setStyleSheet("color:#555")
        self.cat.selectionModel().currentRowChanged.connect(self._selected)
        self.pretrained = QCheckBox("Pretrained weights (local cache first, then download)")
        self.cat_args = QLineEdit(placeholderText='arguments as JSON, e.g. {"num_classes": 10}')
        lay = QVBoxLayout(w)
        lay.addWidget(self.search)
        lay.addWidget(self.cat, 1)
        lay.addWidget(self.details)
        lay.addWidget(self.pretrained)
        lay.addWidget(self.cat_args)
        self.select_arch("resnet18")
        return w

    def add_entries(self, entries: list[dict]) -> None:
        """More architectures (timm's arrive once their catalogue is read in a worker)."""
        for e in entries:
            self.cat_model.appendRow(
                [
                    QStandardItem(e["spec"]),
                    QStandardItem(e["library"]),
                    QStandardItem(e["family"]),
                    QStandardItem(e.get("note", "")),
                ]
            )

    def _selected(self, current, _previous) -> None:
        """Params and FLOPs of the chosen architecture, computed on the meta device in a
        worker (no weights, no memory; the dialog never waits)."""
        if not current.isValid():
            return
        spec = self.cat_proxy.index(current.row(), 0).data()
        self.details.setText(f"{spec}: counting …")
        from superqt.utils import create_worker

        from studio.core.model.catalogue import size

        def show(d, spec=spec):
            try:
                self._show_size(d, spec)
            except RuntimeError:  # the dialog is gone: nothing to show
                pass

        worker = create_worker(size, spec, None, _start_thread=False)
        worker.returned.connect(show)
        self._worker = worker  # kept alive until it reports
        worker.start()

    def _show_size(self, d: dict, spec: str) -> None:
        from studio.format import human

        cur = self.cat.currentIndex()
        if cur.isValid() and self.cat_proxy.index(cur.row(), 0).data() != spec:
            return  # the user moved on
        if "error" in d:
            self.details.setText(f"{spec}: {d['error']}")
        else:
            self.details.setText(
                f"{spec}: {human(d['params'])} params, "
                f"{human(d['flops'])} FLOPs at "
                f"{'×'.join(map(str, d['input_size']))}"
            )

    def select_arch(self, name: str) -> None:
        items = self.cat_model.findItems(name, Qt.MatchExactly, 0)
        if items:
            idx = self.cat_proxy.mapFromSource(items[0].index())
            self.cat.selectRow(idx.row())
            self.cat.scrollTo(idx)

    def _file_tab(self, archs) -> QWidget:
        w = QWidget()
        f = QFormLayout(w)
        row = QHBoxLayout()
        self.path = QLineEdit(
            placeholderText="checkpoint (.pt/.pth/.safetensors) or a folder written by the studio"
        )
        browse = QPushButton("File…", clicked=self._browse)
        folder = QPushButton("Folder…", clicked=self._browse_folder)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        row.addWidget(folder)
        self.file_arch = QComboBox()
        self.file_arch.setEditable(True)
        self.file_arch.addItems(["(a whole pickled model, or a studio folder)", "demo"] + archs)
        f.addRow("File", row)
        f.addRow("Architecture (for a state_dict)", self.file_arch)
        f.addRow(
            QLabel(
                "A state_dict needs its architecture: a torchvision name, "
                "timm:NAME, or FILE.py:NAME."
            )
        )
        return w

    def _code_tab(self) -> QWidget:
        w = QWidget()
        f = QFormLayout(w)
        row = QHBoxLayout()
        self.code_file = QLineEdit(placeholderText="models/resnet.py")
        row.addWidget(self.code_file, 1)
        row.addWidget(QPushButton("Browse…", clicked=self._browse_code))
        self.code_entry = QComboBox()
        self.code_entry.setEditable(True)
        self.code_args = QLineEdit(placeholderText='{"num_classes": 10}')
        self.code_weights = QLineEdit(placeholderText="optional: a state_dict for it")
        f.addRow("Python file", row)
        f.addRow("Class or function", self.code_entry)
        f.addRow("Arguments (JSON)", self.code_args)
        f.addRow("Weights file", self.code_weights)
        f.addRow(
            QLabel(
                "The file runs when the model is built (you chose it). Its folder "
                "goes on the import path, so its sibling modules import."
            )
        )
        self.code_file.editingFinished.connect(self._list_entries)
        return w

    def _browse(self) -> None:
        p, _ = QFileDialog.getOpenFileName(
            self, "Checkpoint", "", "PyTorch files (*.pt *.pth *.ckpt *.bin *.safetensors);;All (*)"
        )
        if p:
            self.path.setText(p)

    def _browse_folder(self) -> None:
        p = QFileDialog.getExistingDirectory(self, "Folder written by the studio")
        if p:
            self.path.setText(p)

    def _browse_code(self) -> None:
        p, _ = QFileDialog.getOpenFileName(self, "Model code", "", "Python (*.py)")
        if p:
            self.code_file.setText(p)
            self._list_entries()

    def _list_entries(self) -> None:
        from studio.core.errors import StudioError
        from studio.core.model.usercode import entries

        p = self.code_file.text().strip()
        if not p or not Path(p).is_file():
            return
        try:
            names = entries(p)
        except StudioError:
            names = []
        self.code_entry.clear()
        self.code_entry.addItems(names)

    def _demo(self) -> None:
        self._demo_chosen = True
        self.accept()

    def request(self) -> ModelRequest:
        size = self.size.text().strip() or None
        tab = self.tabs.currentIndex()
        if self._demo_chosen or tab == 3:
            return ModelRequest(spec="demo", input_size=size)
        if tab == 0:
            idx = self.cat.currentIndex()
            if not idx.isValid():
                raise ValueError("choose an architecture in the list")
            name = self.cat_proxy.index(idx.row(), 0).data()
            return ModelRequest(
                spec=name,
                pretrained=self.pretrained.isChecked(),
                model_args=_args(self.cat_args.text()),
                input_size=size,
            )
        if tab == 1:
            p = self.path.text().strip()
            if not p:
                raise ValueError("give a checkpoint file or a folder")
            arch = self.file_arch.currentText().strip()
            return ModelRequest(
                spec=p, arch=None if arch.startswith("(") else arch, input_size=size
            )
        f, e = self.code_file.text().strip(), self.code_entry.currentText().strip()
        if not f or not e:
            raise ValueError("give the Python file and the class or function in it")
        return ModelRequest(
            spec=f"{f}:{e}",
            model_args=_args(self.code_args.text()),
            weights=self.code_weights.text().strip() or None,
            input_size=size,
        )


def guess_archs(path: str, archs: list[str]) -> list[str]:
    """Architectures ordered by how well their name matches the file name (the guess
    first)."""
    stem = Path(path).name.lower()
    hits = sorted((a for a in archs if a.lower() in stem), key=len, reverse=True)
    return hits + [a for a in archs if a not in hits]


class _ListPicker(QDialog):
    """A list to choose from (double-click or Open), with a line above it."""

    def __init__(self, title: str, text: str, items: list[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.list = QListWidget()
        self.list.addItems(items)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _i: self.accept())
        self.bb = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        self.bb.accepted.connect(self.accept)
        self.bb.rejected.connect(self.reject)
        self.lay = QVBoxLayout(self)
        label = QLabel(text)
        label.setWordWrap(True)
        self.lay.addWidget(label)
        self.lay.addWidget(self.list)

    def finish(self, *extra: QWidget) -> None:
        for w in extra:
            self.lay.addWidget(w)
        self.lay.addWidget(self.bb)


class ArchPicker(_ListPicker):
    """The architecture of a dropped state_dict: a searchable list, the guess first."""

    def __init__(self, path: str, archs: list[str], parent=None):
        super().__init__(
            "Architecture of this checkpoint",
            f"{Path(path).name} holds weights only. Which architecture are they "
            f"for? (Cancel if it is a whole pickled model.)",
            guess_archs(path, archs),
            parent,
        )
        self.filter = QLineEdit(placeholderText="Search, or type timm:NAME / FILE.py:NAME")
        self.filter.textChanged.connect(self._filter)
        self.lay.insertWidget(1, self.filter)
        self.finish()

    def _filter(self, text: str) -> None:
        first = None
        for i in range(self.list.count()):
            it = self.list.item(i)
            hide = text.lower() not in it.text().lower()
            it.setHidden(hide)
            if not hide and first is None:
                first = i
        if first is not None:
            self.list.setCurrentRow(first)

    def arch(self) -> str | None:
        typed = self.filter.text().strip()
        if typed and (":" in typed):
            return typed
        it = self.list.currentItem()
        return it.text() if it is not None and not it.isHidden() else (typed or None)


class CodeEntryPicker(_ListPicker):
    """NAME for a dropped ``.py`` file: its classes and functions (read without running)."""

    def __init__(self, path: str, names: list[str], parent=None):
        super().__init__(
            "Which model in this file?",
            f"Classes and functions defined in {Path(path).name} (nn.Module "
            f"classes first). Opening it runs the file.",
            names,
            parent,
        )
        self.args = QLineEdit(placeholderText='arguments as JSON, e.g. {"num_classes": 10}')
        self.finish(self.args)

    def request(self, path: str) -> ModelRequest:
        it = self.list.currentItem()
        if it is None:
            raise ValueError("the file defines no class or function")
        return ModelRequest(spec=f"{path}:{it.text()}", model_args=_args(self.args.text()))


class FinetuneDialog(QDialog):
    def __init__(self, parent=None, data: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Fine-tune")
        f = QFormLayout(self)
        self.data = QLineEdit(data or "")
        self.data.setPlaceholderText("demo, cifar10:DIR, an image folder …")
        self.epochs = QSpinBox(minimum=1, maximum=1000, value=5)
        self.lr = QDoubleSpinBox(decimals=4, minimum=1e-4, maximum=1.0, value=0.05, singleStep=0.01)
        self.opt = QComboBox()
        self.opt.addItems(["sgd", "adamw"])
        self.smooth = QDoubleSpinBox(
            decimals=2, minimum=0, maximum=0.5, value=0.05, singleStep=0.05
        )
        self.kd = QCheckBox("distil from the original model")
        self.kd.setChecked(True)
        f.addRow("Data", self.data)
        f.addRow("Epochs", self.epochs)
        f.addRow("Learning rate", self.lr)
        f.addRow("Optimizer", self.opt)
        f.addRow("Label smoothing", self.smooth)
        f.addRow("", self.kd)
        bb = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        f.addRow(bb)

    def config(self):
        from studio.core.train.finetune import FinetuneConfig

        return FinetuneConfig(
            epochs=self.epochs.value(),
            lr=self.lr.value(),
            optimizer=self.opt.currentText(),
            label_smoothing=self.smooth.value(),
            kd_weight=0.5 if self.kd.isChecked() else 0.0,
        )
