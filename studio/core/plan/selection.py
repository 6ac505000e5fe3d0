"""Automatic selection: turn scores into a plan by a uniform ratio, a global ranking, or a
FLOPs target reached by bisection with the fast plan counter."""

from __future__ import annotations

import numpy as np

from studio.core.criteria.weights import GroupScores
from studio.core.errors import PlanError
from studio.core.plan.plan import Plan, predict
from studio.core.structure.map import Group, StructureMap

SCOPES = ("global", "uniform")


class _Unit:
    """A group as the selector sees it: units to rank (channels, or channel positions for
    groups that feed a grouped conv) and how many may go."""

    def __init__(self, g: Group, score: np.ndarray, round_to: int):
        self.g = g
        self.cg = max(g.channel_groups, 1)
        self.n = g.channels // self.cg
        # Mean score per position across conv groups (Torch-Pruning does the same).
        self.score = score.reshape(self.cg, self.n).mean(0) if self.cg > 1 else score
        self.order = np.argsort(self.score, kind="stable")
        self.round_to = round_to if self.cg == 1 else 1
        min_keep = max(1, self.round_to if self.n >= self.round_to else 1)
        self.max_remove = max(0, self.n - min_keep)

    def allowed(self, k: int) -> int:
        """How many of the ``k`` wanted units may go (never all; kept a multiple of N)."""
        k = min(int(k), self.max_remove)
        if self.round_to > 1 and k > 0:
            kept = -(-(self.n - k) // self.round_to) * self.round_to
            k = max(0, self.n - min(kept, self.n))
        return k

    def channels(self, k: int) -> list[int]:
        return _expand(np.sort(self.order[:k]), self.cg, self.n)


def _expand(pos: np.ndarray, cg: int, n: int) -> list[int]:
    """Unit positions -> channel indices (a position in every conv group when ``cg`` > 1)."""
    if cg == 1:
        return pos.tolist()
    return np.sort((pos[None, :] + n * np.arange(cg)[:, None]).ravel()).tolist()


def lowest_channels(s: StructureMap, group_id: str, score, k: int) -> list[int]:
    """The ``k`` lowest-scored units of a group, as channel indices: channels, or -- for a
    group that feeds a grouped conv -- whole positions, taken from every conv group (``k``
    then counts positions). The one place "choose the weakest channels" is written."""
    g = s.group_index[group_id]
    cg = max(g.channel_groups, 1)
    n = g.channels // cg
    if k <= 0:
        return []
    score = np.asarray(score, dtype=np.float64)
    unit = score.reshape(cg, n).mean(0) if cg > 1 else score
    return _expand(np.sort(np.argsort(unit, kind="stable")[:k]), cg, n)


def _normalize(v: np.ndarray) -> np.ndarray:
    m = float(np.mean(np.abs(v)))
    return v / m if m > 0 else v


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
    meta: dict | None = None,
) -> Plan:
    """A plan removing the lowest-scored channels.

    ``ratio`` removes that fraction of every group's channels (``uniform``) or of all
    eligible channels ranked together after per-group normalisation (``global``).
    ``flops_target`` keeps that fraction of the original FLOPs instead. Protected layers
    keep their output channels; dropped blocks' inner groups are left alone.
    """
    if (ratio is None) == (flops_target is None):
        raise PlanError("give exactly one of a ratio or a FLOPs target")
    target = ratio if ratio is not None else flops_target
    if not 0 < target < 1:
        raise PlanError(f"{'ratio' if ratio is not None else 'FLOPs target'} must lie strictly "
                        f"between 0 and 1 (got {target})")
    if scope not in SCOPES:
        raise PlanError(f"unknown scope '{scope}' (choose global or uniform)")
    if round_to < 1:
        raise PlanError("round_to must be at least 1")
    protect = set(protect)
    unknown = protect - set(s.table.names) - set(s.group_index)
    if unknown:
        raise PlanError(f"cannot protect unknown layer '{sorted(unknown)[0]}'")
    units = []
    for g in s.groups:
        if not g.prunable or (g.block and g.block in drop_blocks):
            continue
        if g.id in protect or any(m.layer in protect for m in g.producers()):
            continue
        units.append(_Unit(g, np.asarray(scores[g.id].group, dtype=np.float64), round_to))
    base = Plan.empty(s)
    base.drop_blocks = sorted(drop_blocks)
    base.meta = dict(meta or {}, scope=scope, round_to=round_to, protect=sorted(protect))

    def make(counts) -> Plan:
        p = base.copy()
        for u, k in zip(units, counts):
            k = u.allowed(k)
            if k:
                p.groups[u.g.id] = u.channels(k)
        return p

    if scope == "uniform":
        def at(r: float) -> Plan:
            return make([int(np.floor(r * u.n)) for u in units])
    else:
        # One global order of all units by normalised score; the first k go.
        owner = np.concatenate([np.full(u.n, i) for i, u in enumerate(units)]) if units else []
        flat = np.concatenate([_normalize(u.score) for u in units]) if units else np.array([])
        order = np.asarray(owner, dtype=np.int64)[np.argsort(flat, kind="stable")]
        total = len(order)

        def at(r: float) -> Plan:
            k = int(round(r * total))
            return make(np.bincount(order[:k], minlength=len(units)))

    if ratio is not None:
        plan = at(ratio)
        plan.meta["ratio"] = ratio
        return plan

    goal = flops_target * s.original.flops
    lo, hi = 0.0, 1.0
    best = at(hi)
    if predict(best, s).flops > goal:
        reach = predict(best, s).flops / s.original.flops
        raise PlanError(f"FLOPs target {flops_target:g} is out of reach: with these "
                        f"constraints the model keeps at least {reach:.3f} of its FLOPs")
    for _ in range(40):  # bisection on the removal fraction; cost is monotone in it
        mid = (lo + hi) / 2
        p = at(mid)
        if predict(p, s).flops <= goal:
            best, hi = p, mid
        else:
            lo = mid
        if hi - lo < 1e-5:
            break
    best.meta["flops_target"] = flops_target
    return best
