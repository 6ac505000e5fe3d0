"""The structure map: layers with their cost, coupled channel groups, stages and residual
blocks of a model -- everything the CLI prints and the GUI draws."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from studio.core.errors import UnsupportedModel
from studio.core.structure import depgraph
from studio.core.structure.blocks import BlockInfo, BlockRecorder
from studio.core.structure.counting import CONV, CostRecorder, CostTable, Totals


@dataclass
class Member:
    layer: str
    dim: str  # "out" | "in"
    idx: np.ndarray  # member channel indices ...
    root_idx: np.ndarray  # ... and the group channel each one follows
    counts: np.ndarray = field(repr=False, default=None)  # member channels per group channel
    row: int = -1  # index in the cost table


@dataclass
class Group:
    """Channels that must be removed together. ``id`` is the root layer's name."""

    id: str
    channels: int
    members: list[Member]
    channel_groups: int = 1
    prunable: bool = True
    reason: str = ""
    is_stage: bool = False
    blocks: list[str] = field(default_factory=list)  # residual blocks a stage spans
    block: str | None = None  # the block that holds every member, if any
    untracked: list[Member] = field(default_factory=list)  # members without a cost row
    # Channels that can only go together: one set id per channel (a position in every conv
    # group of a grouped conv; channels a layer receives twice), or None: each goes alone.
    orbit: np.ndarray | None = field(default=None, repr=False)

    @property
    def units(self) -> int:
        """How many independently removable units (channel sets) the group has."""
        return self.channels if self.orbit is None else int(self.orbit.max()) + 1

    def unit_members(self) -> list[np.ndarray]:
        """The channels of each unit, in unit order."""
        if self.orbit is None:
            return [np.array([c]) for c in range(self.channels)]
        order = np.argsort(self.orbit, kind="stable")
        bounds = np.cumsum(np.bincount(self.orbit))[:-1]
        return np.split(order, bounds)

    def unit_scores(self, score: np.ndarray) -> np.ndarray:
        """Per unit, the mean of its channels' scores (Torch-Pruning does the same)."""
        score = np.asarray(score, dtype=np.float64)
        if self.orbit is None:
            return score
        return np.bincount(self.orbit, weights=score) / np.bincount(self.orbit)

    def channels_of(self, units) -> np.ndarray:
        """Unit ids -> their channels, sorted."""
        units = np.asarray(units, dtype=np.int64)
        if self.orbit is None:
            return np.sort(units)
        return np.flatnonzero(np.isin(self.orbit, units))

    def surgery_members(self) -> list[Member]:
        """Every layer and parameter whose channels move with the group."""
        return self.members + self.untracked

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys(m.layer for m in self.members))

    def producers(self) -> list[Member]:
        return [m for m in self.members if m.dim == "out"]

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "channels": self.channels,
            "kind": "stage" if self.is_stage else "filter",
            "prunable": self.prunable,
            "reason": self.reason,
            "channel_groups": self.channel_groups,
            "blocks": self.blocks,
            "block": self.block,
            "members": [{"layer": m.layer, "dim": m.dim} for m in self.members],
        }


@dataclass
class Stage:
    id: str  # the stage's channel group
    name: str
    blocks: list[str]
    channels: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    out = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        out.append(level[0])
    return ".".join(out)


class StructureMap:
    """Built once per loaded model; never holds on to the model itself."""

    def __init__(self, model: nn.Module, input_size, arch: str = "model"):
        self.arch = arch
        self.input_size = tuple(int(s) for s in input_size)
        x = torch.zeros(1, *self.input_size)
        model.eval()
        # One forward pass for everything: the dependency graph's trace, watched by the
        # cost table's and the residual blocks' hooks.
        cost, blocks = CostRecorder(model), BlockRecorder(model)

        def classifier() -> list[str]:
            if cost.last_weighted is None:
                raise UnsupportedModel("the model has no conv or linear layer to prune")
            self.classifier = cost.last_weighted  # the last conv/linear layer to run
            return [self.classifier]

        raw_groups, loose, self.notes = depgraph.trace_groups(
            model, x, ignored=classifier, observers=(cost, blocks)
        )
        self.table: CostTable = cost.table(loose)
        self.blocks: list[BlockInfo] = blocks.blocks()
        self.block_index = {b.name: b for b in self.blocks}
        self.loose_dims = loose
        self.groups: list[Group] = []
        for rg in raw_groups:
            members, untracked, broken = [], [], ""
            for gm in rg.members:
                counts = np.bincount(gm.root_idx, minlength=rg.channels).astype(np.int64)
                row = self.table.index.get(gm.name, -1)
                m = Member(gm.name, gm.dim, gm.idx, gm.root_idx, counts, row)
                if row >= 0 and len(m.idx) and m.idx.max() >= self._width(m):
                    broken = broken or m.layer  # a mapping the graph got wrong: never used
                    continue
                (members if row >= 0 else untracked).append(m)
            g = Group(rg.root, rg.channels, members, rg.channel_groups)
            g.untracked = untracked
            g.orbit = _orbits(rg)
            if broken:
                g.prunable, g.reason = (
                    False,
                    (
                        f"its channels reach '{broken}' through a reshape or layer whose "
                        f"channel mapping the dependency graph gets wrong (e.g. a hard-coded "
                        f"view, a transposed convolution): kept whole rather than cut wrongly"
                    ),
                )
            elif rg.fixed:
                g.prunable, g.reason = False, rg.fixed
            elif g.channels < 2:
                g.prunable, g.reason = False, "a single channel cannot be removed"
            elif g.channel_groups > 1 and g.channels % g.channel_groups:
                g.prunable, g.reason = False, "grouped conv with uneven channel groups"
            self._classify(g)
            self.groups.append(g)
        order = {n: i for i, n in enumerate(self.table.executed_order)}
        self.groups.sort(key=lambda g: order.get(g.id, len(order)))
        self.group_index = {g.id: g for g in self.groups}
        self.stages: list[Stage] = []
        for g in self.groups:
            if g.is_stage:
                name = _common_prefix(g.blocks)
                others = [b.name for b in self.blocks if _under(b.name, name)]
                if not name or set(others) != set(g.blocks) or name in self.block_index:
                    name = f"{g.blocks[0]}..{g.blocks[-1]}" if len(g.blocks) > 1 else g.blocks[0]
                self.stages.append(Stage(g.id, name, g.blocks, g.channels))
                for b in g.blocks:
                    self.block_index[b].stage = name
        self.original: Totals = self.table.totals()
        self.fingerprint = self._fingerprint()

    def _width(self, m: Member) -> int:
        """The member layer's channel count along the member's dim."""
        r = self.table.rows[m.row]
        return int(r.cin if m.dim == "in" and r.code == CONV and not r.dw else r.cout)

    def _block_of(self, layer: str) -> str | None:
        best = None
        for b in self.blocks:
            if _under(layer, b.name):
                best = b.name
        return best

    def _classify(self, g: Group) -> None:
        homes = {self._block_of(m.layer) for m in g.members}
        if len(homes) == 1 and None not in homes:
            g.block = homes.pop()
        contexts = {
            self._block_of(m.layer)
            for m in g.producers()
            if self.table.rows[m.row].kind in ("conv", "linear")
        }
        blocks = sorted({c for c in contexts if c}, key=[b.name for b in self.blocks].index)
        if len(contexts) >= 2 and blocks:
            g.is_stage, g.blocks = True, blocks

    def _fingerprint(self) -> str:
        desc = {
            "groups": [[g.id, g.channels] for g in self.groups],
            "blocks": [b.name for b in self.blocks],
            "layers": [[r.name, r.type, int(r.cin), int(r.cout)] for r in self.table.rows],
        }
        return hashlib.sha256(json.dumps(desc).encode()).hexdigest()[:16]

    # -- a plain-data state (the structure cache) ---------------------------------------
    def to_state(self) -> dict:
        """Everything the map holds as JSON-able data (no pickle): ``from_state`` rebuilds
        an equal map without the model."""

        arrays: list[np.ndarray] = []  # every index array, packed once at the end

        def put(a: np.ndarray) -> int:
            arrays.append(a)
            return len(arrays) - 1

        def member(m: Member) -> list:
            return [m.layer, m.dim, put(m.idx), put(m.root_idx), m.row]

        return {
            "arch": self.arch,
            "input_size": list(self.input_size),
            "classifier": self.classifier,
            "notes": list(self.notes),
            "loose_dims": dict(self.loose_dims),
            "rows": [_row_state(r) for r in self.table.rows],
            "blocks": [
                dict(b.__dict__, in_shape=list(b.in_shape), out_shape=list(b.out_shape))
                for b in self.blocks
            ],
            "groups": [
                {
                    "id": g.id,
                    "channels": g.channels,
                    "channel_groups": g.channel_groups,
                    "prunable": g.prunable,
                    "reason": g.reason,
                    "is_stage": g.is_stage,
                    "blocks": list(g.blocks),
                    "block": g.block,
                    "orbit": None if g.orbit is None else put(g.orbit),
                    "members": [member(m) for m in g.members],
                    "untracked": [member(m) for m in g.untracked],
                }
                for g in self.groups
            ],
            "stages": [s.as_dict() for s in self.stages],
            "lengths": [len(a) for a in arrays],
            "arrays": _pack(np.concatenate(arrays) if arrays else np.zeros(0, np.int64)),
        }

    @classmethod
    def from_state(cls, d: dict) -> StructureMap:
        from studio.core.structure.counting import Row

        self = cls.__new__(cls)
        self.arch = str(d["arch"])
        self.input_size = tuple(int(v) for v in d["input_size"])
        self.classifier = str(d["classifier"])
        self.notes = [str(n) for n in d["notes"]]
        self.loose_dims = {str(k): int(v) for k, v in d["loose_dims"].items()}
        rows = []
        for r in d["rows"]:
            r = dict(r)
            for k in ("kernel", "stride", "out_shape"):
                r[k] = tuple(int(v) for v in r[k])
            rows.append(Row(**r))
        self.table = CostTable(rows)
        self.blocks = [
            BlockInfo(**dict(b, in_shape=tuple(b["in_shape"]), out_shape=tuple(b["out_shape"])))
            for b in d["blocks"]
        ]
        self.block_index = {b.name: b for b in self.blocks}

        flat = _unpack(d["arrays"])
        ends = np.cumsum([int(n) for n in d["lengths"]])
        if len(flat) != (ends[-1] if len(ends) else 0):
            raise ValueError("index arrays do not match their lengths")
        arrays = np.split(flat, ends[:-1]) if len(ends) else []

        def member(v: list, channels: int) -> Member:
            layer, dim, idx, root_idx, row = v
            root = arrays[root_idx]
            counts = np.bincount(root, minlength=channels).astype(np.int64)
            return Member(str(layer), str(dim), arrays[idx], root, counts, int(row))

        self.groups = []
        widths = {r.name: (r.cin, r.cout) for r in rows}
        for gd in d["groups"]:
            n = int(gd["channels"])
            g = Group(
                str(gd["id"]), n, [member(v, n) for v in gd["members"]], int(gd["channel_groups"])
            )
            g.untracked = [member(v, n) for v in gd["untracked"]]
            g.prunable, g.reason = bool(gd["prunable"]), str(gd["reason"])
            g.is_stage, g.blocks, g.block = bool(gd["is_stage"]), list(gd["blocks"]), gd["block"]
            g.orbit = None if gd["orbit"] is None else arrays[gd["orbit"]]
            for m in g.members:  # indices inside the layer and the group, or no map
                if len(m.idx) != len(m.root_idx) or (
                    len(m.idx)
                    and (
                        m.idx.min() < 0
                        or m.root_idx.min() < 0
                        or m.root_idx.max() >= n
                        or m.idx.max() >= max(widths.get(m.layer, (0, 0)))
                    )
                ):
                    raise ValueError(f"member {m.layer} of {g.id}: indices out of range")
            self.groups.append(g)
        self.group_index = {g.id: g for g in self.groups}
        self.stages = [Stage(**sd) for sd in d["stages"]]
        if not all(isinstance(b, BlockInfo) for b in self.blocks) or not isinstance(
            d["blocks"], list
        ):
            raise ValueError("blocks are not a list")
        self.original = self.table.totals()
        self.fingerprint = self._fingerprint()
        return self

    # -- views -------------------------------------------------------------------------
    def group_of_layer(self, layer: str) -> Group | None:
        """The group whose removal shrinks ``layer``'s output channels."""
        for g in self.groups:
            if any(m.layer == layer and m.dim == "out" for m in g.members):
                return g
        return None

    def layer_groups(self) -> dict[str, str]:
        """layer name -> id of the group that owns its output channels."""
        out = {}
        for g in self.groups:
            for m in g.members:
                if m.dim == "out":
                    out.setdefault(m.layer, g.id)
        return out

    def orbit_closure(self, group_id: str, idxs) -> np.ndarray:
        """The channel set extended to whole units: what can physically go (the same
        position from every conv group of a grouped conv; a channel a layer receives twice
        with its twin)."""
        g = self.group_index[group_id]
        idxs = np.unique(np.asarray(idxs, dtype=np.int64))
        if g.orbit is None or not len(idxs):
            return idxs
        return g.channels_of(np.unique(g.orbit[idxs]))

    def as_dict(self) -> dict:
        stage_of = {}
        for s in self.stages:
            stage_of[s.id] = s.name
        owner = self.layer_groups()
        layers = []
        for r in self.table.layer_rows():
            d = r.as_dict()
            d["group"] = owner.get(r.name)
            d["stage"] = stage_of.get(d["group"])
            layers.append(d)
        return {
            "arch": self.arch,
            "input_size": list(self.input_size),
            "fingerprint": self.fingerprint,
            "classifier": self.classifier,
            **self.original.as_dict(),
            "layers": layers,
            "groups": [g.as_dict() for g in self.groups],
            "stages": [s.as_dict() for s in self.stages],
            "blocks": [
                dict(b.__dict__, in_shape=list(b.in_shape), out_shape=list(b.out_shape))
                for b in self.blocks
            ],
        }


def _orbits(rg) -> np.ndarray | None:
    """One unit id per channel: the graph's coupled channels, and -- for a group that feeds
    a grouped conv -- a position in every conv group."""
    n, cg = rg.channels, max(rg.channel_groups, 1)
    ids = np.arange(n) if rg.orbit is None else np.asarray(rg.orbit, dtype=np.int64).copy()
    if cg > 1 and n % cg == 0:
        size = n // cg
        for c in range(size, n):  # join each position with the same one of group 0
            a, b = ids[c], ids[c % size]
            if a != b:
                ids[ids == a] = b
    if len(np.unique(ids)) == n:
        return None
    return np.unique(ids, return_inverse=True)[1]


def _row_state(r) -> dict:
    d = dict(r.__dict__)
    for k in ("kernel", "stride", "out_shape"):
        d[k] = [int(v) for v in d[k]]
    for k, v in d.items():
        if isinstance(v, (np.integer, np.bool_)):
            d[k] = v.item()
    return d


def _pack(a: np.ndarray) -> str:
    """Channel indices as base64 of little-endian int32 (fast to read back, no pickle)."""
    return base64.b64encode(np.asarray(a, dtype="<i4").tobytes()).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<i4").astype(np.int64)
