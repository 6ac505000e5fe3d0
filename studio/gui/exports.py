"""Exports from the window: the working model as a studio folder, ONNX, a recipe that
replays the session, and the stakeholder report. Writing follows the core's rule (never
replace what the studio did not write); model and ONNX exports run as jobs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.core import verbs
from studio.core.export.report import ReportData
from studio.core.jobs import progress
from studio.core.recipe import Recipe, make_recipe
from studio.gui.jobs import Job


def _save(lm, path: str, report: dict, cancel=None):
    yield progress(0, 1, "saving the model")
    return verbs.save(path, lm, report=report)


def _onnx(lm, path: str, cancel=None):
    yield progress(0, 1, "exporting ONNX (and checking it in onnxruntime)")
    return verbs.export_onnx(lm, path)


def _deploy(lm, path: str, cancel=None):
    yield progress(0, 1, "folding BatchNorm, timing channels-last, exporting (torch.export)")
    return verbs.export_deploy(lm, path)


def session_recipe(session, then: tuple[dict, ...] = ()) -> Recipe:
    """The recipe ``run --recipe`` executes to redo this session headless: the original
    model, every step taken (plans, fine-tuning, pipelines) in order, the plan being
    edited, and the steps ``then``."""
    s = session
    steps = list(s.steps)
    if s.plan is not None and not s.plan.is_empty():
        steps.append({"plan": s.plan.to_dict()})
    steps += list(then)
    req = s.original.request
    model = req.record() if req is not None else {"spec": s.original.name}
    if s.original.input_size:
        model["input_size"] = list(s.original.input_size)
    return make_recipe(model, steps, data=s.data_spec)


class Exports(QObject):
    message = Signal(str, int)
    failed = Signal(str, str, str, object)

    def __init__(self, session, actions, parent=None):
        super().__init__(parent)
        self.session, self.actions = session, actions

    def model(self, path: str) -> Job | None:
        s = self.session
        if not s.loaded:
            return None
        report = {
            "model": s.lm.name,
            "before": s.original_cost.as_dict(),
            "after": s.structure.original.as_dict(),
            "results": s.results,
            "steps": s.steps,
        }

        def done(out):
            s.exported = True
            self.message.emit(f"exported {out}", 6000)

        return self.actions._start(
            "export model", _save, s.lm, path, report, on_done=done, mutates=False
        )

    def _file(self, name: str, verb, path: str, describe) -> Job | None:
        """Export the working model to one file in a job; ``describe(result)`` is the
        status-bar line."""
        s = self.session
        if not s.loaded:
            return None
        done = lambda r: self.message.emit(describe(r), 15000)  # noqa: E731
        return self.actions._start(name, verb, s.lm, path, on_done=done, mutates=False)

    def onnx(self, path: str) -> Job | None:
        return self._file(
            "export ONNX",
            _onnx,
            path,
            lambda r: (
                f"wrote {r['path']} (onnxruntime max |diff| {r['max_abs_diff']:.1e})"
                + (f" — {r['hint']}" if r.get("hint") else "")
            ),
        )

    def deploy(self, path: str) -> Job | None:
        """The deploy-treated model as a torch.export program (``export --deploy``)."""
        return self._file(
            "export for deployment",
            _deploy,
            path,
            lambda r: (
                f"wrote {r['path']} ({r['batchnorm_folded']} BatchNorm folded, "
                f"channels-last {'on' if r['channels_last'] else 'off'}; max |diff| "
                f"{r['max_abs_diff']:.1e})" + (f" — {r['note']}" if r.get("note") else "")
            ),
        )

    def recipe(self, path: str, pipeline_cfg=None) -> Recipe | None:
        """Write the session's recipe; with ``pipeline_cfg`` the pipeline becomes its last
        step (what the Pipelines panel's export writes)."""
        from studio.core.errors import StudioError

        s = self.session
        if not s.loaded:
            return None
        try:
            then = ({"pipeline": pipeline_cfg.as_dict()},) if pipeline_cfg is not None else ()
            rec = session_recipe(s, then)
            rec.save(path)
        except StudioError as e:
            self.failed.emit("Cannot export the recipe", str(e), "", e)
            return None
        self.message.emit(f"wrote {path}", 5000)
        return rec

    def report_data(self, images: dict[str, bytes], widths) -> ReportData:
        """What the report says about this session (plain data; no Qt)."""
        from studio.core.export.report import ReportData, environment, model_bytes

        s = self.session
        r = s.results
        accuracy = None
        if r.get("eval_original") and r.get("eval_current"):
            accuracy = {
                "before": r["eval_original"],
                "after": r["eval_current"],
                "note": r.get("eval_note") or f"evaluated on {s.data_spec}",
            }
        lat = r.get("latency")
        try:
            recipe = session_recipe(s).to_dict()
        except Exception:  # noqa: BLE001 - a session the recipe schema cannot express
            recipe = None
        return ReportData(
            title=f"Pruning report — {s.original.name}",
            model={
                "model": s.lm.name,
                "architecture": s.lm.arch,
                "source": s.original.describe_source(),
                "input size": "×".join(map(str, s.lm.input_size)),
                "data": s.data_spec or "none chosen",
            },
            before=dict(s.original_cost.as_dict(), bytes=model_bytes(s.original.model)),
            after=dict(s.structure.original.as_dict(), bytes=model_bytes(s.lm.model)),
            accuracy=accuracy,
            latency=lat,
            steps=session_steps(s),
            recipe=recipe,
            widths=list(widths),
            runs=list(s.runs),
            images=images,
            environment=environment(lat["pruned"]["device"] if lat else "cpu"),
        )

    def report(self, path: str, images: dict[str, bytes], widths) -> Path | None:
        """The stakeholder report, HTML or (by the name's suffix) PDF."""
        from studio.core.errors import StudioError
        from studio.core.export.report import html_report

        s = self.session
        if not s.loaded:
            return None
        try:
            data = self.report_data(images, widths)
            out = write_pdf(path, data) if str(path).lower().endswith(".pdf") else None
            out = out or html_report(path, data)
        except StudioError as e:
            self.failed.emit("Cannot write the report", str(e), "", e)
            return None
        self.message.emit(f"wrote {out}", 5000)
        return out


def session_steps(s) -> list[str]:
    """The method, one line per step the session took (and the plan still pending)."""
    from studio.core.export.report import plan_steps

    lines = [f"opened {s.original.name} ({s.original.describe_source()})"]
    for step in s.steps:
        if "plan" in step:
            lines.append("pruned: " + plan_steps([step["plan"]])[0].split(": ", 1)[1])
        elif "finetune" in step:
            c = step["finetune"]
            lines.append(
                f"fine-tuned {c.get('epochs')} epochs (lr {c.get('lr')}, "
                f"{c.get('optimizer')}, distillation weight {c.get('kd_weight')})"
            )
        elif "pipeline" in step:
            c = step["pipeline"]
            lines.append(
                f"{c.get('pipeline')} pipeline to {c.get('flops_target', 0):.0%} FLOPs "
                f"({c.get('criterion')})"
            )
    if s.plan is not None and not s.plan.is_empty():
        lines.append(
            f"pending, not applied: {s.plan.n_removed()} channels, {len(s.plan.drop_blocks)} blocks"
        )
    return lines


RECIPE_NOTE = "<p>The recipe that replays these steps is in the HTML version of this report.</p>"


def write_pdf(path, data) -> Path:
    """The report as PDF through Qt's printer: the same page, its SVG charts rasterised
    (Qt's rich text has no inline SVG). Written beside and renamed into place."""
    import os
    import re

    from PySide6.QtCore import QByteArray, QMarginsF, QUrl
    from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPainter, QTextDocument
    from PySide6.QtPrintSupport import QPrinter
    from PySide6.QtSvg import QSvgRenderer

    from studio.core.export.report import render_html
    from studio.core.io import os_error
    from studio.core.outputs import check_file

    path = Path(path)
    check_file(path)
    doc = QTextDocument()
    images = []

    def raster(m: re.Match) -> str:
        svg = m.group(0)
        r = QSvgRenderer(QByteArray(svg.encode()))
        size = r.defaultSize()
        scale = 900 / max(size.width(), 1)
        img = QImage(int(size.width() * scale), int(size.height() * scale), QImage.Format_ARGB32)
        img.fill(0xFFFFFFFF)
        painter = QPainter(img)
        r.render(painter)
        painter.end()
        name = f"chart{len(images)}.png"
        images.append(img)
        doc.addResource(QTextDocument.ImageResource, QUrl(name), img)
        return f'<img src="{name}" width="{min(640, size.width())}">'

    page = re.sub(r"<svg.*?</svg>", raster, render_html(data), flags=re.S)
    page = re.sub(r"<details><summary>Recipe.*?</details>", RECIPE_NOTE, page, flags=re.S)
    page = re.sub(r"<details>|</details>|<summary>|</summary>", "", page)
    doc.setHtml(page)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    printer = QPrinter(QPrinter.HighResolution)
    printer.setOutputFormat(QPrinter.PdfFormat)
    printer.setOutputFileName(str(tmp))
    printer.setCreator("Pruning Studio")
    printer.setDocName(data.title)
    printer.setPageLayout(
        QPageLayout(QPageSize(QPageSize.A4), QPageLayout.Portrait, QMarginsF(12, 12, 12, 12))
    )
    doc.print_(printer)
    try:
        if not tmp.is_file():
            raise OSError(f"Qt's printer wrote nothing to {tmp}")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise os_error(e, path) from e
    return path
