"""Pipelines that compare candidate sub-models with the cheap evaluator, then fine-tune the
chosen one with the whole budget:

- ``sampling``: N sub-models meeting the target (per-group keep ratios drawn at random, or
  weighted by importance);
- ``search``: an evolutionary search over per-group keep ratios (population, crossover,
  mutation); every shape is projected onto the FLOPs target before it is scored;
- ``abc`` (``beecolony``), ``amc`` (``amc``) and ``metapruning`` (``metapruning``) search
  the same space with the same evaluator (``Tracker``).

A cancel while candidates are compared returns the best so far, not fine-tuned, marked
``cancelled``: the caller decides whether to keep it.
"""

from __future__ import annotations

import numpy as np

from studio.core.errors import PlanError
from studio.core.jobs import Cancelled, Events, progress
from studio.core.pipelines.common import (
    Evaluator,
    maybe_reconstruct,
    project_to_target,
    prunable,
    rng_for,
    scores_for,
    teacher_of,
    tune,
)
from studio.core.pipelines.config import PipelineConfig
from studio.core.plan.plan import Plan, predict
from studio.core.plan.probe import map_checked
from studio.core.plan.surgery import apply_plan


def setup(lm, data, cfg: PipelineConfig, cancel) -> Events:
    """The map, the criterion's scores, the evaluator, a seeded generator, the groups."""
    s = map_checked(lm.model, lm.input_size, lm.arch)
    groups = prunable(s)
    if not groups:
        raise PlanError(
            f"{lm.name} has no prunable channel group: the {cfg.pipeline} pipeline has "
            f"nothing to search"
        )
    scores = yield from scores_for(lm.model, s, cfg, data, cancel)
    return s, scores, Evaluator(data, cfg), rng_for(cfg), groups


class Tracker:
    """Scores shapes (per-group keep ratios) as candidates for a search pipeline: each is
    projected onto the FLOPs target, pruned, scored by the cheap evaluator and reported as
    a ``candidate`` event; the best so far is kept. ``model_for`` (optional) gives the
    model a plan is cut from (MetaPruning's generated weights); the default is ``lm``'s."""

    def __init__(self, lm, s, scores, cfg, ev, groups, total: int, label: str, model_for=None):
        self.lm, self.s, self.scores, self.cfg, self.ev = lm, s, scores, cfg, ev
        self.groups, self.total, self.label, self.model_for = groups, total, label, model_for
        self.best, self.best_record, self.records = None, None, []

    def __call__(self, vec, cancel, **info) -> Events:
        """Held-out top-1 of the candidate whose keep ratios are ``vec`` (one per group)."""
        shape = dict(zip(self.groups, vec))
        base = Plan.empty(self.s)
        plan = project_to_target(
            self.s, self.scores, shape, self.cfg.flops_target * self.s.original.flops, base
        )
        src = self.lm.model if self.model_for is None else self.model_for(plan)
        model = apply_plan(src, self.s, plan, check=False)
        acc = self.ev(model, cancel)
        rec = {**info, "flops": predict(plan, self.s).flops, "heldout_top1": acc}
        self.records.append(rec)
        yield {"type": "candidate", "total": self.total, "base_flops": self.s.original.flops, **rec}
        yield progress(len(self.records), self.total, self.label)
        if self.best is None or acc > self.best[2]:
            self.best, self.best_record = (plan, model, acc), rec
        return acc


def finish(lm, data, cfg, s, best, candidates, name, cancel, cancelled: bool) -> Events:
    """Fine-tune the chosen model with the whole budget. The validation split is first read
    here, by the fine-tuning's epoch reports -- never while candidates are compared."""
    plan, model, acc = best
    chosen = {
        "flops": predict(plan, s).flops,
        "params": predict(plan, s).params,
        "heldout_top1": acc,
    }
    if not cancelled:
        yield from maybe_reconstruct(lm.model, s, plan, model, data, cfg, cancel)
        ft = yield from tune(
            model, data, cfg.finetune, cfg.finetune.epochs, teacher_of(lm, cfg), cancel
        )
        cancelled = bool(ft.get("cancelled"))
        if ft.get("history"):
            chosen["val_top1"] = ft["history"][-1]["val_top1"]
    return {
        "model": lm.derive(model, plan, name),
        "cancelled": cancelled,
        "history": {
            "pipeline": name,
            "candidates": candidates,
            "chosen": chosen,
            "base_flops": s.original.flops,
            "cancelled": cancelled,
        },
    }


def sampling(lm, data, cfg: PipelineConfig, cancel) -> Events:
    s, scores, ev, rng, groups = yield from setup(lm, data, cfg, cancel)
    # importance weighting: groups whose mean score is high tend to keep more
    weight = np.array([float(np.mean(scores[g].group)) for g in groups])
    weight = 0.5 + 0.5 * weight / (weight.max() or 1.0)
    track = Tracker(lm, s, scores, cfg, ev, groups, cfg.candidates, "sampling sub-models")

    def draws() -> Events:
        for i in range(cfg.candidates):
            vec = rng.uniform(cfg.min_keep, 1.0, len(groups))
            yield from track(vec * weight if cfg.importance_weighted else vec, cancel, index=i)

    out = yield from searched(lm, data, cfg, s, track, "sampling", draws(), cancel)
    for c in track.records:  # the same records the history holds
        c["chosen"] = c is track.best_record
    return out


def evolve(track: Tracker, cfg: PipelineConfig, rng, cancel) -> Events:
    """Evolution over per-group keep-ratio shapes, scored by ``track``: keep the top half,
    refill with uniform crossover of two parents plus Gaussian mutation. The first shape
    of the first generation is the uniform one."""
    n = len(track.groups)
    pop = [np.ones(n)] + [rng.uniform(cfg.min_keep, 1.0, n) for _ in range(cfg.candidates - 1)]
    for gen in range(cfg.generations):
        scored = []
        for vec in pop:
            acc = yield from track(vec, cancel, generation=gen)
            scored.append((acc, vec))
        scored.sort(key=lambda t: -t[0])
        elite = [v for _, v in scored[: max(2, len(scored) // 2)]]
        children = []
        while len(elite) + len(children) < cfg.candidates:
            a, b = rng.choice(len(elite), 2, replace=False)
            child = np.where(rng.random(n) < 0.5, elite[a], elite[b])
            child = child + rng.normal(0, cfg.mutation, n)
            children.append(np.clip(child, cfg.min_keep, 1.0))
        pop = elite + children


def searched(lm, data, cfg, s, track: Tracker, name: str, search: Events, cancel) -> Events:
    """Run ``search`` (a generator scoring candidates with ``track``), then fine-tune the
    best. A cancel mid-search keeps the best so far (not fine-tuned, marked cancelled)."""
    cancelled = False
    try:
        yield from search
    except Cancelled:
        cancelled = True
        if track.best is None:
            raise
    return (yield from finish(lm, data, cfg, s, track.best, track.records, name, cancel, cancelled))


def search(lm, data, cfg: PipelineConfig, cancel) -> Events:
    s, scores, ev, rng, groups = yield from setup(lm, data, cfg, cancel)
    total = cfg.candidates * cfg.generations
    track = Tracker(lm, s, scores, cfg, ev, groups, total, "evolutionary search")
    return (
        yield from searched(
            lm, data, cfg, s, track, "search", evolve(track, cfg, rng, cancel), cancel
        )
    )
