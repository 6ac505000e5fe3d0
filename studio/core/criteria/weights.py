"""Parameter-driven importance criteria (no data needed).

Every criterion gives a score to every channel of every group -- low means "remove first" --
and a score per member layer, both indexed by the group's channels:

- ``l1`` / ``l2``: norm of the producing filters (Li et al. 2017), summed over a group's
  producer layers (a stage group has one producer per residual block);
- ``group_norm``: L2 norm over *every* coupled weight -- producers, consumers' input slices,
  norm layers (DepGraph's group magnitude);
- ``fpgm``: distance of each filter to the others of its layer (filters near the geometric
  median are replaceable);
- ``bn_scale``: mean |gamma| of the group's norm layers (network slimming);
- ``random``: seeded uniform scores, the baseline every criterion must beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from studio.core.criteria import DEFAULT, WEIGHT_CRITERIA  # noqa: E402
from studio.core.structure.map import Group, Member, StructureMap

CRITERIA = WEIGHT_CRITERIA


@dataclass
class GroupScores:
    group: np.ndarray  # one score per group channel
    members: dict[str, np.ndarray]  # member layer -> one score per group channel
    extra: dict = field(default_factory=dict)  # e.g. PFA's suggested width


def _channel_slices(module, member: Member, loose_dim: int = 0) -> torch.Tensor | None:
    """The member's weights as rows, one row per member channel, or None. A loose
    parameter's channels lie along ``loose_dim`` (a channel scale ``(1, C, 1, 1)``: 1)."""
    if isinstance(module, nn.Parameter):
        w = module.detach().float()
        return w.movedim(loose_dim, 0).flatten(1) if w.dim() > 1 else w[:, None]
    w = getattr(module, "weight", None)
    if w is None or not isinstance(w, torch.Tensor):
        return None
    w = w.detach().float()
    if isinstance(module, nn.modules.conv._ConvNd):
        single = module.groups == module.in_channels == module.out_channels
        if member.dim == "out" or single:
            return w.flatten(1)
        g = module.groups
        cpg = w.shape[1]  # input channels per conv group
        # weight [out, cpg, k...] -> one row per input channel c: W[group(c) rows, c % cpg]
        wg = w.reshape(g, w.shape[0] // g, cpg, -1)  # [g, out/g, cpg, k]
        return wg.permute(0, 2, 1, 3).reshape(g * cpg, -1)
    if isinstance(module, nn.Linear):
        return w if member.dim == "out" else w.t()
    if w.dim() == 1:  # norm layers, PReLU: one value per channel
        return w[:, None]
    return w.flatten(1) if w.dim() > 1 else w[:, None]


def _to_group(g: Group, m: Member, per_member_channel: np.ndarray) -> np.ndarray:
    """Sum a member's per-channel values onto the group channels they follow."""
    return np.bincount(m.root_idx, weights=per_member_channel[m.idx], minlength=g.channels)


def _resolve(model: nn.Module, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return model.get_parameter(name)


def _fpgm(rows: torch.Tensor) -> np.ndarray:
    d = torch.cdist(rows[None], rows[None])[0]
    return d.sum(1).numpy().astype(np.float64)


_SQUARED = ("l2", "group_norm")


def _member_values(criterion: str, rows: torch.Tensor, is_filter: bool) -> np.ndarray:
    """One value per member channel (squared norms for the L2 criteria)."""
    if criterion in ("l1", "bn_scale"):
        return rows.abs().sum(1).numpy().astype(np.float64)
    if criterion in _SQUARED:
        return rows.pow(2).sum(1).numpy().astype(np.float64)
    if criterion == "fpgm":
        return _fpgm(rows) if is_filter else rows.pow(2).sum(1).sqrt().numpy()
    raise ValueError(f"unknown criterion '{criterion}' (choose from {', '.join(CRITERIA)})")


def _counts(criterion: str, kind: str, is_filter: bool) -> bool:
    """Whether a member's values enter the group's score: every coupled weight for the
    group norm, the norm layers for BN scale, the producing filters otherwise."""
    if criterion == "group_norm":
        return True
    if criterion == "bn_scale":
        return kind == "norm"
    return is_filter


def _combine(criterion: str, parts: list[np.ndarray], n: int) -> np.ndarray:
    if not parts:
        return np.zeros(n)
    if criterion in _SQUARED:
        return np.sqrt(np.sum(parts, 0))
    if criterion == "bn_scale":
        return np.mean(parts, 0)
    if criterion == "fpgm":  # each layer weighs the same
        return np.sum([v / max(v.mean(), 1e-12) for v in parts], 0)
    return np.sum(parts, 0)


def _score_group(
    model: nn.Module, s: StructureMap, g: Group, criterion: str, rng: np.random.Generator
) -> GroupScores:
    if criterion == "random":
        r = rng.random(g.channels)
        return GroupScores(r, {m.layer: r for m in g.members})
    members: dict[str, np.ndarray] = {}
    parts = []
    for m in g.members:
        rows = _channel_slices(_resolve(model, m.layer), m, s.loose_dims.get(m.layer, 0))
        if rows is None:
            continue
        kind = s.table.rows[m.row].kind
        is_filter = m.dim == "out" and kind in ("conv", "linear")
        gv = _to_group(g, m, _member_values(criterion, rows, is_filter))
        members[m.layer] = np.sqrt(gv) if criterion in _SQUARED else gv
        if _counts(criterion, kind, is_filter):
            parts.append(gv)
    if criterion == "bn_scale" and not parts:  # no norm layer: the filters' L2 norm
        return _score_group(model, s, g, "l2", rng)
    return GroupScores(_combine(criterion, parts, g.channels), members)


def score(
    model: nn.Module, s: StructureMap, criterion: str = DEFAULT, seed: int = 0
) -> dict[str, GroupScores]:
    """Scores for every group of ``s`` (computed on ``model``'s current weights)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion '{criterion}' (choose from {', '.join(CRITERIA)})")
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        return {g.id: _score_group(model, s, g, criterion, rng) for g in s.groups}
