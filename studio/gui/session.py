"""The window's model of the world: the loaded model, its structure, the plan being edited,
scores, results. Views subscribe to its signals; edits go through the undo stack."""

from __future__ import annotations

import copy
import logging

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from studio.core import Plan, predict
from studio.core.criteria.weights import GroupScores
from studio.core.plan.edits import Edit, ReplacePlan
from studio.core.model.loader import LoadedModel
from studio.core.plan.plan import predicted_widths
from studio.core.structure.map import StructureMap

log = logging.getLogger(__name__)


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

    MERGE_AUTOSELECT = 1
    MERGE_STAGE = 2

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lm: LoadedModel | None = None
        self.original: LoadedModel | None = None  # the unpruned model, for compare/revert
        self.original_cost = None
        self.original_structure: StructureMap | None = None
        self.structure: StructureMap | None = None
        self.plan: Plan | None = None
        self.scores: dict[str, dict[str, GroupScores]] = {}
        self.criterion = "l1"
        self.focus: str | None = None
        self.history: list[dict] = []  # one entry per applied prune step
        self.results: dict = {}
        self.data_spec: str | None = None
        self.undo_stack = QUndoStack(self)
        self._predicted = None
        self._widths = None

    # -- model --------------------------------------------------------------------------
    def set_model(self, lm: LoadedModel, s: StructureMap, scores: dict | None = None,
                  keep_original: bool = False) -> None:
        if not keep_original:
            self.original = lm
            self.original_cost = s.original
            self.original_structure = s
            self.history = [self._history_entry("loaded", s)]
            self.results = {}
        self.lm, self.structure = lm, s
        self.plan = Plan.empty(s)
        self.scores = {}
        if scores:
            self.scores.update(scores)
        self.focus = None
        self.undo_stack.clear()
        self._predicted = self._widths = None
        if self.data_spec is None and lm.source.get("demo"):
            self.data_spec = "demo"
        self.modelChanged.emit()
        self.planChanged.emit()
        self.historyChanged.emit()

    def adopt_pruned(self, lm: LoadedModel, s: StructureMap, label: str,
                     scores: dict | None = None) -> None:
        """The pruned model becomes the working model; the original stays for compare."""
        self.set_model(lm, s, scores, keep_original=True)
        self.history.append(self._history_entry(label, s))
        self.historyChanged.emit()

    @staticmethod
    def _history_entry(label: str, s: StructureMap) -> dict:
        return {"label": label, "flops": s.original.flops, "params": s.original.params,
                "macs": s.original.macs}

    @property
    def loaded(self) -> bool:
        return self.structure is not None

    # -- plan ---------------------------------------------------------------------------
    def edit(self, edit: Edit, merge_id: int = -1) -> None:
        if self.plan is None:
            return
        self.undo_stack.push(_UndoEdit(self, edit, merge_id))

    def replace_plan(self, plan: Plan, text: str, merge_id: int = -1) -> None:
        self.edit(ReplacePlan(plan.copy(), text=text), merge_id)

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
        """The ``k`` lowest-scored channels of a group under the current criterion
        (whole positions for groups that feed a grouped conv)."""
        g = self.structure.group_index[group_id]
        sc = self.current_scores() or self.scores.get("l1")
        score = sc[group_id].group if sc else np.arange(g.channels, dtype=float)
        cg = max(g.channel_groups, 1)
        if cg > 1:
            n = g.channels // cg
            pos = np.argsort(score.reshape(cg, n).mean(0), kind="stable")[: k // cg]
            return self.structure.orbit_closure(group_id, pos).tolist() if len(pos) else []
        return sorted(np.argsort(score, kind="stable")[:k].tolist())

    def snapshot(self) -> dict:
        """What the recovery file keeps."""
        return {"source": copy.deepcopy(self.lm.source) if self.lm else None,
                "plans": copy.deepcopy(self.lm.plans) if self.lm else [],
                "plan": self.plan.to_dict() if self.plan else None,
                "criterion": self.criterion, "data": self.data_spec,
                "folder": self.lm.folder if self.lm else None}
