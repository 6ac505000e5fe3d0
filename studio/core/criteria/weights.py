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


def _channel_slices(module, member: Member) -> torch.Tensor | None:
    """The member's weights as rows, one row per member channel, or None."""
    w = getattr(module, "weight", None)
    if isinstance(module, nn.Parameter):
        w = module
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


def _score_group(model: nn.Module, s: StructureMap, g: Group, criterion: str,
                 rng: np.random.Generator) -> GroupScores:
    if criterion == "random":
        r = rng.random(g.channels)
        return GroupScores(r, {m.layer: r for m in g.members})
    members: dict[str, np.ndarray] = {}
    total = np.zeros(g.channels)
    sq_total = np.zeros(g.channels)
    norm_sum, norm_n = np.zeros(g.channels), 0
    for m in g.members:
        mod = _resolve(model, m.layer)
        rows = _channel_slices(mod, m)
        if rows is None:
            continue
        kind = s.table.rows[m.row]["kind"]
        is_filter = m.dim == "out" and kind in ("conv", "linear")
        if criterion == "l1":
            v = rows.abs().sum(1).numpy().astype(np.float64)
        elif criterion in ("l2", "group_norm"):
            v = rows.pow(2).sum(1).numpy().astype(np.float64)
        elif criterion == "fpgm":
            v = _fpgm(rows) if is_filter else rows.pow(2).sum(1).sqrt().numpy()
        elif criterion == "bn_scale":
            v = rows.abs().sum(1).numpy().astype(np.float64)
        else:
            raise ValueError(f"unknown criterion '{criterion}' (choose from {', '.join(CRITERIA)})")
        gv = _to_group(g, m, v)
        if criterion in ("l2", "group_norm"):
            members[m.layer] = np.sqrt(gv)
        else:
            members[m.layer] = gv
        if criterion == "group_norm":
            sq_total += gv
        elif criterion == "bn_scale":
            if kind == "norm":
                norm_sum += gv
                norm_n += 1
        elif is_filter:
            if criterion == "l2":
                sq_total += gv
            elif criterion == "fpgm":
                total += gv / max(gv.mean(), 1e-12)  # each layer weighs the same
            else:
                total += gv
    if criterion in ("l2", "group_norm"):
        score = np.sqrt(sq_total)
    elif criterion == "bn_scale":
        if norm_n == 0:  # no norm layer in the group: fall back to the filters' L2 norm
            return _score_group(model, s, g, "l2", rng)
        score = norm_sum / norm_n
    else:
        score = total
    return GroupScores(score, members)


def score(model: nn.Module, s: StructureMap, criterion: str = DEFAULT,
          seed: int = 0) -> dict[str, GroupScores]:
    """Scores for every group of ``s`` (computed on ``model``'s current weights)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion '{criterion}' (choose from {', '.join(CRITERIA)})")
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        return {g.id: _score_group(model, s, g, criterion, rng) for g in s.groups}
