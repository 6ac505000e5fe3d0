"""Plan edits as Qt-free commands with ``do``/``undo`` (glue's ``core/command.py`` idea).
The GUI mirrors them into a ``QUndoStack``; scripts can use them directly."""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.core.plan.plan import Plan


class Edit:
    text = "edit"

    def do(self, plan: Plan) -> None:
        raise NotImplementedError

    def undo(self, plan: Plan) -> None:
        raise NotImplementedError


@dataclass
class SetChannels(Edit):
    """Set the removed channels of one group."""

    group: str
    channels: list[int]
    text: str = "select channels"
    _old: list[int] | None = field(default=None, repr=False)

    def do(self, plan: Plan) -> None:
        self._old = list(plan.removed(self.group))
        plan.set_removed(self.group, self.channels)

    def undo(self, plan: Plan) -> None:
        plan.set_removed(self.group, self._old or [])


@dataclass
class SetBlock(Edit):
    """Drop a residual block (or keep it)."""

    block: str
    drop: bool
    text: str = ""

    def __post_init__(self):
        self.text = self.text or f"{'drop' if self.drop else 'keep'} block {self.block}"

    def do(self, plan: Plan) -> None:
        blocks = set(plan.drop_blocks)
        (blocks.add if self.drop else blocks.discard)(self.block)
        plan.drop_blocks = sorted(blocks)

    def undo(self, plan: Plan) -> None:
        SetBlock(self.block, not self.drop).do(plan)


@dataclass
class ReplacePlan(Edit):
    """Replace the whole plan (auto-selection, loading a plan file, clearing)."""

    new: Plan
    text: str = "replace plan"
    _old: Plan | None = field(default=None, repr=False)

    def do(self, plan: Plan) -> None:
        self._old = plan.copy()
        _assign(plan, self.new)

    def undo(self, plan: Plan) -> None:
        if self._old is not None:
            _assign(plan, self._old)


def _assign(plan: Plan, src: Plan) -> None:
    plan.groups = {k: list(v) for k, v in src.groups.items()}
    plan.drop_blocks = list(src.drop_blocks)
    plan.meta = dict(src.meta)
