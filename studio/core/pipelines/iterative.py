"""One-shot (score -> prune -> fine-tune) and the standard iterative pipeline: rounds of
score -> prune -> fine-tune down a schedule of FLOPs targets, each round on the fine-tuned
model of the last."""

from __future__ import annotations

from studio.core.jobs import Cancelled, Events, progress
from studio.core.pipelines.common import (
    maybe_reconstruct,
    scores_for,
    split_epochs,
    teacher_of,
    tune,
    val_top1,
)
from studio.core.pipelines.config import PipelineConfig
from studio.core.plan.plan import predict
from studio.core.plan.probe import map_checked
from studio.core.plan.selection import select
from studio.core.plan.surgery import apply_plan
from studio.core.structure.map import StructureMap


def _map(lm) -> StructureMap:
    return map_checked(lm.model, lm.input_size, lm.arch)


def oneshot(lm, data, cfg: PipelineConfig, cancel) -> Events:
    s = _map(lm)
    scores = yield from scores_for(lm.model, s, cfg, data, cancel)
    plan = select(s, scores, flops_target=cfg.flops_target, meta={"criterion": cfg.criterion})
    model = apply_plan(lm.model, s, plan)
    yield from maybe_reconstruct(lm.model, s, plan, model, data, cfg, cancel)
    ft = yield from tune(
        model, data, cfg.finetune, cfg.finetune.epochs, teacher_of(lm, cfg), cancel
    )
    if ft.get("cancelled"):
        raise Cancelled()
    top1 = yield from val_top1(model, data, cancel)
    rec = {
        "round": 1,
        "rounds": 1,
        "flops": predict(plan, s).flops,
        "params": predict(plan, s).params,
        "val_top1": top1,
        "base_flops": s.original.flops,
    }
    yield {"type": "round", **rec}
    return {
        "model": lm.derive(model, plan, "one-shot"),
        "cancelled": False,
        "history": {"pipeline": "oneshot", "rounds": [rec], "finetune": ft.get("history")},
    }


def round_targets(cfg: PipelineConfig) -> list[float]:
    """FLOPs share (of the original) each round ends at: geometric t^(r/k), linear
    1 - r(1-t)/k, or the explicit list."""
    k, t = cfg.rounds, cfg.flops_target
    if isinstance(cfg.schedule, list):
        return list(cfg.schedule)
    if cfg.schedule == "geometric":
        return [t ** (r / k) for r in range(1, k + 1)]
    return [1 - r * (1 - t) / k for r in range(1, k + 1)]


def iterative(lm, data, cfg: PipelineConfig, cancel) -> Events:
    """A cancel keeps the last finished round (the result says ``cancelled``)."""
    base_flops = _map(lm).original.flops
    targets = round_targets(cfg)
    teacher = teacher_of(lm, cfg)
    epochs = split_epochs(cfg.finetune.epochs, len(targets))
    cur, rounds, cancelled = lm, [], False
    try:
        for r, target in enumerate(targets, 1):
            s = _map(cur)
            scores = yield from scores_for(cur.model, s, cfg, data, cancel)
            plan = select(
                s,
                scores,
                flops_target=min(0.999, base_flops * target / s.original.flops),
                meta={"criterion": cfg.criterion, "round": r},
            )
            model = apply_plan(cur.model, s, plan)
            yield from maybe_reconstruct(cur.model, s, plan, model, data, cfg, cancel)
            yield progress(r, len(targets), f"round {r}: fine-tune {epochs[r - 1]} epochs")
            ft = yield from tune(model, data, cfg.finetune, epochs[r - 1], teacher, cancel)
            if ft.get("cancelled"):
                raise Cancelled()
            cur = cur.derive(model, plan, f"round {r}")
            top1 = yield from val_top1(model, data, cancel)
            rec = {
                "round": r,
                "rounds": len(targets),
                "flops": predict(plan, s).flops,
                "params": predict(plan, s).params,
                "val_top1": top1,
                "epochs": epochs[r - 1],
                "base_flops": base_flops,
            }
            rounds.append(rec)
            yield {"type": "round", **rec}
    except Cancelled:
        cancelled = True
        if not rounds:
            raise
    return {
        "model": cur,
        "cancelled": cancelled,
        "history": {"pipeline": "iterative", "rounds": rounds, "cancelled": cancelled},
    }
