"""The pruning plan: the one object the CLI, the GUI and recipes read and write.

A plan says, per channel group, which channel indices to remove (filter level; on a stage
group that is stage-level pruning) and which residual blocks to drop (block level). It is
plain JSON (``docs/plan-format.md``) and never touches a model: its predicted cost comes
from the structure map's cost table.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from studio.core.errors import PlanError
from studio.core.io import atomic_write_text
from studio.core.schema import expect_format, load_json, parse
from studio.core.structure.counting import CONV, FIXED, Totals
from studio.core.structure.map import StructureMap, _under

FORMAT = "pruning-studio/plan"
VERSION = 1


@dataclass
class Plan:
    arch: str
    fingerprint: str
    groups: dict[str, list[int]] = field(default_factory=dict)
    drop_blocks: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, structure: StructureMap) -> Plan:
        return cls(structure.arch, structure.fingerprint)

    def copy(self) -> Plan:
        return Plan(
            self.arch,
            self.fingerprint,
            {k: list(v) for k, v in self.groups.items()},
            list(self.drop_blocks),
            json.loads(json.dumps(self.meta)),
        )

    def is_empty(self) -> bool:
        return not any(self.groups.values()) and not self.drop_blocks

    def removed(self, group_id: str) -> list[int]:
        return self.groups.get(group_id, [])

    def set_removed(self, group_id: str, idxs) -> None:
        idxs = sorted({int(i) for i in idxs})
        if idxs:
            self.groups[group_id] = idxs
        else:
            self.groups.pop(group_id, None)

    def n_removed(self) -> int:
        return sum(len(v) for v in self.groups.values())

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": {"arch": self.arch, "fingerprint": self.fingerprint},
            "groups": {k: sorted(v) for k, v in self.groups.items() if v},
            "drop_blocks": sorted(self.drop_blocks),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d, where: str = "plan") -> Plan:
        """A plan from its JSON form, checked against the schema (``where`` names the file
        in messages)."""
        expect_format(d, FORMAT, "pruning plan", where, (VERSION,), PlanError)
        f = parse(PlanFile, d, where, PlanError)
        return cls(
            f.model.arch,
            f.model.fingerprint,
            {k: list(v) for k, v in f.groups.items()},
            list(f.drop_blocks),
            dict(f.meta),
        )

    def save(self, path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1, default=str))

    @classmethod
    def load(cls, path) -> Plan:
        return cls.from_dict(load_json(path, "plan", MAX_PLAN_BYTES, PlanError), str(path))


MAX_PLAN_BYTES = 32 * 2**20
MAX_CHANNELS = 1 << 20  # a group's channel count is far below this in any real CNN


class _PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arch: str = Field(max_length=512)
    fingerprint: str = Field(max_length=64)


class PlanFile(BaseModel):
    """The plan's JSON schema (docs/plan-format.md)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["pruning-studio/plan"]
    version: Literal[1]
    model: _PlanModel
    groups: dict[str, list[Annotated[StrictInt, Field(ge=0, lt=MAX_CHANNELS)]]] = Field(
        default_factory=dict, max_length=100_000
    )
    drop_blocks: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list, max_length=10_000
    )
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("groups")
    @classmethod
    def _unique(cls, v):
        for gid, idxs in v.items():
            if len(idxs) > MAX_CHANNELS:
                raise ValueError(f"group '{gid}' lists {len(idxs):,} channels")
            if len(set(idxs)) != len(idxs):
                dup = Counter(idxs).most_common(1)[0][0]
                raise ValueError(f"group '{gid}' lists channel {dup} more than once")
        return v

    @field_validator("drop_blocks")
    @classmethod
    def _blocks(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("a block is listed more than once")
        return v


def validate(plan: Plan, s: StructureMap) -> None:
    """Raise ``PlanError`` with a one-line reason if ``plan`` cannot be applied."""
    if plan.fingerprint != s.fingerprint:
        raise PlanError(
            f"plan was made for a different architecture ({plan.arch}, structure "
            f"{plan.fingerprint}); this model is {s.arch} (structure {s.fingerprint})"
        )
    for gid, idxs in plan.groups.items():
        g = s.group_index.get(gid)
        if g is None:
            raise PlanError(f"unknown channel group '{gid}'")
        if not idxs:
            continue
        if not g.prunable:
            raise PlanError(f"group '{gid}' cannot be pruned: {g.reason}")
        arr = np.asarray(idxs)
        if arr.min() < 0 or arr.max() >= g.channels:
            bad = int(arr[(arr < 0) | (arr >= g.channels)][0])
            raise PlanError(
                f"channel {bad} is out of range for group '{gid}' ({g.channels} channels)"
            )
        if len(set(idxs)) >= g.channels:
            raise PlanError(f"plan removes every channel of group '{gid}'")
        if g.orbit is not None and len(s.orbit_closure(gid, arr)) != len(set(idxs)):
            why = (
                f"it feeds a grouped conv ({g.channel_groups} groups): remove the same "
                f"position from every conv group"
                if g.channel_groups > 1
                else "some of its channels reach a layer twice: remove them with their twins"
            )
            raise PlanError(f"group '{gid}' cannot lose these channels alone: {why}")
    for b in plan.drop_blocks:
        info = s.block_index.get(b)
        if info is None:
            raise PlanError(f"unknown residual block '{b}'")
        if not info.droppable:
            raise PlanError(f"block '{b}' cannot be dropped: it {info.reason}")
    emptied = emptied_layers(plan, s)
    if emptied:
        raise PlanError(
            f"plan removes every channel of layer '{emptied[0]}' (a layer keeps at least one)"
        )


def emptied_layers(plan: Plan, s: StructureMap) -> list[str]:
    """Layers the plan would leave with no channel in or out (a group's channels can map to
    only part of a layer, or all of a small one: concatenations, splits)."""
    rm_in, rm_out, dropped = removal_vectors(plan, s)
    if not rm_in.any() and not rm_out.any():
        return []
    cin, cout, *_ = s.table.evaluate(rm_in, rm_out, dropped)
    t = s.table
    tracked = (t.code != FIXED) & (t.cout > 0)
    bad = tracked & ((cout < 1) | ((t.code == CONV) & (cin < 1)))
    if dropped is not None:
        bad &= ~dropped
    return [t.names[i] for i in np.flatnonzero(bad)]


def removal_vectors(plan: Plan, s: StructureMap):
    """Per cost-table row: input and output channels removed, and the dropped mask."""
    rm_in, rm_out = s.table.zeros(), s.table.zeros()
    for gid, idxs in plan.groups.items():
        if idxs:
            add_removal(s.group_index[gid], np.asarray(idxs, dtype=np.int64), rm_in, rm_out)
    return rm_in, rm_out, dropped_rows(s, plan.drop_blocks)


def add_removal(g, channels: np.ndarray, rm_in: np.ndarray, rm_out: np.ndarray) -> None:
    """Count ``channels`` of group ``g`` as removed from its members' cost-table rows."""
    for m in g.members:
        n = int(m.counts[channels].sum())
        if m.dim == "out":
            rm_out[m.row] += n
        else:
            rm_in[m.row] += n


def dropped_rows(s: StructureMap, drop_blocks) -> np.ndarray | None:
    """Per cost-table row: inside a dropped block (None when no block is dropped)."""
    if not drop_blocks:
        return None
    return np.array([any(_under(n, b) for b in drop_blocks) for n in s.table.names])


def predict(plan: Plan, s: StructureMap) -> Totals:
    """Params, FLOPs and MACs the model will have after ``plan`` -- no model touched."""
    return s.table.totals(*removal_vectors(plan, s))


def predicted_widths(plan: Plan, s: StructureMap) -> dict[str, tuple[int, int]]:
    """layer -> (in, out) channels after the plan (dropped layers are left out)."""
    rm_in, rm_out, dropped = removal_vectors(plan, s)
    cin, cout, *_ = s.table.evaluate(rm_in, rm_out, dropped)
    return {
        n: (int(cin[i]), int(cout[i]))
        for i, n in enumerate(s.table.names)
        if dropped is None or not dropped[i]
    }
