"""Pipelines that compare candidate sub-models with the cheap evaluator, then fine-tune the
chosen one with the whole budget:

- ``sampling``: N sub-models meeting the target (per-group keep ratios drawn at random, or
  weighted by importance);
- ``search``: an evolutionary search over per-group keep ratios (population, crossover,
  mutation); every shape is projected onto the FLOPs target before it is scored.

A cancel while candidates are compared returns the best so far, not fine-tuned, marked
``cancelled``: the caller decides whether to keep it.
"""

from __future__ import annotations

import numpy as np

from studio.core.jobs import Cancelled, Events, progress
from studio.core.pipelines.common import (
    Evaluator,
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
    scores = yield from scores_for(lm.model, s, cfg, data, cancel)
    return s, scores, Evaluator(data, cfg), rng_for(cfg), prunable(s)


def candidate(lm, s, scores, shape, cfg, evaluator, cancel):
    plan = project_to_target(s, scores, shape, cfg.flops_target * s.original.flops, Plan.empty(s))
    model = apply_plan(lm.model, s, plan, check=False)
    return plan, model, evaluator(model, cancel)


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
    weight = {g: float(np.mean(scores[g].group)) for g in groups}
    wmax = max(weight.values()) or 1.0
    best, best_i, candidates, cancelled = None, -1, [], False
    try:
        for i in range(cfg.candidates):
            shape = {g: float(rng.uniform(cfg.min_keep, 1.0)) for g in groups}
            if cfg.importance_weighted:
                shape = {g: v * (0.5 + 0.5 * weight[g] / wmax) for g, v in shape.items()}
            plan, model, acc = candidate(lm, s, scores, shape, cfg, ev, cancel)
            rec = {"index": i, "flops": predict(plan, s).flops, "heldout_top1": acc}
            candidates.append(rec)
            yield {
                "type": "candidate",
                "total": cfg.candidates,
                "base_flops": s.original.flops,
                **rec,
            }
            yield progress(i + 1, cfg.candidates, "sampling sub-models")
            if best is None or acc > best[2]:
                best, best_i = (plan, model, acc), i
    except Cancelled:
        cancelled = True
        if best is None:
            raise
    for c in candidates:
        c["chosen"] = c["index"] == best_i
    return (yield from finish(lm, data, cfg, s, best, candidates, "sampling", cancel, cancelled))


def search(lm, data, cfg: PipelineConfig, cancel) -> Events:
    """Evolution over per-group keep-ratio shapes: keep the top half, refill with uniform
    crossover of two parents plus Gaussian mutation."""
    s, scores, ev, rng, groups = yield from setup(lm, data, cfg, cancel)
    pop = [np.ones(len(groups))] + [
        rng.uniform(cfg.min_keep, 1.0, len(groups)) for _ in range(cfg.candidates - 1)
    ]
    best, candidates, cancelled = None, [], False
    total = cfg.candidates * cfg.generations
    k = 0
    try:
        for gen in range(cfg.generations):
            scored = []
            for vec in pop:
                shape = dict(zip(groups, np.clip(vec, cfg.min_keep, 1.0)))
                plan, model, acc = candidate(lm, s, scores, shape, cfg, ev, cancel)
                rec = {"generation": gen, "flops": predict(plan, s).flops, "heldout_top1": acc}
                candidates.append(rec)
                scored.append((acc, vec))
                k += 1
                yield {"type": "candidate", "total": total, "base_flops": s.original.flops, **rec}
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
        cancelled = True
        if best is None:
            raise
    return (yield from finish(lm, data, cfg, s, best, candidates, "search", cancel, cancelled))
