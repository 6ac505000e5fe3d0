"""Memory: peak RSS of the window with ResNet-50 (224x224) loaded, mapped and scored, against
a bare Python process holding the same model. Goal: at most 1.5x.

- bare: ``import torch, torchvision``, build resnet50, one forward pass at batch 1 (what a
  script that only holds and runs the model needs);
- window: the main window (offscreen Qt) opens resnet50 -- the load job maps the structure
  (Torch-Pruning's dependency graph, residual blocks, the cost table) and scores it with L1
  -- then scores FPGM and APoZ (8 calibration batches of synthetic data at batch 32), as a
  user clicking through the heatmap's criteria would.

Each is its own process; peak RSS is ``ru_maxrss`` at the end. Also reported: the same two
for the demo, and the window with no model (Qt + pyqtgraph + torch imported).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from common import ROOT, machine, save

BARE = """
import resource, torch, torchvision
from studio.core import load_model
m = load_model({spec!r}).model.eval()
with torch.inference_mode():
    m(torch.zeros(1, *{size}))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

WINDOW = """
import os, resource, time
from PySide6.QtWidgets import QApplication
app = QApplication([])
from studio.gui.mainwindow import MainWindow
w = MainWindow(); w.resize(1600, 1000); w.show(); app.processEvents()
def wait():
    while w.jobs.busy():
        app.processEvents(); time.sleep(0.01)
    app.processEvents()
spec = {spec!r}
if spec:
    w.load({{"spec": spec}}); wait()
    w.session.data_spec = "synthetic"
    for crit in ("fpgm", "apoz"):
        w.actions.score(crit); wait()
    assert {{"l1", "fpgm", "apoz"}} <= set(w.session.scores), w.session.scores.keys()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
os._exit(0)
"""


def peak_mib(code: str) -> float:
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        PRUNING_STUDIO_HOME=tempfile.mkdtemp(prefix="studio-mem-"),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return int(out.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def main():
    t0 = time.perf_counter()
    res = {"window_empty_mib": peak_mib(WINDOW.format(spec=""))}
    for spec, size in (("resnet50", (3, 224, 224)), ("demo", (1, 8, 8))):
        bare = peak_mib(BARE.format(spec=spec, size=size))
        win = peak_mib(WINDOW.format(spec=spec))
        res[spec] = {"bare_mib": bare, "window_mib": win, "ratio": win / bare}
        print(spec, res[spec], flush=True)
    res["seconds"] = time.perf_counter() - t0
    res["self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))
    save("memory", {**res, **machine()})


if __name__ == "__main__":
    main()
