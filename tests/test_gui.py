"""The window, driven as a user would (pytest-qt, offscreen)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QPointF, Qt, QThreadPool  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

pg.setConfigOptions(imageAxisOrder="row-major")


@pytest.fixture(autouse=True)
def questions(monkeypatch):
    """Modal questions would block a test run: each one is recorded and answered Yes
    (tests that need another answer patch it themselves)."""
    asked = []

    def answer(parent, title, text, *a, **k):
        asked.append((title, text))
        return QMessageBox.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    return asked


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_STUDIO_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    # No test may leave a worker thread running.
    assert QThreadPool.globalInstance().waitForDone(60000), "a worker is still running"
    assert QThreadPool.globalInstance().activeThreadCount() == 0


@pytest.fixture()
def win(qtbot):
    from studio.gui.mainwindow import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.session.modelChanged, timeout=60000):
        w.load({"spec": "demo"})
    qtbot.waitUntil(lambda: not w.jobs.busy(), timeout=60000)
    yield w
    w.jobs.wait_all()
    w.session.undo_stack.clear()


def _wait_job(qtbot, w, job, timeout=120000):
    assert job is not None
    with qtbot.waitSignal(job.done, timeout=timeout):
        pass
    qtbot.waitUntil(lambda: not w.jobs.busy(), timeout=timeout)


def _click(view, row, col, mods=Qt.NoModifier):
    view.clicked(QPointF(col + 0.5, row + 0.5), mods)


def test_window_opens_with_the_demo(win):
    s = win.session
    assert s.loaded and s.lm.arch == "demo_resnet20"
    assert "demo" in win.summary.labels["model"].text()
    assert win.structure.model.rowCount() > 20
    assert len(win.heatmap.rows) == 12
    assert "l1" in s.scores


def test_heatmap_click_changes_plan_and_summary_and_undo(win):
    s = win.session
    before = s.predicted().flops
    row = next(r for r, (_, gid, _) in enumerate(win.heatmap.rows) if gid == "layer2.1.conv1")
    _click(win.heatmap, row, 0)
    assert s.plan.removed("layer2.1.conv1") == [int(win.heatmap.maps[row][0])]
    assert s.predicted().flops < before
    assert "−" in win.summary.labels["flops"].text()
    _click(win.heatmap, row, 30, Qt.ShiftModifier)  # extend to a range
    assert len(s.plan.removed("layer2.1.conv1")) > 10
    s.undo_stack.undo()
    assert len(s.plan.removed("layer2.1.conv1")) == 1
    s.undo_stack.undo()
    assert s.plan.is_empty() and s.predicted().flops == before
    s.undo_stack.redo()
    assert len(s.plan.removed("layer2.1.conv1")) == 1
    # the overlay marks the removed channel in red
    assert win.heatmap.overlay.image[row, 0, 0] == 220


def test_drag_rectangle_is_one_undo_step_and_never_empties_a_group(win):
    s = win.session
    n0 = s.undo_stack.count()
    win.heatmap.dragged(QPointF(0, 0), QPointF(10, 3.5), True, False, Qt.NoModifier)
    win.heatmap.dragged(QPointF(0, 0), QPointF(10, 3.5), False, True, Qt.NoModifier)
    assert s.undo_stack.count() == n0 + 1
    assert len([g for g in s.plan.groups if s.plan.groups[g]]) == 4
    # the whole width of a row: refused (a group keeps a channel)
    win.heatmap.dragged(QPointF(0, 5), QPointF(win.heatmap.W - 1, 5), False, True, Qt.NoModifier)
    gid = win.heatmap.rows[5][1]
    assert len(s.plan.removed(gid)) < s.structure.group_index[gid].channels


def test_block_toggle_and_stage_width(win):
    s = win.session
    item = win.blocks.block_items["layer3.1"]
    item.setCheckState(2, Qt.Checked)
    assert s.plan.drop_blocks == ["layer3.1"]
    assert not (win.blocks.block_items["layer2.0"].flags() & Qt.ItemIsEnabled)
    spin = win.blocks.spins[s.structure.stages[0].id]
    spin.setValue(10)
    assert len(s.plan.removed(s.structure.stages[0].id)) == 6
    s.undo_stack.undo()
    s.undo_stack.undo()
    assert s.plan.is_empty()


def test_autoselect_slider_reaches_the_target_in_one_undo_step(win):
    s = win.session
    n0 = s.undo_stack.count()
    win.autoselect.slider.setSliderDown(True)
    for v in (90, 70, 50):
        win.autoselect.slider.setValue(v)
    win.autoselect.slider.setSliderDown(False)
    assert s.predicted().flops <= 0.5 * s.structure.original.flops
    assert s.undo_stack.count() == n0 + 1
    # structure view shows planned widths
    model = win.structure.model
    col = model.data(model.index(2, 3))
    assert "→" in col


def test_structure_selection_highlights_the_coupled_layers(win, qtbot):
    s = win.session
    view = win.structure
    src_row = next(i for i, r in enumerate(view.model.rows) if r.name == "layer1.1.conv2")
    view.table.setCurrentIndex(view.proxy.mapFromSource(view.model.index(src_row, 0)))
    qtbot.waitUntil(lambda: s.focus == "conv1", timeout=2000)  # the first stage's group
    assert {"conv1", "layer1.0.conv2", "layer2.0.conv1"} <= view.model.members


def test_apply_evaluate_and_finetune_jobs(win, qtbot):
    s = win.session
    win.autoselect.slider.setValue(50)
    win.autoselect.run(merge=False)
    flops0 = s.structure.original.flops
    _wait_job(qtbot, win, win.apply_plan())
    assert s.structure.original.flops <= 0.5 * flops0
    assert len(s.history) == 2 and s.plan.is_empty()
    _wait_job(qtbot, win, win.evaluate())
    assert s.results["eval_original"]["top1"] > 0.97
    assert win.compare.table.item(0, 0).text() != "—"
    from studio.core.train.finetune import FinetuneConfig

    events = []
    job = win.finetune(FinetuneConfig(epochs=1, max_steps=8, log_every=2, kd_weight=0.5))
    job.event.connect(events.append)
    _wait_job(qtbot, win, job)
    assert any(e["type"] == "step" for e in events)
    assert any(e["type"] == "epoch" for e in events)
    assert win.charts.steps and s.results["eval_current"]["top1"] > 0


def test_cancel_a_finetune_changes_nothing(win, qtbot):
    from studio.core.train.finetune import FinetuneConfig

    lm = win.session.lm
    job = win.finetune(FinetuneConfig(epochs=50, log_every=1))
    with qtbot.waitSignal(job.event, timeout=60000):
        pass
    win.cancel_job()
    _wait_job(qtbot, win, job)
    assert win.session.lm is lm  # cancelled before an epoch ended: nothing changed
    assert len(win.session.history) == 1


@pytest.mark.parametrize("keep", [False, True])
def test_cancel_after_an_epoch_asks_to_keep_the_partial_result(win, qtbot, keep):
    from studio.core.train.finetune import FinetuneConfig

    s = win.session
    lm = s.lm
    asked = []
    win.actions.keepPartial.disconnect()
    win.actions.keepPartial.connect(lambda q, yes: (asked.append(q), keep and yes()))
    job = win.finetune(FinetuneConfig(epochs=40, log_every=1))
    job.event.connect(lambda e: e["type"] == "epoch" and win.cancel_job())
    _wait_job(qtbot, win, job)
    assert asked and "Keep this partial result" in asked[0]
    if keep:
        assert s.lm is not lm and s.history[-1]["label"] == "fine-tuned"
        assert s.steps and "finetune" in s.steps[-1]
    else:
        assert s.lm is lm and len(s.history) == 1


def test_bad_file_shows_an_error_and_keeps_the_model(win, qtbot, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(os.urandom(512))
    lm = win.session.lm
    job = win.load({"spec": str(bad), "arch": "resnet18"})
    _wait_job(qtbot, win, job)
    boxes = [
        w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()
    ]
    assert boxes and "cannot be read" in boxes[0].text()
    boxes[0].close()
    assert win.session.lm is lm


def test_untrusted_pickle_asks_and_respects_no(win, qtbot, tmp_path, monkeypatch):
    import torch

    from studio.core.model.demo import DemoResNet
    from studio.gui import dialogs

    f = tmp_path / "whole.pt"
    torch.save(DemoResNet(), f)
    asked = []
    monkeypatch.setattr(dialogs, "ask_trust", lambda *a: asked.append(a) or False)
    lm = win.session.lm
    _wait_job(qtbot, win, win.load({"spec": str(f), "input_size": "1,8,8"}))
    assert asked and win.session.lm is lm


def test_exports(win, qtbot, tmp_path):
    from studio.core import Plan, load_model

    s = win.session
    win.autoselect.slider.setValue(60)
    win.autoselect.run(merge=False)
    win.save_plan(str(tmp_path / "plan.json"))
    assert Plan.load(tmp_path / "plan.json").groups == s.plan.groups  # the CLI's format
    win.export_recipe(str(tmp_path / "recipe.json"))
    rec = json.loads((tmp_path / "recipe.json").read_text())
    assert rec["format"] == "pruning-studio/recipe"
    assert rec["steps"][-1]["plan"]["groups"] == s.plan.to_dict()["groups"]
    _wait_job(qtbot, win, win.apply_plan())
    _wait_job(qtbot, win, win.export_model(str(tmp_path / "model")))
    assert load_model(str(tmp_path / "model")).model is not None
    _wait_job(qtbot, win, win.export_onnx(str(tmp_path / "m.onnx")))
    assert (tmp_path / "m.onnx").stat().st_size > 1000
    _wait_job(qtbot, win, win.export_deploy(str(tmp_path / "m.pt2")))
    from studio.core.export.deploy import written_by_studio

    assert written_by_studio(tmp_path / "m.pt2")
    out = win.export_report(str(tmp_path / "report.html"))
    text = Path(out).read_text()
    assert "data:image/png;base64," in text and "Per-layer table" in text


def test_recovery_restores_original_current_and_plan(win, qtbot, studio_home):
    """After pruning and fine-tuning, a crash must bring back the fine-tuned model (not the
    pruned one before training), the original (for Compare) and the plan being edited."""
    import torch

    from studio.core.train.finetune import FinetuneConfig
    from studio.gui.mainwindow import MainWindow

    s = win.session
    win.autoselect.slider.setValue(60)
    win.autoselect.run(merge=False)
    _wait_job(qtbot, win, win.apply_plan())
    _wait_job(qtbot, win, win.finetune(FinetuneConfig(epochs=1, max_steps=4)))
    qtbot.waitUntil(lambda: not win.jobs.busy(), timeout=60000)  # the recovery copy
    win.autoselect.slider.setValue(80)
    win.autoselect.run(merge=False)
    win.recovery.write()
    snap = win.recovery.pending()
    assert snap and snap["folder"]
    other = MainWindow()
    qtbot.addWidget(other)
    _wait_job(qtbot, other, other.recovery.restore(snap))
    o = other.session
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(o.lm.model(x), s.lm.model(x))  # the fine-tuned weights
        torch.testing.assert_close(o.original.model(x), s.original.model(x))
    assert o.plan.groups == s.plan.groups and o.steps == s.steps
    assert [h["label"] for h in o.history] == [h["label"] for h in s.history]
    s.exported = o.exported = True
    s.undo_stack.setClean()
    o.undo_stack.setClean()
    other.jobs.wait_all()


def test_recent_models_survive_a_restart_and_bad_settings(win, qtbot, studio_home):
    """One recent model used to come back from QSettings as a bare string and stop the
    next start; unreadable entries are skipped."""
    from studio.gui.mainwindow import MainWindow

    assert [a.text() for a in win.recent_menu.actions()] == ["demo"]
    again = MainWindow()  # a second start reads the same settings
    qtbot.addWidget(again)
    assert [a.text() for a in again.recent_menu.actions()] == ["demo"]
    for junk in ("{", '{"spec": "demo"}', ["{", "x"], '[1, {"spec": 2}]'):
        again.settings.setValue("recent", junk)
        third = MainWindow()
        qtbot.addWidget(third)
        assert [a.text() for a in third.recent_menu.actions()] == []


def test_heatmap_click_on_resnet50(qtbot):
    """A click works on ResNet-50's 37 groups and 11k channels (its refresh time is
    measured in the benchmarks, not here)."""
    from studio.gui.mainwindow import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.session.modelChanged, timeout=120000):
        w.load({"spec": "resnet50", "input_size": "3,64,64"})
    qtbot.waitUntil(lambda: not w.jobs.busy(), timeout=60000)
    assert w.heatmap.W == 2048 and len(w.heatmap.rows) == 37
    _click(w.heatmap, 36, 100)
    assert w.session.plan.n_removed() >= 1
    assert np.isfinite(w.session.predicted().flops)


def test_screenshot_offscreen(tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "gui",
            "demo",
            "--screenshot",
            str(out),
            "--flops-target",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert img.width() >= 1200 and img.height() >= 800


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="Xvfb not installed")
@pytest.mark.parametrize("screen", ["1366x768", "1920x1080"])
def test_real_window_under_xvfb(tmp_path, screen):
    """The real window on a real X server: it fits a laptop screen and paints."""
    out = tmp_path / "xvfb.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    r = subprocess.run(
        [
            "xvfb-run",
            "-a",
            "-s",
            f"-screen 0 {screen}x24",
            sys.executable,
            "-m",
            "studio",
            "gui",
            "demo",
            "--screenshot",
            str(out),
            "--size",
            screen,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    if "could not connect to display" in r.stderr or "xcb" in r.stderr and r.returncode:
        pytest.skip("Xvfb present but Qt's xcb plugin cannot start here")
    assert r.returncode == 0, r.stderr[-2000:]
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    w, h = (int(v) for v in screen.split("x"))
    assert w - 40 <= img.width() <= w and img.height() <= h  # fits the screen
    # not blank: many distinct colours (heatmap, bars)
    colours = {
        img.pixel(x, y) for x in range(0, img.width(), 37) for y in range(0, img.height(), 29)
    }
    assert len(colours) > 20


def test_pipeline_panel_sampling_and_recipe_export(win, qtbot, tmp_path):
    from studio.core.recipe import Recipe

    s = win.session
    cfg = win.pipeline.config()
    cfg.pipeline, cfg.candidates, cfg.bn_batches, cfg.flops_target = "sampling", 3, 2, 0.5
    cfg.finetune.epochs, cfg.finetune.max_steps = 1, 2
    flops0 = s.structure.original.flops
    _wait_job(qtbot, win, win.run_pipeline(cfg))
    assert len(win.pipeline.points) == 3
    assert s.structure.original.flops <= 0.5 * flops0 and s.history[-1]["label"] == "sampling"
    rec = win.export_pipeline_recipe(win.pipeline.config(), str(tmp_path / "r.json"))
    steps = Recipe.load(tmp_path / "r.json").all_steps()
    assert [st.kind for st in steps] == ["pipeline", "pipeline"]  # what ran, then the new one
    assert steps[0].pipeline.candidates == 3 and rec.steps[-1].pipeline is not None


def test_pipeline_panel_amc_shows_its_settings_and_candidates(win, qtbot):
    p = win.pipeline
    p.mode.setCurrentIndex(p.mode.findData("amc"))
    assert not p.form.isRowVisible(p.rounds) and p.form.isRowVisible(p.episodes)
    p.mode.setCurrentIndex(p.mode.findData("metapruning"))
    assert p.form.isRowVisible(p.meta_epochs) and not p.form.isRowVisible(p.episodes)
    p.reconstruct.setChecked(True)
    cfg = p.config()
    assert cfg.pipeline == "metapruning" and cfg.reconstruct
    cfg.pipeline, cfg.episodes, cfg.bn_batches, cfg.eval_batches = "amc", 3, 1, 1
    cfg.finetune.epochs, cfg.finetune.max_steps = 1, 2
    s = win.session
    flops0 = s.structure.original.flops
    _wait_job(qtbot, win, win.run_pipeline(cfg))
    assert len(p.points) == 3  # every episode on the FLOPs/accuracy chart
    assert s.structure.original.flops <= cfg.flops_target * flops0


def test_apply_with_reconstruction_needs_data_and_refits(win, qtbot):
    s = win.session
    win.autoselect.slider.setValue(50)
    win.autoselect.run(merge=False)
    win.act_reconstruct.trigger()
    assert win.actions.reconstruct
    spec, s.data_spec = s.data_spec, None
    messages = []
    win.actions.message.connect(lambda m, _t: messages.append(m))
    assert win.apply_plan() is None and "needs data" in messages[-1]
    s.data_spec = spec or "demo"
    _wait_job(qtbot, win, win.apply_plan())
    assert "layers reconstructed" in messages[-1]
    assert s.steps[-1]["reconstruct"] is True  # an exported recipe replays the refit
    from studio.core.recipe import make_recipe

    rec = make_recipe({"spec": "demo"}, s.steps, data="demo")
    assert rec.all_steps()[-1].reconstruct


def test_pipeline_panel_sensitivity_suggests_an_undoable_plan(win, qtbot):
    s = win.session
    cfg = win.pipeline.config()
    cfg.pipeline, cfg.ratios, cfg.bn_batches = "sensitivity", (0.3, 0.7), 2
    _wait_job(qtbot, win, win.run_pipeline(cfg))
    assert len(win.pipeline.curves) == 12
    win.pipeline.suggest_target.setValue(0.6)
    win.pipeline._use_suggestion()
    assert s.predicted().flops <= 0.6 * s.structure.original.flops
    s.undo_stack.undo()
    assert s.plan.is_empty()
    # clicking a curve focuses its group
    g, item = next(iter(win.pipeline.curves.items()))
    item.sigClicked.emit(item, None)
    assert s.focus == g


def test_pause_resume_and_close_during_a_job(win, qtbot, monkeypatch):
    from studio.core.train.finetune import FinetuneConfig

    steps = []
    job = win.finetune(FinetuneConfig(epochs=30, log_every=1))
    job.event.connect(lambda e: e["type"] == "step" and steps.append(e["step"]))
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=60000)
    win.pause_btn.setChecked(True)
    qtbot.waitUntil(lambda: job.worker.is_paused, timeout=10000)
    n = len(steps)
    qtbot.wait(400)
    assert len(steps) <= n + 1  # at most the step that was already under way
    win.pause_btn.setChecked(False)
    qtbot.waitUntil(lambda: len(steps) > n + 1, timeout=60000)
    # closing asks, then cancels and waits for the worker
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    win.close()
    assert not win.jobs.busy()


def test_pareto_front():
    from studio.gui.views.pipeline import pareto

    pts = np.array([[0.30, 0.5], [0.28, 0.6], [0.29, 0.4], [0.25, 0.2], [0.31, 0.7]])
    assert list(pareto(pts)) == [3, 1, 4]  # by FLOPs: each more accurate than all cheaper


def test_jobs_use_the_default_threads_and_their_threads_exit(win, qtbot, monkeypatch):
    """Jobs run with PyTorch's default thread count (PRUNING_STUDIO_THREADS overrides) in a
    thread that exits afterwards: an idle thread keeping its OpenMP team would slow every
    later job (docs/benchmarks.md)."""
    import torch

    from studio.gui.jobs import _DEFAULT_THREADS

    def probe(cancel=None):
        yield {"type": "progress", "step": 0, "total": 1, "what": "probe"}
        return torch.get_num_threads()

    seen = []
    for env, want in ((None, _DEFAULT_THREADS), ("1", 1)):
        if env:
            monkeypatch.setenv("PRUNING_STUDIO_THREADS", env)
        job = win.jobs.start("probe", probe, mutates=False)
        job.finished.connect(seen.append)
        _wait_job(qtbot, win, job)
        assert seen[-1] == want
    assert QThreadPool.globalInstance().expiryTimeout() == 0
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0)


def test_soak_random_user_actions(win, qtbot, tmp_path):
    """Random actions from a seed (tests/soak.py): no crash, no exception in the event loop
    (pytest-qt fails the test), no worker left; the window still works afterwards."""
    import time

    from tests.soak import soak

    n = int(os.environ.get("SOAK_ACTIONS", "60"))
    seed = int(os.environ.get("SOAK_SEED", "1"))
    t0 = time.perf_counter()
    counts = soak(win, seed, n, tmp_path)
    assert sum(counts.values()) == n
    win.jobs.wait_all()
    assert QThreadPool.globalInstance().waitForDone(60000)
    s = win.session
    assert s.loaded and np.isfinite(s.predicted().flops)
    _click(win.heatmap, 0, 0)  # still responds
    s.exported = True
    s.undo_stack.setClean()
    if os.environ.get("SOAK_LOG"):  # make soak: the record docs/reliability.md shows
        log = json.loads((tmp_path / "soak-log.json").read_text())
        log.update(
            seconds=time.perf_counter() - t0,
            result="without a crash, an exception in the event loop or a leaked worker",
        )
        Path(os.environ["SOAK_LOG"]).write_text(json.dumps(log))


def test_model_browser_searches_and_counts_on_the_meta_device(qtbot):
    from studio.core.model import zoo
    from studio.gui.dialogs import OpenDialog

    tv = [
        {"spec": a, "library": "torchvision", "family": a.split("_")[0], "note": ""}
        for a in zoo.architectures()
    ]
    dlg = OpenDialog(tv)
    qtbot.addWidget(dlg)
    dlg.add_entries([{"spec": "timm:resnet10t", "library": "timm", "family": "resnet", "note": ""}])
    dlg.search.setText("resnet10t")
    assert dlg.cat_proxy.rowCount() == 1
    dlg.cat.selectRow(0)
    qtbot.waitUntil(lambda: "params" in dlg.details.text(), timeout=30000)
    assert "FLOPs at 3×176×176" in dlg.details.text()  # its own default size
    req = dlg.request()
    assert req.spec == "timm:resnet10t" and not req.trust


def test_the_window_says_where_the_model_came_from(win):
    assert "built-in demo" in win.windowTitle()


# -- system requirements --------------------------------------------------------------------
def test_the_qt_binding_keeps_none_alive():
    """PySide6 6.12.0 under Python 3.11 drops a reference to None per void call: a session
    dies with 'deallocating None' after some thousand actions. The installed one must not."""
    from studio.gui import system

    assert not system.binding_leaks_none()


def test_missing_x_libraries_are_named_with_their_packages():
    from studio.gui import system

    ldd = (
        "\tlibQt6XcbQpa.so.6 => /x/libQt6XcbQpa.so.6 (0x1)\n"
        "\tlibxcb-cursor.so.0 => not found\n"
        "\tlibxcb-icccm.so.4 => not found\n"
        "\tlibxkbcommon-x11.so.0 => not found\n"
        "\tlibxcb-cursor.so.0 => not found\n"
    )
    missing = system.missing_libraries(ldd)
    assert missing == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0"]
    assert [system.debian_package(m) for m in missing] == [
        "libxcb-cursor0",
        "libxcb-icccm4",
        "libxkbcommon-x11-0",
    ]
    assert system.debian_package("libGL.so.1") == "libgl1"
    no_display = system.platform_problem({"QT_QPA_PLATFORM": "xcb"})
    if sys.platform.startswith("linux"):
        assert "DISPLAY" in no_display and "offscreen" in no_display
    assert system.platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux locales")
def test_a_clean_environment_gets_a_utf8_locale_quietly():
    from studio.gui import system

    for env in ({}, {"LANG": "C"}, {"LC_ALL": "POSIX"}):
        system.prefer_utf8_locale(env)
        assert env["LC_ALL"] == "C.UTF-8"
    kept = {"LANG": "de_DE.UTF-8"}
    system.prefer_utf8_locale(kept)
    assert kept == {"LANG": "de_DE.UTF-8"}


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="Xvfb not installed")
def test_the_real_plugin_loads_where_the_check_passes():
    """On this machine the check and Qt agree: nothing missing, and the window starts."""
    from studio.gui import system

    assert system.platform_problem({"DISPLAY": ":99", "QT_QPA_PLATFORM": ""}) is None


def test_window_errors_say_what_to_do_in_the_window():
    from studio.core.errors import LoadError
    from studio.gui.app import _request, build_parser
    from studio.gui.jobs import error_text

    text = error_text(LoadError("m.pt is a state_dict", fix="arch"))
    assert text.startswith("m.pt is a state_dict -- ") and "File ▸ Open model" in text
    assert "--code-root" in error_text(LoadError("no module", fix="code_root"))
    req = _request(build_parser().parse_args(["m.pt", "--trust", "--code-root", "/src"]))
    assert req.code_root == "/src" and req.trust


def test_gui_refuses_a_data_source_typo_before_opening(capsys):
    from studio.gui.app import main

    assert main(["demo", "--data", "bogus source"]) == 2
    assert "--data: data source 'bogus source' not found" in capsys.readouterr().err


def test_autoselect_latency_scope_measures_in_a_job_on_the_button(win, qtbot):
    s, a = win.session, win.autoselect
    a.scope.setCurrentText("latency")
    assert a.round_to.value() == 16 and "Time the layers" in a.apply_btn.toolTip()
    a.round_to.setValue(8)
    a.lat_batch.setValue(2)
    n0 = s.undo_stack.count()
    # dragging the slider does not start a measuring job per step
    a.slider.setSliderDown(True)
    a.slider.setValue(70)
    a.slider.setSliderDown(False)
    assert not win.jobs.busy() and s.undo_stack.count() == n0
    with qtbot.waitSignal(s.planChanged, timeout=120000):
        a.apply_btn.click()
        assert win.jobs.busy()
        a.apply_btn.click()  # a second one waits: timings need the machine to themselves
        assert sum(j.is_running() for j in win.jobs.jobs) == 1
    qtbot.waitUntil(lambda: not win.jobs.busy(), timeout=60000)
    assert s.plan.meta["latency"]["batch"] == 2
    assert s.plan.meta["scope"] in ("latency", "uniform")  # uniform if it timed faster whole
    assert s.predicted().flops <= 0.7 * s.structure.original.flops
    assert s.undo_stack.count() == n0 + 1
    s.undo_stack.undo()
    assert s.plan.is_empty()
    # steps finer than 8 channels are not offered; other scopes allow 1 again
    a.round_to.setValue(4)
    assert a.round_to.value() == 8
    a.scope.setCurrentText("uniform")
    a.round_to.setValue(1)
    assert a.round_to.value() == 1 and "Time the layers" not in a.apply_btn.toolTip()


def test_measure_latency_in_the_runtime_chosen_in_the_model_menu(win, qtbot):
    s = win.session
    assert s.latency_runtime == "torch" and win.act_runtime["torch"].isChecked()
    win.act_runtime["onnxruntime"].trigger()
    assert s.latency_runtime == "onnxruntime" and not win.act_runtime["torch"].isChecked()
    job = win.measure_latency()
    with qtbot.waitSignal(job.finished, timeout=120000):
        pass
    lat = s.results["latency"]
    assert lat["runtime"] == "onnxruntime" and lat["treatment"]["onnxruntime"]
    assert set(lat["speedup"]) == {"1", "16"}
    from studio.core.export import RUNTIME_WORDS

    note = win.compare.note
    assert "onnxruntime" in note.text() and RUNTIME_WORDS["onnxruntime"] in note.toolTip()
