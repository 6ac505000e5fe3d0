"""Dialogs: open a model from any source the core loader accepts, fine-tune settings, and
an error box with expandable details."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)


def error_box(parent, title: str, message: str, details: str = "") -> None:
    box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.open()  # non-blocking: the window keeps running


def ask_trust(parent, path: str, reason: str) -> bool:
    msg = (f"{path} is a pickled Python model, not plain weights.\n\n"
           f"Unpickling can run arbitrary code hidden in the file. Load it only if you "
           f"trust where it came from.\n\n{reason}")
    r = QMessageBox.question(parent, "Trust this file?", msg,
                             QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return r == QMessageBox.Yes


class OpenDialog(QDialog):
    """Returns a load request: ``{"spec", "arch", "pretrained", "input_size"}``."""

    def __init__(self, archs: list[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Open model")
        self.tabs = QTabWidget()
        # torchvision
        tv = QWidget()
        f = QFormLayout(tv)
        self.arch = QComboBox()
        self.arch.setEditable(True)
        self.arch.addItems(archs)
        self.arch.setCurrentText("resnet18")
        self.size = QLineEdit("3,224,224")
        self.pretrained = QCheckBox("torchvision's pretrained weights (cache, then download)")
        f.addRow("Architecture", self.arch)
        f.addRow("Input size C,H,W", self.size)
        f.addRow("", self.pretrained)
        self.tabs.addTab(tv, "torchvision")
        # file
        fw = QWidget()
        ff = QFormLayout(fw)
        row = QHBoxLayout()
        self.path = QLineEdit(placeholderText="checkpoint (.pt/.pth) or a pruned model folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.file_arch = QComboBox()
        self.file_arch.setEditable(True)
        self.file_arch.addItems(["(whole model or pruned folder)", "demo"] + archs)
        self.file_size = QLineEdit(placeholderText="default of the architecture")
        ff.addRow("File", row)
        ff.addRow("Architecture (state_dict)", self.file_arch)
        ff.addRow("Input size C,H,W", self.file_size)
        self.tabs.addTab(fw, "File")
        # demo
        dw = QWidget()
        QVBoxLayout(dw).addWidget(QPushButton("The demo: ResNet-20 trained on handwritten "
                                              "digits (98.6% top-1)", clicked=self._demo))
        self.tabs.addTab(dw, "Demo")
        bb = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs)
        lay.addWidget(bb)
        self._demo_chosen = False

    def _browse(self) -> None:
        p, _ = QFileDialog.getOpenFileName(self, "Checkpoint", "",
                                           "PyTorch files (*.pt *.pth *.ckpt *.bin);;All (*)")
        if p:
            self.path.setText(p)

    def _demo(self) -> None:
        self._demo_chosen = True
        self.accept()

    def request(self) -> dict:
        if self._demo_chosen or self.tabs.currentIndex() == 2:
            return {"spec": "demo"}
        if self.tabs.currentIndex() == 0:
            return {"spec": self.arch.currentText().strip(), "input_size": self.size.text(),
                    "pretrained": self.pretrained.isChecked()}
        arch = self.file_arch.currentText()
        return {"spec": self.path.text().strip(),
                "arch": None if arch.startswith("(") else arch,
                "input_size": self.file_size.text().strip() or None}


class FinetuneDialog(QDialog):
    def __init__(self, parent=None, data: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Fine-tune")
        f = QFormLayout(self)
        self.data = QLineEdit(data or "")
        self.data.setPlaceholderText("demo, cifar10:DIR, an image folder …")
        self.epochs = QSpinBox(minimum=1, maximum=1000, value=5)
        self.lr = QDoubleSpinBox(decimals=4, minimum=1e-4, maximum=1.0, value=0.05,
                                 singleStep=0.01)
        self.opt = QComboBox()
        self.opt.addItems(["sgd", "adamw"])
        self.smooth = QDoubleSpinBox(decimals=2, minimum=0, maximum=0.5, value=0.05,
                                     singleStep=0.05)
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
