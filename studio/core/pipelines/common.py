"""The pruning pipelines of the literature, as generators of progress events:

- ``iterative``: score -> prune -> fine-tune, k rounds to the FLOPs target, each round on
  the fine-tuned model of the last (the standard pipeline);
- ``sampling``: N sub-models meeting the target (per-group keep ratios drawn at random or
  weighted by importance) scored by the cheap evaluator; the best is fine-tuned;
- ``search``: an evolutionary search over per-group keep ratios (MetaPruning-style
  population, mutation, crossover) with the same evaluator; the winner is fine-tuned;
- ``sensitivity``: per group, held-out accuracy as its removal ratio goes 0.1 ... 0.9; then
  per-group ratios that meet a FLOPs target at the least predicted loss, as a plan.

The cheap evaluator never reads the validation split: each candidate inherits the
criterion's channels, its BatchNorm statistics are re-estimated on a few training batches,
and it is scored on a held-out part of the *training* data. Every pipeline records its
history (rounds / candidates / curves, the chosen one) and keeps the best model so far, so a
cancel between steps leaves a usable result.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from studio.core.criteria import weights as crit
from studio.core.train.data import DataSource, loader
from studio.core.criteria.activations import DATA_CRITERIA, score_data
from studio.core.train.evaluate import evaluate
from studio.core.train.finetune import FinetuneConfig, finetune, recalibrate_bn
from studio.core.jobs import Cancelled, CancelToken, Events, progress
from studio.core.model.loader import LoadedModel
from studio.core.plan.plan import Plan, predict
from studio.core.plan.selection import select
from studio.core.structure.map import StructureMap
from studio.core.plan.surgery import apply_plan

PIPELINES = ("oneshot", "iterative", "sampling", "search", "sensitivity")


@dataclass
class PipelineConfig:
    pipeline: str = "iterative"
    flops_target: float = 0.5
    criterion: str = "l1"
    # iterative
    rounds: int = 3
    schedule: str | list = "geometric"  # geometric | linear | explicit FLOPs shares per round
    # sampling / search
    candidates: int = 16  # sampling: how many; search: population size
    generations: int = 4
    mutation: float = 0.15
    min_keep: float = 0.1  # smallest per-group keep ratio a candidate may draw
    importance_weighted: bool = False
    # the cheap evaluator
    bn_batches: int = 10
    holdout_fraction: float = 0.15
    eval_batches: int | None = None
    # sensitivity
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    sensitivity_bn_batches: int = 4  # fewer than candidates get: a curve needs ranks only
    # fine-tuning: the total budget in epochs, shared by all rounds of a pipeline
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    seed: int = 0
    score_batches: int = 8

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ratios"] = list(self.ratios)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PipelineConfig:
        d = dict(d)
        ft = FinetuneConfig(**d.pop("finetune", {}) or {})
        if "ratios" in d:
            d["ratios"] = tuple(d["ratios"])
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown pipeline setting(s): {', '.join(sorted(unknown))}")
        return cls(finetune=ft, **d)


# -- helpers -------------------------------------------------------------------------------
def scores_for(model: nn.Module, s: StructureMap, criterion: str, data: DataSource | None,
               batches: int, seed: int, cancel) -> Events:
    if criterion in crit.CRITERIA:
        return crit.score(model, s, criterion, seed=seed)
    if criterion not in DATA_CRITERIA:
        raise ValueError(f"unknown criterion '{criterion}'")
    dl = loader(data.calibration, 64, shuffle=True, seed=seed)
    return (yield from score_data(model, s, criterion, dl, batches=batches, cancel=cancel,
                                  seed=seed))


class Evaluator:
    """Inherit weights, recalibrate BN on training batches, score on held-out training data."""

    def __init__(self, data: DataSource, cfg: PipelineConfig):
        fit, held = data.holdout(cfg.holdout_fraction, seed=cfg.seed)
        self.held_indices = set(held.indices)  # for tests: never the validation split
        # Materialise the few batches once: every candidate reuses the same tensors.
        calib = loader(data.calibration, 64, shuffle=True, seed=cfg.seed + 1)
        self.calib = [b for _, b in zip(range(cfg.bn_batches), calib)]
        held_dl = loader(held, 256)
        n = cfg.eval_batches or len(held_dl)
        self.held = [b for _, b in zip(range(n), held_dl)]
        self.cfg = cfg
        self.calls = 0

    def __call__(self, model: nn.Module, cancel=None, inplace: bool = False) -> float:
        """Held-out top-1 of ``model`` after BN re-estimation (on a copy unless
        ``inplace``: the caller then restores the BN statistics itself)."""
        self.calls += 1
        m = model if inplace else copy.deepcopy(model)
        recalibrate_bn(m, self.calib, len(self.calib), cancel=cancel)
        gen = evaluate(m, self.held, cancel=cancel)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value["top1"]


def _plan_from_keep(s: StructureMap, scores, keep: dict[str, float], base: Plan) -> Plan:
    """Remove the lowest-scored channels so each group keeps ``keep[g]`` of them."""
    p = base.copy()
    for gid, k in keep.items():
        g = s.group_index[gid]
        cg = max(g.channel_groups, 1)
        n = g.channels // cg
        remove = min(n - 1, max(0, int(round(n * (1 - k)))))
        if remove <= 0:
            p.set_removed(gid, [])
            continue
        sc = np.asarray(scores[gid].group, dtype=np.float64)
        if cg > 1:
            pos = np.argsort(sc.reshape(cg, n).mean(0), kind="stable")[:remove]
            p.set_removed(gid, s.orbit_closure(gid, pos).tolist())
        else:
            p.set_removed(gid, np.argsort(sc, kind="stable")[:remove].tolist())
    return p


def project_to_target(s: StructureMap, scores, shape: dict[str, float], target_flops: float,
                      base: Plan) -> Plan:
    """Scale a per-group keep-ratio *shape* until the plan's FLOPs meet ``target_flops``:
    keep_g = min(1, t * shape_g), t found by bisection (FLOPs grow with t)."""
    lo, hi = 0.0, 1.0 / max(min(shape.values()), 1e-6)
    best = _plan_from_keep(s, scores, {g: min(1.0, lo * v) for g, v in shape.items()}, base)
    if predict(best, s).flops > target_flops:
        return best  # cannot go lower: the caller sees the FLOPs
    for _ in range(30):
        mid = (lo + hi) / 2
        p = _plan_from_keep(s, scores, {g: min(1.0, mid * v) for g, v in shape.items()}, base)
        if predict(p, s).flops <= target_flops:
            best, lo = p, mid
        else:
            hi = mid
    return best


def _prunable(s: StructureMap) -> list[str]:
    return [g.id for g in s.groups if g.prunable]


def _finetune(model, data, cfg: FinetuneConfig, epochs: int, teacher, cancel) -> Events:
    if epochs <= 0:
        return {"best": {}, "history": [], "cancelled": False}
    c = copy.copy(cfg)
    c.epochs = epochs
    return (yield from finetune(model, data, c, teacher=teacher, cancel=cancel))


def _val(model, data, cancel) -> Events:
    return (yield from evaluate(model, loader(data.val, 256), cancel=cancel))


def _new_lm(lm: LoadedModel, model: nn.Module, plan: Plan | None, tag: str) -> LoadedModel:
    plans = lm.plans + ([plan.to_dict()] if plan is not None else [])
    return LoadedModel(model, lm.source, f"{lm.name} [{tag}]", lm.arch, lm.input_size, plans)


# -- the pipelines -------------------------------------------------------------------------
def run_pipeline(lm: LoadedModel, data: DataSource, cfg: PipelineConfig,
                 cancel: CancelToken | None = None) -> Events:
    """Run ``cfg.pipeline``; returns ``{"model": LoadedModel, "history": {...}}``."""
    if cfg.pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline '{cfg.pipeline}' (choose from {', '.join(PIPELINES)})")
    torch.manual_seed(cfg.seed)
    fn = {"oneshot": _oneshot, "iterative": _iterative, "sampling": _sampling,
          "search": _search, "sensitivity": _sensitivity_guided}[cfg.pipeline]
    t0 = time.perf_counter()
    out = yield from fn(lm, data, cfg, cancel)
    out["history"]["seconds"] = time.perf_counter() - t0
    out["history"]["config"] = cfg.as_dict()
    return out


def _map(lm: LoadedModel) -> StructureMap:
    return StructureMap(lm.model, lm.input_size, lm.arch)


def _oneshot(lm, data, cfg, cancel) -> Events:
    s = _map(lm)
    scores = yield from scores_for(lm.model, s, cfg.criterion, data, cfg.score_batches,
                                   cfg.seed, cancel)
    plan = select(s, scores, flops_target=cfg.flops_target, meta={"criterion": cfg.criterion})
    model = apply_plan(lm.model, s, plan)
    teacher = lm.model if cfg.finetune.kd_weight > 0 else None
    ft = yield from _finetune(model, data, cfg.finetune, cfg.finetune.epochs, teacher, cancel)
    val = yield from _val(model, data, cancel)
    rec = {"flops": predict(plan, s).flops, "params": predict(plan, s).params,
           "val_top1": val["top1"], "base_flops": s.original.flops}
    yield {"type": "round", "round": 1, "rounds": 1, **rec}
    return {"model": _new_lm(lm, model, plan, "one-shot"),
            "history": {"pipeline": "oneshot", "rounds": [rec], "finetune": ft.get("history")}}


def round_targets(cfg: PipelineConfig) -> list[float]:
    """FLOPs share (of the original) each round ends at: geometric t^(r/k), linear
    1 - r(1-t)/k, or an explicit list whose last entry must be the target."""
    k, t = cfg.rounds, cfg.flops_target
    if isinstance(cfg.schedule, (list, tuple)):
        sched = [float(x) for x in cfg.schedule]
        if not sched or any(not 0 < x < 1 for x in sched) or sorted(sched, reverse=True) != sched:
            raise ValueError("an explicit schedule is a decreasing list of FLOPs shares in (0, 1)")
        return sched
    if cfg.schedule == "geometric":
        return [t ** (r / k) for r in range(1, k + 1)]
    if cfg.schedule == "linear":
        return [1 - r * (1 - t) / k for r in range(1, k + 1)]
    raise ValueError(f"unknown schedule '{cfg.schedule}' (geometric, linear or a list)")


def _iterative(lm, data, cfg, cancel) -> Events:
    """Rounds of score -> prune -> fine-tune down the schedule of FLOPs targets."""
    base_flops = _map(lm).original.flops
    targets = round_targets(cfg)
    cfg = copy.copy(cfg)
    cfg.rounds = len(targets)
    teacher = lm.model if cfg.finetune.kd_weight > 0 else None
    epochs = _split(cfg.finetune.epochs, cfg.rounds)
    cur, rounds = lm, []
    try:
        for r in range(1, cfg.rounds + 1):
            s = _map(cur)
            goal = base_flops * targets[r - 1]
            scores = yield from scores_for(cur.model, s, cfg.criterion, data,
                                           cfg.score_batches, cfg.seed, cancel)
            plan = select(s, scores, flops_target=min(0.999, goal / s.original.flops),
                          meta={"criterion": cfg.criterion, "round": r})
            model = apply_plan(cur.model, s, plan)
            yield progress(r, cfg.rounds, f"round {r}: fine-tune {epochs[r - 1]} epochs")
            ft = yield from _finetune(model, data, cfg.finetune, epochs[r - 1], teacher,
                                      cancel)
            if ft.get("cancelled") or (cancel is not None and cancel.cancelled):
                break  # an unfinished round: keep the last finished one
            cur = _new_lm(cur, model, plan, f"round {r}")
            val = yield from _val(model, data, cancel)
            rec = {"round": r, "flops": predict(plan, s).flops, "params": predict(plan, s).params,
                   "val_top1": val["top1"], "epochs": epochs[r - 1], "base_flops": base_flops}
            rounds.append(rec)
            yield {"type": "round", "rounds": cfg.rounds, **rec}
    except Cancelled:
        pass  # the last finished round is the best model so far
    return {"model": cur, "history": {"pipeline": "iterative", "rounds": rounds,
                                      "cancelled": len(rounds) < cfg.rounds}}


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i >= parts - extra else 0) for i in range(parts)]


def _candidate(lm, s, scores, shape, cfg, evaluator, cancel):
    base = Plan.empty(s)
    plan = project_to_target(s, scores, shape, cfg.flops_target * s.original.flops, base)
    model = apply_plan(lm.model, s, plan, check=False)
    acc = evaluator(model, cancel)
    return plan, model, acc


def _tune_chosen(lm, data, cfg, s, plan, model, cancel, **extra) -> Events:
    """Fine-tune the chosen model with the whole budget; a cancel keeps its best weights.
    The validation split is first read here, by the fine-tuning's epoch reports -- never
    while candidates are compared. Returns the chosen one's record."""
    teacher = lm.model if cfg.finetune.kd_weight > 0 else None
    ft = {}
    try:
        ft = yield from _finetune(model, data, cfg.finetune, cfg.finetune.epochs, teacher,
                                  cancel)
    except Cancelled:
        pass
    chosen = {"flops": predict(plan, s).flops, "params": predict(plan, s).params, **extra}
    if ft.get("history"):
        chosen["val_top1"] = ft["history"][-1]["val_top1"]
    return chosen


def _finish(lm, data, cfg, s, best, candidates, name, cancel) -> Events:
    plan, model, acc = best
    chosen = yield from _tune_chosen(lm, data, cfg, s, plan, model, cancel, heldout_top1=acc)
    return {"model": _new_lm(lm, model, plan, name),
            "history": {"pipeline": name, "candidates": candidates, "chosen": chosen,
                        "base_flops": s.original.flops}}


def _candidates_setup(lm, data, cfg, cancel) -> Events:
    """What sampling and search share: the map, the criterion's scores, the evaluator."""
    s = _map(lm)
    scores = yield from scores_for(lm.model, s, cfg.criterion, data, cfg.score_batches,
                                   cfg.seed, cancel)
    return s, scores, Evaluator(data, cfg), np.random.default_rng(cfg.seed), _prunable(s)


def _sampling(lm, data, cfg, cancel) -> Events:
    s, scores, ev, rng, groups = yield from _candidates_setup(lm, data, cfg, cancel)
    # importance weighting: groups whose mean score is high tend to keep more
    weight = {g: float(np.mean(scores[g].group)) for g in groups}
    wmax = max(weight.values()) or 1.0
    best, best_i, candidates = None, -1, []
    try:
        for i in range(cfg.candidates):
            shape = {g: float(rng.uniform(cfg.min_keep, 1.0)) for g in groups}
            if cfg.importance_weighted:
                shape = {g: v * (0.5 + 0.5 * weight[g] / wmax) for g, v in shape.items()}
            plan, model, acc = _candidate(lm, s, scores, shape, cfg, ev, cancel)
            rec = {"index": i, "flops": predict(plan, s).flops, "heldout_top1": acc}
            candidates.append(rec)
            yield {"type": "candidate", "total": cfg.candidates, "base_flops": s.original.flops,
                   **rec}
            yield progress(i + 1, cfg.candidates, "sampling sub-models")
            if best is None or acc > best[2]:
                best, best_i = (plan, model, acc), i
    except Cancelled:
        if best is None:
            raise
    for c in candidates:
        c["chosen"] = c["index"] == best_i
    return (yield from _finish(lm, data, cfg, s, best, candidates, "sampling", cancel))


def _search(lm, data, cfg, cancel) -> Events:
    """Evolution over per-group keep-ratio shapes: keep the top half, refill with uniform
    crossover of two parents plus Gaussian mutation; every shape is projected onto the
    FLOPs target before it is scored."""
    s, scores, ev, rng, groups = yield from _candidates_setup(lm, data, cfg, cancel)
    pop = [np.ones(len(groups))] + [rng.uniform(cfg.min_keep, 1.0, len(groups))
                                    for _ in range(cfg.candidates - 1)]
    best, candidates, scored = None, [], []
    total = cfg.candidates * cfg.generations
    k = 0
    try:
        for gen in range(cfg.generations):
            scored = []
            for vec in pop:
                shape = dict(zip(groups, np.clip(vec, cfg.min_keep, 1.0)))
                plan, model, acc = _candidate(lm, s, scores, shape, cfg, ev, cancel)
                rec = {"generation": gen, "flops": predict(plan, s).flops, "heldout_top1": acc}
                candidates.append(rec)
                scored.append((acc, vec))
                k += 1
                yield {"type": "candidate", "total": total, "base_flops": s.original.flops,
                       **rec}
                yield progress(k, total, f"search generation {gen + 1}")
                if best is None or acc > best[2]:
                    best = (plan, model, acc)
            scored.sort(key=lambda t: -t[0])
            elite = [v for _, v in scored[: max(2, len(scored) // 2)]]
            children = []
            while len(elite) + len(children) < cfg.candidates:
                a, b = rng.choice(len(elite), 2, replace=False)
                mask = rng.random(len(groups)) < 0.5
                child = np.where(mask, elite[a], elite[b])
                child = child + rng.normal(0, cfg.mutation, len(groups))
                children.append(np.clip(child, cfg.min_keep, 1.0))
            pop = elite + children
    except Cancelled:
        if best is None:
            raise
    return (yield from _finish(lm, data, cfg, s, best, candidates, "search", cancel))


# -- sensitivity -----------------------------------------------------------------------------
def sensitivity(lm: LoadedModel, data: DataSource, cfg: PipelineConfig,
                cancel: CancelToken | None = None) -> Events:
    """Per group and ratio: held-out top-1 after masking that share of the group's least
    important channels (masking equals removal, see the zero-channel property) and
    re-estimating BatchNorm. One model, hooks, BN state restored after each point: no
    surgery or copy per point. Groups run from the most to the least FLOPs-heavy."""
    s = _map(lm)
    scores = yield from scores_for(lm.model, s, cfg.criterion, data, cfg.score_batches,
                                   cfg.seed, cancel)
    ev = Evaluator(data, dataclasses.replace(cfg, bn_batches=min(cfg.bn_batches,
                                                          cfg.sensitivity_bn_batches)))
    model = copy.deepcopy(lm.model).eval()
    bn_state = {k: v.clone() for k, v in model.state_dict().items()
                if "running" in k or "num_batches" in k}
    base = ev(model, cancel)
    groups = [g for g in s.groups if g.prunable]
    cost = {g.id: _group_flops(s, g) for g in groups}
    groups.sort(key=lambda g: -cost[g.id])
    curves: dict[str, list[float]] = {}
    total = len(groups) * len(cfg.ratios)
    k = 0
    for g in groups:
        order = np.argsort(scores[g.id].group, kind="stable")
        accs = []
        for r in cfg.ratios:
            n = min(g.channels - 1, int(round(r * g.channels)))
            chans = s.orbit_closure(g.id, order[:n]) if g.channel_groups > 1 else order[:n]
            with _masked(model, s, g, chans):
                acc = ev(model, cancel, inplace=True)
            model.load_state_dict(bn_state, strict=False)
            accs.append(acc)
            k += 1
            yield progress(k, total, f"sensitivity of {g.id}")
        curves[g.id] = accs
        yield {"type": "curve", "group": g.id, "ratios": list(cfg.ratios), "top1": accs,
               "base": base}
    return {"base_top1": base, "ratios": list(cfg.ratios), "curves": curves,
            "group_flops": cost, "evaluations": ev.calls}


def _group_flops(s: StructureMap, g) -> int:
    p = Plan.empty(s)
    p.set_removed(g.id, list(range(g.channels - 1)))
    return s.original.flops - predict(p, s).flops


class _masked:
    """Zero channels of a group at every producer's output (conv/linear/norm 'out' members
    whose output is the group's tensor): the network then computes exactly what the pruned
    network would, without surgery."""

    def __init__(self, model, s, g, chans):
        self.handles = []
        self.model, self.s, self.g = model, s, g
        self.chans = set(int(c) for c in chans)

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


def suggest_ratios(s: StructureMap, scores, sens: dict, flops_target: float) -> Plan:
    """Per-group removal ratios that reach ``flops_target`` at the least predicted loss:
    greedily take the next ratio step with the smallest accuracy drop per FLOP saved."""
    ratios = [0.0] + list(sens["ratios"])
    curves = {g: [sens["base_top1"]] + list(v) for g, v in sens["curves"].items()}
    level = {g: 0 for g in curves}
    base = Plan.empty(s)

    def plan_at() -> Plan:
        return _plan_from_keep(s, scores, {g: 1 - ratios[level[g]] for g in curves}, base)

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
    plan.meta = {"criterion": "sensitivity", "flops_target": flops_target,
                 "ratios": {g: ratios[v] for g, v in level.items() if v}}
    return plan


def _sensitivity_guided(lm, data, cfg, cancel) -> Events:
    sens = yield from sensitivity(lm, data, cfg, cancel)
    s = _map(lm)
    scores = yield from scores_for(lm.model, s, cfg.criterion, data, cfg.score_batches,
                                   cfg.seed, cancel)
    plan = suggest_ratios(s, scores, sens, cfg.flops_target)
    model = apply_plan(lm.model, s, plan)
    chosen = yield from _tune_chosen(lm, data, cfg, s, plan, model, cancel,
                                     ratios=plan.meta["ratios"])
    return {"model": _new_lm(lm, model, plan, "sensitivity"),
            "history": {"pipeline": "sensitivity", "sensitivity": sens, "chosen": chosen,
                        "base_flops": s.original.flops}}
