"""Sensitivity analysis: per channel group, held-out accuracy as its removal ratio grows --
and per-group ratios that meet a FLOPs target at the least predicted loss, as a plan (the
``sensitivity`` pipeline fine-tunes that plan's model).

Masking a group's channels at its producers computes exactly what removing them would
(the zero-channel property), so the analysis needs no surgery or model copy per point:
hooks on one model, BatchNorm statistics re-estimated per point and restored after it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from studio.core.jobs import Cancelled, CancelToken, Events, progress
from studio.core.pipelines.common import (
    Evaluator,
    maybe_reconstruct,
    plan_from_keep,
    scores_for,
    teacher_of,
    tune,
)
from studio.core.pipelines.config import PipelineConfig
from studio.core.plan.plan import Plan, predict
from studio.core.plan.probe import map_checked
from studio.core.plan.selection import lowest_channels
from studio.core.plan.surgery import apply_plan
from studio.core.structure.map import StructureMap
from studio.core.train.data import DataSource


def group_flops(s: StructureMap, g) -> int:
    """FLOPs that removing all but one channel of ``g`` saves."""
    p = Plan.empty(s)
    p.set_removed(g.id, list(range(g.channels - 1)))
    return s.original.flops - predict(p, s).flops


class masked:
    """Zero channels of a group at every producer's output (conv/linear/norm 'out' members
    whose output is the group's tensor): the network then computes exactly what the pruned
    network would, without surgery."""

    def __init__(self, model, g, chans):
        self.handles = []
        self.model, self.g = model, g
        self.chans = {int(c) for c in chans}

    def __enter__(self):
        for m in self.g.members:
            if m.dim != "out":
                continue
            idx = [int(i) for i, r in zip(m.idx, m.root_idx) if int(r) in self.chans]
            if not idx:
                continue
            mod = self.model.get_submodule(m.layer)
            if not isinstance(mod, nn.Module):
                continue
            t = torch.as_tensor(idx)

            def hook(_m, _a, out, t=t):
                out = out.clone()
                out[:, t] = 0
                return out

            self.handles.append(mod.register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def analyse(lm, data: DataSource, cfg: PipelineConfig, cancel: CancelToken | None = None) -> Events:
    """Returns ``(structure, scores, result)``; ``result`` is JSON-ready: base held-out
    top-1, ratios, one curve per group, each group's FLOPs, the number of evaluations.
    Groups run from the most to the least FLOPs-heavy."""
    s = map_checked(lm.model, lm.input_size, lm.arch)
    scores = yield from scores_for(lm.model, s, cfg, data, cancel)
    ev = Evaluator(data, cfg, bn_batches=min(cfg.bn_batches, cfg.sensitivity_bn_batches))
    model = copy.deepcopy(lm.model).eval()
    bn_state = {
        k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k
    }
    base = ev(model, cancel)
    groups = [g for g in s.groups if g.prunable]
    cost = {g.id: group_flops(s, g) for g in groups}
    groups.sort(key=lambda g: -cost[g.id])
    curves: dict[str, list[float]] = {}
    total = len(groups) * len(cfg.ratios)
    k = 0
    for g in groups:
        accs = []
        for r in cfg.ratios:
            n = min(g.units - 1, int(round(r * g.units)))
            chans = lowest_channels(s, g.id, scores[g.id].group, n)
            with masked(model, g, chans):
                acc = ev(model, cancel, inplace=True)
            model.load_state_dict(bn_state, strict=False)
            accs.append(acc)
            k += 1
            yield progress(k, total, f"sensitivity of {g.id}")
        curves[g.id] = accs
        yield {
            "type": "curve",
            "group": g.id,
            "ratios": list(cfg.ratios),
            "top1": accs,
            "base": base,
        }
    return (
        s,
        scores,
        {
            "base_top1": base,
            "ratios": list(cfg.ratios),
            "curves": curves,
            "group_flops": cost,
            "evaluations": ev.calls,
        },
    )


def sensitivity(
    lm, data: DataSource, cfg: PipelineConfig, cancel: CancelToken | None = None
) -> Events:
    """The analysis alone (its JSON-ready result)."""
    _s, _scores, res = yield from analyse(lm, data, cfg, cancel)
    return res


def suggest_ratios(s: StructureMap, scores, sens: dict, flops_target: float) -> Plan:
    """Per-group removal ratios that reach ``flops_target`` at the least predicted loss:
    greedily take the next ratio step with the smallest accuracy drop per FLOP saved."""
    ratios = [0.0] + list(sens["ratios"])
    curves = {g: [sens["base_top1"]] + list(v) for g, v in sens["curves"].items()}
    level = {g: 0 for g in curves}
    base = Plan.empty(s)

    def plan_at() -> Plan:
        return plan_from_keep(s, scores, {g: 1 - ratios[level[g]] for g in curves}, base)

    plan = plan_at()
    goal = flops_target * s.original.flops
    while predict(plan, s).flops > goal:
        best, best_cost = None, None
        cur_flops = predict(plan, s).flops
        for g in curves:
            if level[g] + 1 >= len(ratios):
                continue
            level[g] += 1
            saved = cur_flops - predict(plan_at(), s).flops
            level[g] -= 1
            drop = curves[g][level[g]] - curves[g][level[g] + 1]
            if saved <= 0:
                continue
            cost = max(drop, 0.0) / saved
            if best_cost is None or cost < best_cost:
                best, best_cost = g, cost
        if best is None:
            break
        level[best] += 1
        plan = plan_at()
    plan.meta = {
        "criterion": "sensitivity",
        "flops_target": flops_target,
        "ratios": {g: ratios[v] for g, v in level.items() if v},
    }
    return plan


def guided(lm, data, cfg: PipelineConfig, cancel) -> Events:
    """The ``sensitivity`` pipeline: analyse, take the suggested plan, fine-tune it."""
    s, scores, sens = yield from analyse(lm, data, cfg, cancel)
    plan = suggest_ratios(s, scores, sens, cfg.flops_target)
    model = apply_plan(lm.model, s, plan)
    yield from maybe_reconstruct(lm.model, s, plan, model, data, cfg, cancel)
    chosen = {
        "flops": predict(plan, s).flops,
        "params": predict(plan, s).params,
        "ratios": plan.meta["ratios"],
    }
    ft = yield from tune(
        model, data, cfg.finetune, cfg.finetune.epochs, teacher_of(lm, cfg), cancel
    )
    if ft.get("cancelled"):
        raise Cancelled()
    if ft.get("history"):
        chosen["val_top1"] = ft["history"][-1]["val_top1"]
    return {
        "model": lm.derive(model, plan, "sensitivity"),
        "cancelled": False,
        "history": {
            "pipeline": "sensitivity",
            "sensitivity": sens,
            "chosen": chosen,
            "base_flops": s.original.flops,
        },
    }
