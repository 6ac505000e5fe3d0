"""Fine-tuning loop overhead: training images/s of the studio's loop against a bare PyTorch
loop (same model, data, batch size, optimizer and thread count), driven three ways:

- core: the ``finetune`` generator driven directly (what recipes and pipelines run);
- CLI: ``pruning-studio finetune`` (its per-epoch ``metrics.jsonl``);
- window: the main window's fine-tuning job in its worker thread, while the Qt event loop
  runs and the charts update (offscreen Qt).

Bare, core and window alternate inside one window process, every loop on a worker thread
that exits afterwards (never torch on the GUI thread: once two live threads of a process
have run parallel torch ops, GNU OpenMP stops spin-waiting and small-op training runs up to
2x slower for everyone in it -- measured, see docs/benchmarks.md). The CLI is compared with
the bare loop run as a process of its own, alternating, three rounds. The demo ResNet-20 on 8x8
digits is the worst case for a loop's fixed per-step costs: a step takes a few ms, so any
per-step work shows. Goal: every ratio >= 0.95.

    python benchmarks/bench_finetune.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["PRUNING_STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-bench-")

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from common import ROOT, machine, save  # noqa: E402

from studio.core import load_model  # noqa: E402
from studio.core.train.data import load_data, loader  # noqa: E402
from studio.core.train.finetune import FinetuneConfig, finetune  # noqa: E402
from studio.core.jobs import run  # noqa: E402

EPOCHS, BATCH, ROUNDS = 4, 64, 3


def bare(model, data, epochs=EPOCHS, bs=BATCH):
    """The loop a user would write: SGD, cross-entropy, nothing else."""
    dl = loader(data.train, bs, shuffle=True, seed=0)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    rates = []
    for _ in range(epochs):
        model.train()
        n, t0 = 0, time.perf_counter()
        for x, y in dl:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        rates.append(n / (time.perf_counter() - t0))
    return rates


def config() -> FinetuneConfig:
    return FinetuneConfig(epochs=EPOCHS, lr=0.01, batch_size=BATCH, warmup_epochs=0)


def core(model, data):
    res = run(finetune(model, data, config()))
    return [h["images_per_s"] for h in res["history"]]


def cli(out: Path):
    exe = Path(sys.executable).with_name("pruning-studio")
    subprocess.run(
        [
            str(exe),
            "finetune",
            "demo",
            "--data",
            "demo",
            "--epochs",
            str(EPOCHS),
            "--lr",
            "0.01",
            "--batch-size",
            str(BATCH),
            "--warmup",
            "0",
            "--out",
            str(out),
            "--json",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["images_per_s"] for r in rows if r["type"] == "epoch"]


class Window:
    def __init__(self):
        import pyqtgraph as pg
        from PySide6.QtWidgets import QApplication

        pg.setConfigOptions(imageAxisOrder="row-major")
        self.app = QApplication.instance() or QApplication([])
        from studio.gui.mainwindow import MainWindow

        self.w = MainWindow()
        self.w.resize(1600, 1000)
        self.w.show()
        self.w.load({"spec": "demo"})
        self.wait()

    def wait(self):
        """Run the real event loop (not a polling loop) until no job is left."""
        from PySide6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        timer = QTimer()
        timer.timeout.connect(
            lambda: (self.w.session.loaded and not self.w.jobs.busy()) and loop.quit()
        )
        timer.start(50)
        loop.exec()
        timer.stop()

    def finetune(self):
        events = []
        job = self.w.finetune(config())
        job.event.connect(events.append)
        self.wait()
        return [e["images_per_s"] for e in events if e["type"] == "epoch"]

    def plain_job(self, fn):
        """``fn(model, data)`` in a job of the window's job manager: the same kind of
        worker thread as the window's fine-tuning, without its charts."""
        out = []

        def gen(cancel=None):
            yield {"type": "progress", "step": 0, "total": 1}
            return fn(load_model("demo").model, load_data("demo"))

        job = self.w.jobs.start("bench", gen, mutates=False)
        job.finished.connect(out.append)
        self.wait()
        return out[0]


def in_window(rounds: int) -> dict[str, list[float]]:
    """Bare loop, core loop and the window's job, alternating in one window process; all
    torch work on worker threads, none on the GUI thread (as in a user's window)."""
    win = Window()
    rates = {"bare": [], "core": [], "window": []}
    for _ in range(rounds):
        rates["bare"] += win.plain_job(bare)
        rates["core"] += win.plain_job(core)
        rates["window"] += win.finetune()
    return rates


def one(variant: str):
    """Images/s per epoch of one variant, in this process."""
    if variant == "window":
        return in_window(ROUNDS + 1)
    return bare(load_model("demo").model, load_data("demo"))


def spawn(variant: str, tmp: Path) -> list[float]:
    if variant == "cli":
        return cli(tmp)
    out = subprocess.run(
        [sys.executable, __file__, "--variant", variant],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=("bare", "window"))
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    a = ap.parse_args()
    if a.variant:
        print(json.dumps(one(a.variant)), flush=True)
        os._exit(0)  # skip Qt's teardown of the window
    win = spawn("window", None)  # bare / core / window, in one window process
    proc = {"bare": [], "cli": []}  # bare / CLI, each run its own process
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            proc["bare"] += spawn("bare", None)
            proc["cli"] += spawn("cli", Path(tmp) / f"cli{r}")
    med = {k: statistics.median(v) for k, v in {**win, "cli": proc["cli"]}.items()}
    bare_proc = statistics.median(proc["bare"])
    res = {
        "model": "demo ResNet-20",
        "batch": BATCH,
        "epochs_per_run": EPOCHS,
        "rounds": a.rounds,
        "threads": torch.get_num_threads(),
        "images_per_s": med,
        "bare_process_images_per_s": bare_proc,
        "ratio": {
            "core": med["core"] / med["bare"],
            "window": med["window"] / med["bare"],
            "cli": med["cli"] / bare_proc,
        },
    }
    print(json.dumps(res["ratio"]))
    save("finetune_overhead", {**res, **machine()})


if __name__ == "__main__":
    main()
