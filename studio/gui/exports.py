"""Exports from the window: the working model as a studio folder, ONNX, a recipe that
replays the session, and the stakeholder report. Writing follows the core's rule (never
replace what the studio did not write); model and ONNX exports run as jobs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.core import verbs
from studio.core.jobs import progress
from studio.core.recipe import Recipe, make_recipe
from studio.gui.jobs import Job


def _save(lm, path: str, report: dict, cancel=None):
    yield progress(0, 1, "saving the model")
    return verbs.save(path, lm, report=report)


def _onnx(lm, path: str, cancel=None):
    yield progress(0, 1, "exporting ONNX (and checking it in onnxruntime)")
    return verbs.export_onnx(lm, path)


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

    def onnx(self, path: str) -> Job | None:
        s = self.session
        if not s.loaded:
            return None

        def done(r):
            self.message.emit(
                f"wrote {r['path']} (onnxruntime max |diff| "
                f"{r['max_abs_diff']:.1e})" + (f" — {r['hint']}" if r.get("hint") else ""),
                15000,
            )

        return self.actions._start("export ONNX", _onnx, s.lm, path, on_done=done, mutates=False)

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

    def report(self, path: str, images: dict[str, bytes], rows, widths) -> Path | None:
        """The stakeholder report (charts rendered by the window, on the GUI thread)."""
        from studio.core.errors import StudioError
        from studio.core.export.report import html_report, plan_steps

        s = self.session
        if not s.loaded:
            return None
        plan_lines = [
            f"{len(s.lm.plans)} prune step(s) applied to {s.original.name}",
            *plan_steps(s.lm.plans),
        ]
        if not s.plan.is_empty():
            plan_lines.append(
                f"pending (not applied): {s.plan.n_removed()} channels, "
                f"{len(s.plan.drop_blocks)} blocks"
            )
        try:
            out = html_report(
                path,
                title=f"Pruning report — {s.original.name}",
                summary={
                    "model": s.lm.name,
                    "architecture": s.lm.arch,
                    "source": s.original.describe_source(),
                    "input size": "×".join(map(str, s.lm.input_size)),
                    "data": s.data_spec or "—",
                },
                metrics=rows,
                images=images,
                plan_summary=plan_lines,
                widths=widths,
            )
        except StudioError as e:
            self.failed.emit("Cannot write the report", str(e), "", e)
            return None
        self.message.emit(f"wrote {out}", 5000)
        return out
