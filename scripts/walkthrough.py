"""The walkthrough of docs/gui.md, as a new user does it, at 1366x768, one screenshot per
step: xvfb-run -a -s "-screen 0 1366x768x24" python scripts/walkthrough.py docs/images"""

import os
import sys
import tempfile
import time

os.environ["PRUNING_STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-walk-")
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
app = QApplication(sys.argv[:1])
from studio.core.train.finetune import FinetuneConfig  # noqa: E402
from studio.gui import dialogs  # noqa: E402
from studio.gui.mainwindow import MainWindow  # noqa: E402

OUT = sys.argv[1]
win = MainWindow()
win.resize(1366, 768)
win.show()


def pump(n=10):
    for _ in range(n):
        app.processEvents()
        time.sleep(0.01)


def wait():
    while win.jobs.busy():
        app.processEvents()
        time.sleep(0.02)
    pump()


def grab(w, name):
    pump()
    w.grab().save(f"{OUT}/{name}")
    print("wrote", name, flush=True)


pump()
# 1. the model browser: resnet50, 10 classes, 64x64 digits
tv = dialogs.torchvision_entries()
dlg = dialogs.OpenDialog(tv, win)
dlg.search.setText("resnet5")
dlg.select_arch("resnet50")
dlg.cat_args.setText('{"num_classes": 10}')
dlg.size.setText("3,64,64")
dlg.show()
grab(dlg, "walk-1-open.png")
req = dlg.request()
dlg.close()
t0 = time.time()
win.load(req)
wait()
print("opened in", time.time() - t0)
win.session.set_data("demo")
# 2. find layer3.2.conv2:17 and click it
win.heatmap.find.setText("layer3.2.conv2:17")
win.heatmap.goto("layer3.2.conv2:17")
pump()
r, c = win.heatmap.cursor
win.heatmap.clicked(QPointF(c + 0.5, r + 0.5), Qt.NoModifier)
pump()
print(
    "removed:",
    win.session.plan.removed("layer3.2.conv2")
    or win.session.plan.removed(win.session.structure.layer_groups()["layer3.2.conv2"]),
)
grab(win, "walk-2-find.png")
# 3. drop a block, plus auto-select to half the FLOPs
win.autoselect.slider.setValue(50)
win.autoselect.run(merge=True)
pump()
win.docks["blocks"].raise_()
pump()
it = win.blocks.block_items["layer3.5"]
win.blocks.tree.scrollToItem(it) if hasattr(win.blocks, "tree") else None
it.setCheckState(2, Qt.Checked)
pump()
print("dropped:", win.session.plan.drop_blocks)
grab(win, "walk-3-drop.png")
# 4. apply and fine-tune (2 epochs on the digits at 3x64x64, distilled from the original)
win.apply_plan()
wait()
t0 = time.time()
win.finetune(FinetuneConfig(epochs=2, log_every=2, kd_weight=0.5))
wait()
print("fine-tuned in", time.time() - t0)
grab(win, "walk-4-finetune.png")
# 5. evaluate and measure latency: compare
win.evaluate()
wait()
win.measure_latency()
wait()
lat = win.session.results.get("latency", {})
print("speedup", lat.get("speedup"), "iqr", lat.get("speedup_iqr"), "warn", lat.get("warnings"))
grab(win, "walk-5-compare.png")
# 6. the report
out = win.export_report(f"{OUT}/walk-report.html")
print("report", out)
win.session.exported = True
win.session.undo_stack.setClean()
win.close()
