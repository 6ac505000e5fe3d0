"""The window's model of the world: the original model, the working model, its structure,
the plan being edited, scores, results and the steps taken. Views subscribe to its signals;
plan edits go through the undo stack. Only the GUI thread touches it: jobs get plain data
when they start and hand results back by signal."""

from __future__ import annotations

import copy

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from studio.core.criteria.weights import GroupScores
from studio.core.model.loaded import LoadedModel
from studio.core.plan.edits import Edit, ReplacePlan
from studio.core.plan.plan import Plan, predict, predicted_widths
from studio.core.plan.selection import lowest_channels
from studio.core.structure.map import StructureMap


class _UndoEdit(QUndoCommand):
    """A core ``Edit`` in Qt's undo stack. Consecutive edits with the same ``merge_id``
    (a slider being dragged) collapse into one undo step."""

    def __init__(self, session: Session, edit: Edit, merge_id: int = -1):
        super().__init__(edit.text)
        self.session, self.edits, self._id = session, [edit], merge_id

    def id(self) -> int:  # noqa: A003 - Qt's name
        return self._id

    def mergeWith(self, other) -> bool:  # noqa: N802 - Qt's name
        if other.id() != self._id or self._id < 0:
            return False
        self.edits.extend(other.edits)
        self.setText(other.text())  # the label says where the drag ended
        return True

    def redo(self):
        # Qt calls redo() once on push (one edit), and again after an undo (all, in order).
        for e in self.edits:
            e.do(self.session.plan)
        self.session._plan_edited()

    def undo(self):
        for e in reversed(self.edits):
            e.undo(self.session.plan)
        self.session._plan_edited()


class Session(QObject):
    modelChanged = Signal()  # a new model (and structure) is loaded or adopted
    planChanged = Signal()  # the plan changed (any edit, undo or redo)
    scoresChanged = Signal(str)  # scores of a criterion became available
    criterionChanged = Signal(str)
    focusChanged = Signal(object)  # group id or None
    historyChanged = Signal()  # a prune step was applied
    resultsChanged = Signal()  # evaluation/latency/fine-tune results
    dataChanged = Signal(str)  # the data source

    MERGE_AUTOSELECT = 1
    MERGE_STAGE = 2

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lm: LoadedModel | None = None
        self.original: LoadedModel | None = None  # the unpruned model, for compare/revert
        self.original_cost = None
        self.original_structure: StructureMap | None = None
        self.original_scores: dict = {}
        self.structure: StructureMap | None = None
        self.plan: Plan | None = None
        self.scores: dict[str, dict[str, GroupScores]] = {}
        self.criterion = "l1"
        self.focus: str | None = None
        self.history: list[dict] = []  # one entry per model state (loaded, pruned, tuned)
        self.steps: list[dict] = []  # recipe steps since the original: {"plan"|"finetune"|…}
        self.runs: list[dict] = []  # fine-tuning runs (their epoch events), for the charts
        self.results: dict = {}
        self.data_spec: str | None = None
        self.latency_runtime = "torch"  # what Measure latency times in (export.RUNTIMES)
        self.exported = True  # the working model was exported since it last changed
        self.undo_stack = QUndoStack(self)
        self._predicted = None
        self._widths = None

    # -- model --------------------------------------------------------------------------
    def set_model(self, lm: LoadedModel, s: StructureMap, scores: dict | None = None) -> None:
        """A newly opened model: it is the original and the working model."""
        self.original, self.original_cost, self.original_structure = lm, s.original, s
        self.original_scores = dict(scores or {})
        self.history = [self._history_entry("loaded", s)]
        self.steps, self.runs, self.results = [], [], {}
        self.exported = True
        if self.data_spec is None and lm.source.get("kind") == "demo":
            clutter = (lm.source.get("args") or {}).get("variant") == "clutter"
            self.data_spec = "clutter" if clutter else "demo"
        self._set_working(lm, s, scores)
        self.historyChanged.emit()
        self.resultsChanged.emit()

    def adopt(
        self,
        lm: LoadedModel,
        s: StructureMap,
        label: str,
        step: dict | None = None,
        scores: dict | None = None,
    ) -> None:
        """A derived model (pruned, fine-tuned, a pipeline's) becomes the working model; the
        original stays for compare. ``step`` is the recipe step that made it."""
        if step is not None:
            self.steps.append(step)
        # Measurements of the previous working model no longer describe the current one.
        for key in ("eval_current", "latency"):
            self.results.pop(key, None)
        self.history.append(self._history_entry(label, s))
        self.exported = False
        self._set_working(lm, s, scores)
        self.historyChanged.emit()
        self.resultsChanged.emit()

    def _set_working(self, lm: LoadedModel, s: StructureMap, scores: dict | None) -> None:
        self.lm, self.structure = lm, s
        self.plan = Plan.empty(s)
        self.scores = dict(scores or {})
        self.focus = None
        self.undo_stack.clear()
        self._predicted = self._widths = None
        self.modelChanged.emit()
        self.planChanged.emit()

    @staticmethod
    def _history_entry(label: str, s: StructureMap) -> dict:
        return {
            "label": label,
            "flops": s.original.flops,
            "params": s.original.params,
            "macs": s.original.macs,
        }

    @property
    def loaded(self) -> bool:
        return self.structure is not None

    @property
    def pruned(self) -> bool:
        return self.lm is not None and self.lm is not self.original

    @property
    def dirty(self) -> bool:
        """Work that quitting would lose: a plan not saved, a model not exported."""
        if not self.loaded:
            return False
        return (not self.plan.is_empty() and not self.undo_stack.isClean()) or (
            self.pruned and not self.exported
        )

    def set_data(self, spec: str | None) -> None:
        self.data_spec = spec or None
        self.dataChanged.emit(self.data_spec or "")

    def set_latency_runtime(self, name: str) -> None:
        """What Measure latency times both models in (one of ``export.RUNTIMES``); the
        latency already measured keeps saying which runtime it was measured in."""
        from studio.core.export import RUNTIMES

        if name not in RUNTIMES:
            raise ValueError(f"unknown runtime {name!r}")
        self.latency_runtime = name

    # -- results ------------------------------------------------------------------------
    def set_results(self, **results) -> None:
        self.results.update(results)
        self.resultsChanged.emit()

    def add_run(self, label: str, epochs: list[dict]) -> None:
        """A fine-tuning run's epoch events, kept for the charts' overlay."""
        self.runs.append({"label": label, "epochs": list(epochs)})

    # -- plan ---------------------------------------------------------------------------
    def edit(self, edit: Edit, merge_id: int = -1) -> None:
        if self.plan is None:
            return
        self.undo_stack.push(_UndoEdit(self, edit, merge_id))

    def replace_plan(self, plan: Plan, text: str, merge_id: int = -1) -> None:
        self.edit(ReplacePlan(plan.copy(), text=text), merge_id)

    def clear_plan(self) -> None:
        if self.loaded and not self.plan.is_empty():
            self.replace_plan(Plan.empty(self.structure), "clear plan")

    def mark_plan_saved(self) -> None:
        self.undo_stack.setClean()

    def _plan_edited(self) -> None:
        self._predicted = self._widths = None
        self.planChanged.emit()

    def predicted(self):
        if self._predicted is None and self.plan is not None:
            self._predicted = predict(self.plan, self.structure)
        return self._predicted

    def widths(self) -> dict[str, tuple[int, int]]:
        """layer -> planned (in, out) channels; cached until the next plan edit."""
        if self._widths is None:
            self._widths = predicted_widths(self.plan, self.structure)
        return self._widths

    # -- scores and focus ---------------------------------------------------------------
    def set_scores(self, criterion: str, scores: dict[str, GroupScores]) -> None:
        self.scores[criterion] = scores
        self.scoresChanged.emit(criterion)

    def set_criterion(self, criterion: str) -> None:
        if criterion != self.criterion:
            self.criterion = criterion
            self.criterionChanged.emit(criterion)

    def current_scores(self) -> dict[str, GroupScores] | None:
        return self.scores.get(self.criterion)

    def set_focus(self, group_id: str | None) -> None:
        if group_id != self.focus:
            self.focus = group_id
            self.focusChanged.emit(group_id)

    def least_important(self, group_id: str, k: int) -> list[int]:
        """The ``k`` lowest-scored channels of a group under the current criterion."""
        g = self.structure.group_index[group_id]
        sc = self.current_scores() or self.scores.get("l1")
        score = sc[group_id].group if sc else list(range(g.channels))
        units = int(round(k * g.units / g.channels))  # channels -> whole units
        return lowest_channels(self.structure, group_id, score, units)

    def snapshot(self) -> dict:
        """What the recovery file keeps (besides the working model's folder)."""
        orig = self.original
        return {
            "original": dict(orig.request.record(), input_size=list(orig.input_size))
            if orig is not None and orig.request is not None
            else None,
            "pruned": self.pruned,
            "steps": copy.deepcopy(self.steps),
            "history": copy.deepcopy(self.history),
            "plan": self.plan.to_dict() if self.plan else None,
            "criterion": self.criterion,
            "data": self.data_spec,
        }
