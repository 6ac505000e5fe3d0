"""Automatic selection: turn scores into a plan by a uniform ratio, a global ranking, or a
FLOPs target reached by bisection with the fast plan counter."""

from __future__ import annotations

import numpy as np

from studio.core.criteria.weights import GroupScores
from studio.core.errors import PlanError
from studio.core.plan.plan import Plan, emptied_layers, predict
from studio.core.structure.map import Group, StructureMap

SCOPES = ("global", "uniform")


class _Unit:
    """A group as the selector sees it: units to rank (channels, or sets of channels that
    can only go together) and how many may go."""

    def __init__(self, g: Group, score: np.ndarray, round_to: int, max_ratio: float = 1.0):
        self.g = g
        self.full = score
        self.n = g.units
        self.score = g.unit_scores(score)
        self.order = np.argsort(self.score, kind="stable")
        self.round_to = round_to if g.orbit is None else 1
        min_keep = max(1, self.round_to if self.n >= self.round_to else 1)
        self.max_remove = max(0, self.n - min_keep)
        if max_ratio < 1:  # no group loses more than this share of its units
            self.max_remove = min(self.max_remove, int(np.floor(max_ratio * self.n + 1e-9)))

    def allowed(self, k: int) -> int:
        """How many of the ``k`` wanted units may go (never all; kept a multiple of N)."""
        k = min(int(k), self.max_remove)
        if self.round_to > 1 and k > 0:
            kept = -(-(self.n - k) // self.round_to) * self.round_to
            k = max(0, self.n - min(kept, self.n))
        return k

    def channels(self, k: int) -> list[int]:
        return self.g.channels_of(self.order[:k]).tolist()


def lowest_channels(s: StructureMap, group_id: str, score, k: int) -> list[int]:
    """The ``k`` lowest-scored units of a group, as channel indices (``k`` counts units:
    channels, or sets of channels that can only go together). The one place "choose the
    weakest channels" is written."""
    g = s.group_index[group_id]
    if k <= 0:
        return []
    order = np.argsort(g.unit_scores(score), kind="stable")
    return g.channels_of(order[:k]).tolist()


def _normalize(v: np.ndarray) -> np.ndarray:
    m = float(np.mean(np.abs(v)))
    return v / m if m > 0 else v


def keep_layers(p: Plan, s: StructureMap, units: dict[str, _Unit]) -> Plan:
    """Give back, one at a time, the best-scored removed channel of a layer the plan would
    empty (a group may map onto only part of a layer, or onto all of a small one)."""
    for _ in range(10_000):
        emptied = emptied_layers(p, s)
        if not emptied:
            return p
        row = s.table.index[emptied[0]]
        for gid, idxs in p.groups.items():
            ms = [m for m in s.group_index[gid].members if m.row == row]
            removed = np.asarray(idxs, dtype=np.int64)
            hit = (
                removed[np.isin(removed, np.concatenate([m.root_idx for m in ms]))]
                if ms
                else removed[:0]
            )
            if not len(hit):
                continue
            u = units.get(gid)
            best = int(hit[np.argmax(u.full[hit])]) if u is not None else int(hit[0])
            p.set_removed(gid, set(idxs) - set(s.orbit_closure(gid, [best]).tolist()))
            break
        else:
            return p  # nothing of this plan touches it: validation will say why
    return p


def _check(s: StructureMap, ratio, flops_target, scope: str, round_to: int, protect) -> None:
    if (ratio is None) == (flops_target is None):
        raise PlanError("give exactly one of a ratio or a FLOPs target")
    target = ratio if ratio is not None else flops_target
    if not 0 < target < 1:
        raise PlanError(
            f"{'ratio' if ratio is not None else 'FLOPs target'} must lie strictly "
            f"between 0 and 1 (got {target})"
        )
    if scope not in SCOPES:
        raise PlanError(f"unknown scope '{scope}' (choose global or uniform)")
    if round_to < 1:
        raise PlanError("round_to must be at least 1")
    unknown = set(protect) - set(s.table.names) - set(s.group_index)
    if unknown:
        raise PlanError(f"cannot protect unknown layer '{sorted(unknown)[0]}'")


def check_max_ratio(max_ratio: float) -> None:
    if not 0 < max_ratio <= 1:
        raise PlanError(f"the most a group may lose must lie in (0, 1] (got {max_ratio})")


def _units(
    s: StructureMap, scores, round_to: int, protect: set, drop_blocks, max_ratio: float = 1.0
) -> list[_Unit]:
    """The groups selection may shrink: prunable, not protected, not inside a dropped
    block."""
    units = []
    for g in s.groups:
        if not g.prunable or (g.block and g.block in drop_blocks):
            continue
        if g.id in protect or any(m.layer in protect for m in g.producers()):
            continue
        score = np.asarray(scores[g.id].group, dtype=np.float64)
        units.append(_Unit(g, score, round_to, max_ratio))
    return units


def _schedule(units: list[_Unit], scope: str):
    """``r`` (a removal fraction) -> units to remove per group."""
    if scope == "uniform":
        return lambda r: [int(np.floor(r * u.n)) for u in units]
    # One global order of all units by normalised score; the first k go.
    if not units:
        return lambda r: []
    owner = np.concatenate([np.full(u.n, i) for i, u in enumerate(units)])
    flat = np.concatenate([_normalize(u.score) for u in units])
    order = owner[np.argsort(flat, kind="stable")]
    return lambda r: np.bincount(order[: int(round(r * len(order)))], minlength=len(units))


def _bisect(s: StructureMap, at, flops_target: float) -> Plan:
    """The plan at the smallest removal fraction whose FLOPs meet the target (the cost is
    monotone in the fraction)."""
    goal = flops_target * s.original.flops
    lo, hi = 0.0, 1.0
    best = at(hi)
    if predict(best, s).flops > goal:
        reach = predict(best, s).flops / s.original.flops
        raise PlanError(
            f"FLOPs target {flops_target:g} is out of reach: with these "
            f"constraints the model keeps at least {reach:.3f} of its FLOPs"
        )
    while hi - lo >= 1e-5:
        mid = (lo + hi) / 2
        p = at(mid)
        if predict(p, s).flops <= goal:
            best, hi = p, mid
        else:
            lo = mid
    return best


def select(
    s: StructureMap,
    scores: dict[str, GroupScores],
    *,
    ratio: float | None = None,
    flops_target: float | None = None,
    scope: str = "global",
    round_to: int = 1,
    protect: tuple[str, ...] | list[str] = (),
    drop_blocks: tuple[str, ...] | list[str] = (),
    max_ratio: float = 1.0,
    meta: dict | None = None,
) -> Plan:
    """A plan removing the lowest-scored channels.

    ``ratio`` removes that fraction of every group's channels (``uniform``) or of all
    eligible channels ranked together after per-group normalisation (``global``).
    ``flops_target`` keeps that fraction of the original FLOPs instead. Protected layers
    keep their output channels; dropped blocks' inner groups are left alone; no group loses
    more than ``max_ratio`` of its channels.
    """
    _check(s, ratio, flops_target, scope, round_to, protect)
    check_max_ratio(max_ratio)
    if ratio is not None and ratio > max_ratio:
        raise PlanError(
            f"a ratio of {ratio:g} removes more than the {max_ratio:g} any one group may lose "
            f"(max ratio)"
        )
    protect = set(protect)
    units = _units(s, scores, round_to, protect, drop_blocks, max_ratio)
    base = Plan.empty(s)
    base.drop_blocks = sorted(drop_blocks)
    base.meta = dict(meta or {}, scope=scope, round_to=round_to, protect=sorted(protect))
    if max_ratio < 1:
        base.meta["max_ratio"] = max_ratio
    counts_at = _schedule(units, scope)

    by_id = {u.g.id: u for u in units}

    def at(r: float) -> Plan:
        p = base.copy()
        for u, k in zip(units, counts_at(r)):
            k = u.allowed(k)
            if k:
                p.groups[u.g.id] = u.channels(k)
        return keep_layers(p, s, by_id)

    if ratio is not None:
        plan = at(ratio)
        plan.meta["ratio"] = ratio
        return plan
    plan = _bisect(s, at, flops_target)
    plan.meta["flops_target"] = flops_target
    return plan
