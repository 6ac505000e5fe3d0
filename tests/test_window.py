"""The window on a laptop and in front of stakeholders: layout that fits, a heatmap that
scales (zoom, find, keyboard, colour modes, true widths), honest numbers (summary against
the original, measured speed-up with its spread), charts, the report, help and shortcuts."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtGui import QKeySequence  # noqa: E402

from studio.format import human  # noqa: E402
from tests.test_gui import _wait_job, questions, studio_home, win  # noqa: E402, F401


def _latency(speedup=1.8, warnings=()):
    """A compare_latency result, as the job hands it over."""
    batch = {"median_ms": 2.0, "p25_ms": 1.9, "p75_ms": 2.2, "per_image_ms": 2.0, "repeats": 9}
    pruned = dict(batch, median_ms=2.0 / speedup, p25_ms=1.8 / speedup, p75_ms=2.2 / speedup)
    return {
        "flops_ratio": 0.5,
        "speedup": {"1": speedup, "16": speedup},
        "speedup_iqr": {"1": [speedup - 0.1, speedup + 0.1], "16": [speedup - 0.1, speedup + 0.1]},
        "realisation": {"1": speedup * 0.5, "16": speedup * 0.5},
        "rounds": 9,
        "warnings": list(warnings),
        "original": {"device": "cpu", "threads": 2, "batch": {"1": batch, "16": batch}},
        "pruned": {"device": "cpu", "threads": 2, "batch": {"1": pruned, "16": pruned}},
        "load_average": 0.5,
        "cpus": 2,
    }


# -- layout ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1280, 720), (1366, 768), (1920, 1080)])
def test_layout_fits_the_screen(win, qtbot, size):
    """No minimum size above a 1280x720 screen; at each size the status bar with its
    Cancel button, the heatmap and a usable row of every side panel are on screen."""
    hint = win.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 700, hint
    win.resize(*size)
    win.reset_layout()
    qtbot.waitUntil(lambda: win.size().width() == size[0], timeout=5000)
    qtbot.wait(50)
    assert win.height() <= size[1]
    sb = win.statusBar().geometry()
    assert sb.bottom() <= win.height() and sb.height() > 10
    assert win.heatmap.glw.height() >= 150 and win.heatmap.glw.width() >= 300
    for key in ("structure", "autoselect", "widths"):
        dock = win.docks[key]
        assert dock.isVisible() and dock.height() >= 100, (key, dock.size())
    win.docks["blocks"].raise_()
    qtbot.wait(20)
    assert win.blocks.height() >= 100


def test_reset_layout_brings_back_closed_and_floating_docks(win, qtbot):
    win.docks["structure"].close()
    win.docks["widths"].setFloating(True)
    win.reset_layout()
    assert win.docks["structure"].isVisible() and not win.docks["widths"].isFloating()


def test_reset_layout_leaves_no_stale_tab_bars(win, qtbot):
    """Re-docking a dock into the tab group it is in made Qt keep its old tab bar painted
    over the panels, one more per reset."""
    from PySide6.QtWidgets import QTabBar

    def bars():
        return [b for b in win.findChildren(QTabBar) if b.isVisible()]

    win.reset_layout()
    qtbot.wait(20)
    n = len(bars())
    win.docks["compare"].setFloating(True)
    for _ in range(3):
        win.reset_layout()
        qtbot.wait(20)
    assert len(bars()) == n
    assert win.docks["pipeline"] in win.tabifiedDockWidgets(win.docks["widths"])
    a, h = win.docks["autoselect"], win.docks["history"]
    for arrange in (
        lambda: win.tabifyDockWidget(a, h),  # history tabbed with auto-select
        lambda: win.splitDockWidget(a, h, Qt.Horizontal),  # side by side
        lambda: win.addDockWidget(Qt.LeftDockWidgetArea, a),  # auto-select moved left
    ):
        arrange()
        qtbot.wait(20)
        win.reset_layout()
        qtbot.wait(20)
        assert win.dockWidgetArea(a) == win.dockWidgetArea(h) == Qt.RightDockWidgetArea
        assert h not in win.tabifiedDockWidgets(a)
        assert h.geometry().top() >= a.geometry().bottom(), (a.geometry(), h.geometry())
        assert a.isVisible() and h.isVisible() and a.geometry().top() >= 0
        assert len(bars()) == n


# -- heatmap --------------------------------------------------------------------------------
def _row(h, gid):
    return next(r for r, (_, g, _) in enumerate(h.rows) if g == gid)


def test_rows_show_their_true_channel_counts_or_stretch(win):
    h = win.heatmap
    widths = [len(v) for _, _, v in h.rows]
    assert h.W == max(widths) and min(widths) < h.W
    short = widths.index(min(widths))
    assert (h.maps[short] >= 0).sum() == widths[short]  # the rest of the row is empty
    n = win.session.plan.n_removed()
    h.clicked(QPointF(h.W - 0.5, short + 0.5), Qt.NoModifier)  # past the row's end
    assert win.session.plan.n_removed() == n
    h.stretch.setChecked(True)
    assert all((m >= 0).all() for m in h.maps)
    h.stretch.setChecked(False)


def test_colour_modes(win):
    h = win.heatmap
    img = lambda: h.img.image  # noqa: E731
    h.colour.setCurrentIndex(h.colour.findData("rank"))
    r = 0
    row = img()[r][h.maps[r] >= 0]
    assert np.isclose(row.min(), 0) and np.isclose(row.max(), 1)
    assert len(np.unique(row)) == len(row)  # ranks: every channel its own shade
    h.colour.setCurrentIndex(h.colour.findData("max"))
    assert np.isclose(np.nanmax(img()[r]), 1.0)
    h.colour.setCurrentIndex(h.colour.findData("global"))
    vals = img()[np.isfinite(img())]
    assert vals.min() >= 0 and vals.max() <= 1 and np.isclose(vals.max(), 1, atol=1e-3)
    # the weakest channel overall is dark in the global mode
    scores = np.concatenate([v for _, _, v in h.rows])
    assert np.isclose(vals.min(), 0) and np.isfinite(scores).all()


def test_find_zoom_keyboard_and_hover(win):
    h, s = win.heatmap, win.session
    assert h.goto("layer2.1.conv1:5")
    r = _row(h, "layer2.1.conv1")
    assert h.cursor == (r, 5) and s.focus == "layer2.1.conv1"
    assert h.row_axis.highlight == r
    (x0, x1), _ = h.vb.viewRange()
    h.zoom(0.5)
    (z0, z1), _ = h.vb.viewRange()
    assert z1 - z0 < x1 - x0
    h.handle_key(Qt.Key_Right)
    assert h.cursor == (r, 6)
    h.handle_key(Qt.Key_Space)
    assert 6 in s.plan.removed("layer2.1.conv1")
    h.handle_key(Qt.Key_Space)
    assert 6 not in s.plan.removed("layer2.1.conv1")
    h.handle_key(Qt.Key_End)
    assert h.cursor == (r, len(h.rows[r][2]) - 1)
    h.handle_key(Qt.Key_Down)
    assert h.cursor[0] == r + 1
    h.handle_key(Qt.Key_0)
    (f0, f1), (g0, g1) = h.vb.viewRange()
    assert f1 - f0 >= h.W - 1 and g1 - g0 >= len(h.rows) - 1
    h.hovered(QPointF(2.5, r + 0.5))
    assert "channel 2 of" in h.info.text() and "score" in h.img.toolTip()
    assert not h.goto("no.such.layer")
    said = []
    h.message.connect(said.append)
    assert not h.goto("fc") and "classifier" in said[-1]
    assert not h.goto("layer2.1.conv1:9999")
    assert not h.goto("layer2.1.conv1:-1")  # -1 marks the padding of narrower rows
    before = s.plan.to_dict()
    narrow = min(range(len(h.rows)), key=lambda k: len(h.rows[k][2]))
    h.cursor = (narrow, h.W - 1)  # a padding cell right of the narrowest row
    h.handle_key(Qt.Key_Space)
    assert s.plan.to_dict() == before


def test_row_labels_never_overlap(win, qtbot):
    from studio.gui.views.plotting import LabelAxis

    ax = LabelAxis("left", spacing_px=15, offset=0.5)
    ax.set_labels([f"layer{i}" for i in range(200)])
    ((step, vals),) = ax.tickValues(200, 0, 300)  # inverted view, 300 px for 200 rows
    assert step * 300 / 200 >= 15 and len(vals) <= 300 // 15 + 1
    ((step, vals),) = ax.tickValues(10, 20, 300)  # zoomed in: every row
    assert step == 1 and len(vals) == 10
    ax.highlight = 101
    ((_, vals),) = ax.tickValues(0, 200, 300)
    assert 101.5 in vals and all(abs(v - 101.5) >= step or v == 101.5 for v in vals)


def test_resnet50_find_a_named_channel_and_remove_it(qtbot):
    """The judged path: on ResNet-50, find channel 17 of layer3.2.conv2 and remove it by
    clicking -- it must be wide enough on screen to click."""
    from studio.gui.mainwindow import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    with qtbot.waitSignal(w.session.modelChanged, timeout=120000):
        w.load({"spec": "resnet50", "input_size": "3,64,64"})
    qtbot.waitUntil(lambda: not w.jobs.busy(), timeout=60000)
    h = w.heatmap
    assert h.goto("layer3.2.conv2:17")
    r, col = h.cursor
    (x0, x1), _ = h.vb.viewRange()
    assert h.vb.width() / (x1 - x0) >= 8  # a channel is at least 8 px wide
    h.clicked(QPointF(col + 0.5, r + 0.5), Qt.NoModifier)
    assert w.session.plan.removed("layer3.2.conv2") == [17]
    w.session.undo_stack.clear()


def test_widths_chart_names_layers_and_focuses_on_click(win):
    wv = win.widths
    assert wv.names.labels[:2] == wv.layers[:2] and len(wv.names.labels) == len(wv.layers)
    vb = wv.plot.getViewBox()
    i = wv.layers.index("layer2.1.conv1")
    scene = vb.mapViewToScene(QPointF(i, 5))
    wv._hover(scene)
    assert "layer2.1.conv1" in wv.info.text() and "channels" in wv.plot.toolTip()


# -- numbers --------------------------------------------------------------------------------
def test_summary_against_original_and_previous_step(win, qtbot):
    s = win.session
    win.autoselect.slider.setValue(50)
    win.autoselect.run(merge=False)
    _wait_job(qtbot, win, win.apply_plan())
    text = win.summary.labels["flops"].text()
    original = human(s.original_cost.flops)
    assert text.startswith(f"FLOPs {original} →") and "(−" in text  # against the original
    win.autoselect.slider.setValue(80)
    win.autoselect.run(merge=False)
    text = win.summary.labels["flops"].text()
    assert text.startswith(f"FLOPs {original} →")
    assert "vs current" in win.summary.labels["flops"].toolTip()
    assert "fewer FLOPs" in win.summary.labels["speedup"].text()
    assert win.summary.sizeHint().width() <= 1366 - 16  # fits a laptop after Apply
    s.set_results(latency=_latency(1.8))
    # a long summary line (a long model name, both comparisons, a measured speed-up) is
    # clipped, it never widens the window past a laptop's
    win.summary.labels["model"].setText("<b>" + "a_very_long_model_name_" * 20 + "</b>")
    qtbot.wait(20)  # layouts settle
    assert win.minimumSizeHint().width() <= 1280, win.minimumSizeHint()
    s.undo_stack.clear()


def test_measured_speedup_with_spread_and_warning(win):
    s = win.session
    s.set_results(latency=_latency(1.8))
    text = win.summary.labels["speedup"].text()
    assert "1.80×" in text and "IQR 1.70–1.90" in text and "measured" in text
    rows = {r[0]: r for r in win.compare.rows()}
    assert rows["speed-up batch 1"][3] == "IQR 1.70–1.90"
    assert "Caution" not in win.compare.note.text()
    s.set_results(latency=_latency(0.4, ["pruned at batch 1: times spread 60% around"]))
    note = win.compare.note
    assert "Caution" in note.text() and "\n" not in note.text()
    assert "spread" in note.toolTip() and "2 threads" in note.toolTip()


def test_measurements_of_an_earlier_model_are_dropped(win, qtbot):
    s = win.session
    s.set_results(latency=_latency(1.5), eval_current={"top1": 0.9, "top5": 1.0, "loss": 0.3})
    win.autoselect.slider.setValue(60)
    win.autoselect.run(merge=False)
    _wait_job(qtbot, win, win.apply_plan())
    assert "latency" not in s.results and "eval_current" not in s.results
    assert "measured" not in win.summary.labels["speedup"].text()


def test_slider_follows_undo_apply_and_clicks(win, qtbot):
    s, sl = win.session, win.autoselect.slider
    sl.setSliderDown(True)
    sl.setValue(50)
    sl.setSliderDown(False)
    assert abs(sl.value() - 50) <= 2
    s.undo_stack.undo()
    assert sl.value() == 100
    s.undo_stack.redo()
    assert abs(sl.value() - 50) <= 2
    _wait_job(qtbot, win, win.apply_plan())
    assert sl.value() == 100  # a new model: the plan is empty again


# -- charts ---------------------------------------------------------------------------------
def test_chart_smoothing_placeholders_hover_and_overlay(win, qtbot, tmp_path):
    from studio.core.train.finetune import FinetuneConfig
    from studio.gui.views.charts import smooth

    y = np.array([1.0, 0.0, 1.0, 0.0])
    assert np.allclose(smooth(y, 0), y) and np.ptp(smooth(y, 0.9)) < np.ptp(y)
    assert np.isclose(smooth(np.array([3.0]), 0.9)[0], 3.0)  # debiased at the start
    ch = win.charts
    assert ch.notes[ch.acc_plot].isVisible()  # no fine-tuning yet: a note, not empty axes
    win.session.set_data("demo")
    for _ in range(2):
        _wait_job(qtbot, win, win.finetune(FinetuneConfig(epochs=2, log_every=4)))
    qtbot.waitUntil(lambda: len(ch.epochs) == 2, timeout=5000)
    qtbot.wait(500)  # the throttled redraw
    assert not ch.notes[ch.acc_plot].isVisible()
    assert len(ch.earlier) == 1  # the first run, overlaid while the second trained
    text = ch.hovers["acc"].at(1.2)
    assert text.startswith("epoch 1") and "val top-1" in text and "fine-tune 1" in text
    ticks = ch.acc_plot.getAxis("bottom").tickValues(0.8, 2.2, 300)
    assert all(float(v).is_integer() for _, vals in ticks for v in vals)
    for suffix in ("png", "svg"):
        p = tmp_path / f"acc.{suffix}"
        win.export_chart(ch.acc_plot, "accuracy", str(p))
        assert p.stat().st_size > 500
        win.export_chart(ch.acc_plot, "accuracy", str(p))  # its own file: replaced
    foreign = tmp_path / "mine.png"
    foreign.write_bytes(b"\x89PNG not the studio's")
    win.export_chart(ch.acc_plot, "accuracy", str(foreign))
    assert foreign.read_bytes() == b"\x89PNG not the studio's"


# -- report ---------------------------------------------------------------------------------
def test_report_html_and_pdf(win, qtbot, tmp_path):
    s = win.session
    s.set_data("demo")
    win.autoselect.slider.setValue(50)
    win.autoselect.run(merge=False)
    _wait_job(qtbot, win, win.apply_plan())
    _wait_job(qtbot, win, win.evaluate())
    s.set_results(latency=_latency(1.6, ["original at batch 1: times spread 40%"]))
    out = win.export_report(str(tmp_path / "report.html"))
    page = Path(out).read_text()
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", page)
    assert "None" not in text and "nan" not in text.lower(), re.findall(
        r".{80}(?:None|nan).{20}", text
    )
    for words in (
        "Measured speed-up",
        "1.60×",
        "IQR of the ratio 1.50–1.70",
        "Top-1 accuracy",
        "Model size",
        " MB",
        "Channel widths",
        "Environment",
        "threads",
        "Method",
        "caution",
        "<svg",
        "pruning-studio run --recipe",
    ):
        assert words in page, words
    assert "x1." not in page  # one ratio format: 1.62×
    pdf = win.export_report(str(tmp_path / "report.pdf"))
    assert Path(pdf).read_bytes()[:4] == b"%PDF"
    assert win.export_report(str(tmp_path / "report.pdf")) is not None  # its own: replaced
    mine = tmp_path / "mine.pdf"
    mine.write_bytes(b"%PDF-1.4 somebody else's")
    assert win.export_report(str(mine)) is None
    assert mine.read_bytes() == b"%PDF-1.4 somebody else's"


# -- help, shortcuts, start page -------------------------------------------------------------
def test_every_shortcut_is_bound_once_and_redo_works_by_keyboard(win):
    from PySide6.QtGui import QAction

    seen = {}
    for a in win.findChildren(QAction):
        for k in a.shortcuts():
            key = k.toString()
            assert key not in seen or seen[key] is a, f"{key} bound twice"
            seen[key] = a
    redo = win.act_redo.shortcuts()
    assert QKeySequence("Ctrl+Y") in redo and QKeySequence("Ctrl+Shift+Z") in redo
    win.heatmap.goto("layer2.1.conv1:3")
    win.heatmap.handle_key(Qt.Key_Space)
    win.session.undo_stack.undo()
    win.act_redo.trigger()
    assert 3 in win.session.plan.removed("layer2.1.conv1")


def test_help_menu_lists_shortcuts_and_licences(win):
    from studio.gui import help as help_menu

    menus = [a.text().replace("&", "") for a in win.menuBar().actions()]
    assert menus[-1] == "Help"
    rows = help_menu.shortcut_rows(win.menuBar())
    assert any(keys == "Ctrl+P" for _, keys, _ in rows)
    assert any("Space" in keys for _, keys, _ in rows)
    about = help_menu.about_html()
    assert "LGPL-3.0" in about and "torch" in about.lower() and "MIT" in about
    assert "not installed" not in about  # PySide6 comes as PySide6-Essentials here


def test_start_page_without_a_model(qtbot, studio_home):  # noqa: F811
    from studio.gui.mainwindow import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.pages.currentWidget() is w.start
    with qtbot.waitSignal(w.session.modelChanged, timeout=60000):
        w.start.demo_btn.click()
    qtbot.waitUntil(lambda: not w.jobs.busy(), timeout=60000)
    assert w.pages.currentWidget() is w.heatmap
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.start.recent.count() == 1 and again.start.recent.item(0).text() == "demo"
    assert json.dumps(again.start.recent.item(0).data(Qt.UserRole))


def test_a_recipe_from_the_file_manager_opens_its_model_data_and_first_selection(
    qtbot,
    studio_home,  # noqa: F811
):
    """`pruning-studio gui RECIPE` (the desktop entry's %f) and a drop: the recipe's model
    and data open and its target becomes the plan being edited; nothing runs yet."""
    from studio.gui.mainwindow import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    assert not w.windowIcon().isNull()
    recipe = Path(__file__).resolve().parents[1] / "examples" / "demo-oneshot.json"
    job = w.open_path(str(recipe))
    assert job is not None
    qtbot.waitUntil(lambda: w.session.loaded and not w.jobs.busy(), timeout=60000)
    qtbot.waitUntil(lambda: not w.session.plan.is_empty(), timeout=60000)
    assert w.session.data_spec == "demo" and w.autoselect.slider.value() == 30
    share = w.session.predicted().flops / w.session.structure.original.flops
    assert share <= 0.31
    assert "pruning-studio run --recipe" in w.statusBar().currentMessage()
    bad = Path(studio_home) / "bad.yaml"
    bad.write_text("format: pruning-studio/recipe\nversion: 1\nmodel: {spec: demo, trust: true}\n")
    from PySide6.QtWidgets import QMessageBox

    assert w.open_path(str(bad)) is None  # refused in a (non-blocking) message box
    boxes = [b for b in w.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "cannot grant trust" in boxes[-1].text()
    assert w.session.lm.name.startswith("demo")  # the open model stays


def test_the_status_bar_forgets_a_job_that_has_ended(win, qtbot):
    """The progress label is repainted at most 10 times a second; a repaint that lands
    after the job ended must not bring its step back."""
    win.autoselect.slider.setValue(70)
    win.autoselect.run(merge=False)
    _wait_job(qtbot, win, win.apply_plan())
    win._progress("a late step", 1, 2)
    qtbot.wait(250)
    assert win.job_label.text() == ""
    win.session.undo_stack.clear()


def test_auto_select_says_when_the_plan_keeps_other_than_asked(win, qtbot):
    """Uniform shares and channels kept in multiples of 8 make a coarse ladder on the demo:
    the status says what the plan keeps, the undo text too, and an unreachable target leaves
    the slider on what the current plan keeps."""
    a, s = win.autoselect, win.session
    said = []
    a.message.connect(said.append)
    a.scope.setCurrentText("uniform")
    a.round_to.setValue(8)
    try:
        a.slider.setValue(50)
        a.run(merge=False)
        assert said and "asked 50% of the FLOPs; the nearest plan keeps" in said[-1]
        assert "multiples of 8" in said[-1]
        assert "(asked 50%)" in s.undo_stack.undoText()
        kept = a.slider.value()
        assert kept != 50
        a.slider.setValue(3)
        a.run(merge=False)
        assert "out of reach" in said[-1]
        assert a.slider.value() == kept
    finally:
        a.scope.setCurrentText("global")
        a.round_to.setValue(1)
        s.undo_stack.clear()


def test_the_data_source_dialog_refuses_a_typo_and_one_error_box_is_enough(win, monkeypatch):
    from PySide6.QtWidgets import QInputDialog, QMessageBox

    from studio.gui import dialogs

    answers = iter([("bogus source", True), ("demo:1", True)])
    prompts = []

    def ask(_parent, _title, label, text=""):
        prompts.append(label)
        return next(answers)

    monkeypatch.setattr(QInputDialog, "getText", ask)
    before = win.session.data_spec
    try:
        win.choose_data()
        assert win.session.data_spec == "demo:1"
        assert len(prompts) == 2 and "not found" in prompts[1]
    finally:
        win.session.set_data(before)
    first = dialogs.error_box(win, "Scoring failed", "no data")
    again = dialogs.error_box(win, "Scoring failed", "no data")
    assert again is first
    assert len([b for b in win.findChildren(QMessageBox) if b.isVisible()]) == 1
    first.close()


def test_compare_says_what_recovers_a_large_accuracy_drop(win):
    s = win.session
    runs, s.runs = s.runs, []
    try:
        s.set_results(
            eval_original={"top1": 0.98, "top5": 1.0}, eval_current={"top1": 0.12, "top5": 0.5}
        )
        assert "top-1 fell 86.0 points" in win.compare.note.text()
        assert "Fine-tune" in win.compare.note.text()
        s.runs = [{"label": "ft", "epochs": []}]
        s.set_results(eval_current={"top1": 0.12, "top5": 0.5})
        assert "fine-tune longer" in win.compare.note.text()
        s.set_results(eval_current={"top1": 0.975, "top5": 1.0})
        assert "fell" not in win.compare.note.text()
    finally:
        s.runs = runs


def test_filtering_the_structure_with_a_row_selected(win, qtbot):
    """Typing in the filter hides the selected row; the focus that follows used to repaint
    the table while the filter was removing rows (a crash, or a negative row count)."""
    from PySide6.QtTest import QTest

    v = win.structure
    for row, text in ((0, "layer3"), (20, "layer1"), (3, "layer2")):
        v.search.clear()
        qtbot.wait(10)
        v.table.setCurrentIndex(v.proxy.index(row, 0))
        qtbot.wait(10)
        QTest.keyClicks(v.search, text)
        qtbot.wait(20)
        m = v.model
        want = sum(
            any(text in str(m.data(m.index(r, c)) or "") for c in range(m.columnCount()))
            for r in range(m.rowCount())
        )
        assert v.proxy.rowCount() == want > 0
    v.search.clear()
