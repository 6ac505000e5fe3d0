"""KL-divergence importance: a structure matters as much as removing it changes what the
whole network predicts -- the KL divergence between the original model's output
distribution and that of the model without the structure, averaged over calibration
images. A global criterion: scores of different groups are on one scale.

Affordable by batching: the calibration images are repeated once per structure in a
forward pass and, at every producer of the group, hooks zero a different structure's
channels in each copy (the zero-channel property: that is exactly what removing them
computes). Every channel is its own structure while a group has at most ``per_group``
channels; larger groups are cut into ``per_group`` chunks of channels adjacent in L1 order,
every channel of a chunk scoring the chunk's KL divided by the chunk's size (ties broken by
L1) -- ``array_split`` makes chunks of two sizes, and wider groups must not look more
important for being judged several channels at a time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from studio.core.criteria.weights import GroupScores
from studio.core.criteria.weights import score as weight_score
from studio.core.jobs import CancelToken, Events, progress
from studio.core.structure.map import Group, StructureMap

KL_IMAGES = 64  # calibration images every structure is judged on
PER_GROUP = 64  # structures per group at most (more channels: chunks)
KL_MEMORY = 48 * 2**20  # activation bytes one replicated pass may hold


def _structures(g: Group, l1: np.ndarray, per_group: int) -> list[np.ndarray]:
    if g.channels <= per_group:
        return [np.array([c]) for c in range(g.channels)]
    order = np.argsort(l1, kind="stable")
    return [c for c in np.array_split(order, per_group) if len(c)]


class _ZeroCopies:
    """Hooks on a group's producers: copy j of the repeated batch loses structure j."""

    def __init__(self, model: nn.Module, g: Group, structures: list[np.ndarray], n: int):
        self.n = n
        self.handles = []
        for m in g.members:
            if m.dim != "out":
                continue
            mod = model.get_submodule(m.layer)
            if not isinstance(mod, nn.Module):
                continue
            member_of = {}
            for i, r in zip(m.idx, m.root_idx):
                member_of.setdefault(int(r), []).append(int(i))
            chans = [sorted(i for c in st for i in member_of.get(int(c), [])) for st in structures]
            self.handles.append(mod.register_forward_hook(self._hook(chans)))

    def _hook(self, chans):
        def hook(_m, _a, out):
            copies = out.shape[0] // self.n
            mask = torch.ones(copies, out.shape[1], dtype=out.dtype, device=out.device)
            for j in range(copies):
                if chans[j]:
                    mask[j, chans[j]] = 0
            shape = (copies, 1, out.shape[1]) + (1,) * (out.dim() - 2)
            return (out.reshape(copies, self.n, *out.shape[1:]) * mask.reshape(shape)).reshape(
                out.shape
            )

        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def _copies_per_pass(s: StructureMap, n: int, budget: int = KL_MEMORY) -> int:
    sizes = [int(np.prod(r.out_shape)) for r in s.table.rows if r.out_shape]
    per_image = 4 * 4 * max(sizes) if sizes else 4096
    return int(max(1, min(64, budget // max(per_image * n, 1))))


def score_kl(
    model: nn.Module,
    s: StructureMap,
    images: torch.Tensor,
    *,
    device="cpu",
    cancel: CancelToken | None = None,
    per_group: int = PER_GROUP,
) -> Events:
    """Yields progress per group; returns ``{group id: GroupScores}`` (higher KL = keep)."""
    device = torch.device(device)
    model = model.eval().to(device)
    x = images.to(device)
    n = len(x)
    l1 = weight_score(model, s, "l1")
    with torch.no_grad():
        logp = F.log_softmax(model(x).float().flatten(1), 1)
    copies = _copies_per_pass(s, n)
    out = {}
    groups = [g for g in s.groups if g.prunable]
    for k, g in enumerate(groups):
        structures = _structures(g, l1[g.id].group, per_group)
        kls = []
        for start in range(0, len(structures), copies):
            if cancel is not None:
                cancel.check()
            part = structures[start : start + copies]
            hooks = _ZeroCopies(model, g, part, n)
            try:
                with torch.no_grad():
                    y = model(x.repeat(len(part), *([1] * (x.dim() - 1))))
            finally:
                hooks.close()
            logq = F.log_softmax(y.float().flatten(1), 1).reshape(len(part), n, -1)
            kl = (logp.exp()[None] * (logp[None] - logq)).sum(2).mean(1)
            kls += kl.clamp_min(0).cpu().tolist()
        score = np.zeros(g.channels)
        for st, v in zip(structures, kls):
            score[st] = v / len(st)  # per channel: chunks of 1 and of 2 stay comparable
        tie = l1[g.id].group / max(float(l1[g.id].group.max()), 1e-30)
        span = max(float(np.ptp(score)), float(np.abs(score).max()), 1e-12)
        score = score + 1e-6 * span * tie
        members = {
            m.layer: score
            for m in g.members
            if m.dim == "out" and s.table.rows[m.row].kind in ("conv", "linear")
        }
        out[g.id] = GroupScores(score, members, {"structures": len(structures)})
        yield progress(k + 1, len(groups), "scoring (kl)")
    for g in s.groups:
        out.setdefault(g.id, GroupScores(np.zeros(g.channels), {}))
    return out
