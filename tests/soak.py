"""A soak test of the real window: N random user actions from a seed -- clicks, drags,
keys, sliders, menu actions including apply, fine-tune, pipelines, undo, cancel, loads of
good and bad files, exports. The run must end without a crash, a traceback (pytest-qt
fails the test on any exception in the event loop) or a leaked worker.

``make test`` runs a short soak; ``make soak`` a long one (SOAK_ACTIONS, SOAK_SEED)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

MODS = [Qt.NoModifier, Qt.ShiftModifier, Qt.ControlModifier]


class Monkey:
    def __init__(self, win, seed: int, tmp: Path):
        self.w, self.rng, self.tmp = win, random.Random(seed), tmp
        self.log: list[str] = []
        self.files = self._files()

    def _files(self) -> dict[str, Path]:
        t = self.tmp
        bad = t / "bad.pt"
        bad.write_bytes(bytes(self.rng.randrange(256) for _ in range(512)))
        (t / "bad_plan.json").write_text(
            '{"format": "pruning-studio/plan", "version": 1, '
            '"model": {"arch": "x", "fingerprint": "y"}, '
            '"groups": {"a": [1.5]}}'
        )
        (t / "junk.json").write_text("{")
        return {"bad": bad, "bad_plan": t / "bad_plan.json", "junk": t / "junk.json"}

    # -- the actions ------------------------------------------------------------------
    def click(self):
        hm = self.w.heatmap
        if hm.rows:
            r, c = self.rng.randrange(len(hm.rows)), self.rng.randrange(max(hm.W, 1))
            hm.clicked(QPointF(c + 0.5, r + 0.5), self.rng.choice(MODS))

    def drag(self):
        hm = self.w.heatmap
        if hm.rows:
            p0 = QPointF(self.rng.uniform(0, hm.W), self.rng.uniform(0, len(hm.rows)))
            p1 = QPointF(self.rng.uniform(0, hm.W), self.rng.uniform(0, len(hm.rows)))
            mod = self.rng.choice(MODS)
            hm.dragged(p0, p1, True, False, mod)
            hm.dragged(p0, p1, False, True, mod)

    def slider(self):
        s = self.w.autoselect.slider
        s.setSliderDown(True)
        for _ in range(self.rng.randint(1, 4)):
            s.setValue(self.rng.randint(5, 100))
        s.setSliderDown(False)

    def block(self):
        items = list(self.w.blocks.block_items.values())
        if items:
            it = self.rng.choice(items)
            if it.flags() & Qt.ItemIsEnabled:
                it.setCheckState(2, Qt.Unchecked if it.checkState(2) else Qt.Checked)

    def stage(self):
        spins = list(self.w.blocks.spins.values())
        if spins:
            sp = self.rng.choice(spins)
            sp.setValue(self.rng.randint(sp.minimum(), sp.maximum()))

    def undo(self):
        for _ in range(self.rng.randint(1, 3)):
            QTest.keyClick(self.w, Qt.Key_Z, Qt.ControlModifier)

    def redo(self):
        QTest.keyClick(self.w, Qt.Key_Y, Qt.ControlModifier)

    def criterion(self):
        self.w.heatmap.crit.setCurrentIndex(self.rng.randrange(self.w.heatmap.crit.count()))

    def heatmap_mode(self):
        self.w.heatmap.order.setCurrentIndex(self.rng.randrange(2))
        self.w.heatmap.mode.setCurrentIndex(self.rng.randrange(2))

    def structure_row(self):
        v = self.w.structure
        n = v.proxy.rowCount()
        if n:
            v.table.setCurrentIndex(v.proxy.index(self.rng.randrange(n), 0))

    def apply(self):
        self._wait(self.w.apply_plan())

    def evaluate(self):
        self._wait(self.w.evaluate())

    def latency(self):
        from studio.core.train import evaluate as ev

        orig = ev.compare_latency

        def quick(*a, **k):
            k.update(rounds=2, round_seconds=0.005)
            return orig(*a, **k)

        ev.compare_latency = quick
        try:
            self._wait(self.w.measure_latency())
        finally:
            ev.compare_latency = orig

    def finetune(self):
        from studio.core.train.finetune import FinetuneConfig

        job = self.w.finetune(
            FinetuneConfig(
                epochs=self.rng.randint(1, 2),
                max_steps=4,
                log_every=1,
                kd_weight=self.rng.choice([0, 0.5]),
            )
        )
        if job is not None and self.rng.random() < 0.4:
            job.event.connect(lambda _e: self.w.cancel_job())
        self._wait(job)

    def pipeline(self):
        cfg = self.w.pipeline.config()
        cfg.pipeline = self.rng.choice(["sampling", "search", "sensitivity", "oneshot"])
        cfg.candidates, cfg.generations, cfg.bn_batches = 2, 1, 1
        cfg.ratios, cfg.eval_batches, cfg.score_batches = (0.5,), 1, 1
        cfg.finetune.epochs, cfg.finetune.max_steps = 1, 2
        job = self.w.run_pipeline(cfg)
        if job is not None and self.rng.random() < 0.3:
            job.event.connect(lambda _e: self.w.cancel_job())
        self._wait(job)

    def load_plan(self):
        self.w.load_plan(str(self.rng.choice([self.files["bad_plan"], self.files["junk"]])))

    def save_plan(self):
        self.w.save_plan(str(self.tmp / f"plan{self.rng.randrange(3)}.json"))

    def open_bad(self):
        self._wait(self.w.load({"spec": str(self.files["bad"]), "arch": "demo"}))

    def open_demo(self):
        if self.rng.random() < 0.3:
            self._wait(self.w.load({"spec": "demo"}))

    def exports(self):
        kind = self.rng.choice(["recipe", "model", "report"])
        k = self.rng.randrange(2)
        if kind == "recipe":
            self.w.export_recipe(str(self.tmp / f"recipe{k}.json"))
        elif kind == "model":
            self._wait(self.w.export_model(str(self.tmp / f"model{k}")))
        else:
            self.w.export_report(str(self.tmp / f"report{k}.html"))

    def revert(self):
        self.w.actions.revert()

    def clear(self):
        self.w.session.clear_plan()

    def cancel(self):
        self.w.cancel_job()

    def reset_layout(self):
        self.w.reset_layout()

    ACTIONS = {
        "click": 8,
        "drag": 4,
        "slider": 4,
        "block": 3,
        "stage": 3,
        "undo": 4,
        "redo": 2,
        "criterion": 2,
        "heatmap_mode": 1,
        "structure_row": 2,
        "apply": 2,
        "evaluate": 1,
        "latency": 1,
        "finetune": 1,
        "pipeline": 1,
        "load_plan": 1,
        "save_plan": 1,
        "open_bad": 1,
        "open_demo": 1,
        "exports": 1,
        "revert": 1,
        "clear": 1,
        "cancel": 1,
        "reset_layout": 1,
    }

    # -- driving ----------------------------------------------------------------------
    def _wait(self, job, timeout: float = 120.0):
        t0 = time.monotonic()
        while self.w.jobs.busy() and time.monotonic() - t0 < timeout:
            QApplication.processEvents()
            time.sleep(0.005)
        QApplication.processEvents()

    def _close_boxes(self):
        for wdg in QApplication.topLevelWidgets():
            if isinstance(wdg, QMessageBox) and wdg.isVisible():
                wdg.close()

    def run(self, n: int) -> list[str]:
        names, weights = zip(*self.ACTIONS.items())
        for i in range(n):
            name = self.rng.choices(names, weights)[0]
            self.log.append(name)
            getattr(self, name)()
            QApplication.processEvents()
            if i % 5 == 0:
                self._close_boxes()
        self._wait(None)
        self._close_boxes()
        return self.log


def soak(win, seed: int, n: int, tmp: Path) -> dict:
    monkey = Monkey(win, seed, tmp)
    log = monkey.run(n)
    counts = {k: log.count(k) for k in Monkey.ACTIONS}
    (tmp / "soak-log.json").write_text(json.dumps({"seed": seed, "actions": log}))
    return counts
