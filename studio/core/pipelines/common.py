"""What the pipelines share: scores, the cheap evaluator, keep-ratio plans projected onto a
FLOPs target, fine-tuning in rounds.

The cheap evaluator never reads the validation split: each candidate inherits the
criterion's channels, its BatchNorm statistics are re-estimated on a few training batches,
and it is scored on a held-out part of the *training* data.
"""

from __future__ import annotations

import copy

import numpy as np
from torch import nn

from studio.core import criteria
from studio.core.jobs import CancelToken, Events
from studio.core.model.loaded import LoadedModel
from studio.core.pipelines.config import PipelineConfig
from studio.core.plan.plan import Plan, predict
from studio.core.plan.selection import lowest_channels
from studio.core.structure.map import StructureMap
from studio.core.train.data import DataSource, loader
from studio.core.train.evaluate import evaluate
from studio.core.train.finetune import FinetuneConfig, finetune, recalibrate_bn


def scores_for(
    model: nn.Module,
    s: StructureMap,
    cfg: PipelineConfig,
    data: DataSource | None,
    cancel: CancelToken | None,
) -> Events:
    """The pipeline's criterion scores (``criteria.score``, the one scoring path)."""
    return (
        yield from criteria.score(
            model, s, cfg.criterion, data, batches=cfg.score_batches, seed=cfg.seed, cancel=cancel
        )
    )


class Evaluator:
    """Inherit weights, recalibrate BN on training batches, score on held-out training data."""

    def __init__(self, data: DataSource, cfg: PipelineConfig, bn_batches: int | None = None):
        _fit, held = data.holdout(cfg.holdout_fraction, seed=cfg.seed)
        self.held_indices = set(held.indices)  # for tests: never the validation split
        # Materialise the few batches once: every candidate reuses the same tensors.
        calib = loader(data.calibration, 64, shuffle=True, seed=cfg.seed + 1)
        self.calib = [b for _, b in zip(range(bn_batches or cfg.bn_batches), calib)]
        held_dl = loader(held, 256)
        n = cfg.eval_batches or len(held_dl)
        self.held = [b for _, b in zip(range(n), held_dl)]
        self.calls = 0

    def __call__(self, model: nn.Module, cancel=None, inplace: bool = False) -> float:
        """Held-out top-1 of ``model`` after BN re-estimation (on a copy unless
        ``inplace``: the caller then restores the BN statistics itself)."""
        from studio.core.jobs import run

        self.calls += 1
        m = model if inplace else copy.deepcopy(model)
        recalibrate_bn(m, self.calib, len(self.calib), cancel=cancel)
        return run(evaluate(m, self.held, cancel=cancel))["top1"]


def plan_from_keep(s: StructureMap, scores, keep: dict[str, float], base: Plan) -> Plan:
    """Remove the lowest-scored channels so each group keeps ``keep[g]`` of them."""
    p = base.copy()
    for gid, k in keep.items():
        g = s.group_index[gid]
        n = g.units
        remove = min(n - 1, max(0, int(round(n * (1 - k)))))
        p.set_removed(gid, lowest_channels(s, gid, scores[gid].group, remove))
    return p


def project_to_target(
    s: StructureMap, scores, shape: dict[str, float], target_flops: float, base: Plan
) -> Plan:
    """Scale a per-group keep-ratio *shape* until the plan's FLOPs meet ``target_flops``:
    keep_g = min(1, t * shape_g), t found by bisection (FLOPs grow with t)."""
    lo, hi = 0.0, 1.0 / max(min(shape.values()), 1e-6)
    best = plan_from_keep(s, scores, {g: min(1.0, lo * v) for g, v in shape.items()}, base)
    if predict(best, s).flops > target_flops:
        return best  # cannot go lower: the caller sees the FLOPs
    for _ in range(30):
        mid = (lo + hi) / 2
        p = plan_from_keep(s, scores, {g: min(1.0, mid * v) for g, v in shape.items()}, base)
        if predict(p, s).flops <= target_flops:
            best, lo = p, mid
        else:
            hi = mid
    return best


def maybe_reconstruct(original, s, plan, model, data, cfg: PipelineConfig, cancel) -> Events:
    """With ``cfg.reconstruct``: refit ``model``'s consumers of pruned channels by least
    squares so their outputs match ``original``'s (calibration images only)."""
    if not cfg.reconstruct:
        return None
    from studio.core.plan.reconstruct import IMAGES, reconstruct

    x = next(iter(loader(data.calibration, IMAGES, shuffle=True, seed=cfg.seed)))[0]
    return (yield from reconstruct(original, model, s, plan, x, seed=cfg.seed, cancel=cancel))


def prunable(s: StructureMap) -> list[str]:
    return [g.id for g in s.groups if g.prunable]


def tune(model, data, cfg: FinetuneConfig, epochs: int, teacher, cancel) -> Events:
    """Fine-tune ``model`` in place for ``epochs`` (none: nothing to do)."""
    if epochs <= 0:
        return {"best": {}, "history": [], "cancelled": False}
    c = cfg.model_copy(update={"epochs": epochs})
    return (yield from finetune(model, data, c, teacher=teacher, cancel=cancel))


def val_top1(model, data, cancel) -> Events:
    return (yield from evaluate(model, loader(data.val, 256), cancel=cancel))["top1"]


def teacher_of(lm: LoadedModel, cfg: PipelineConfig):
    return lm.model if cfg.finetune.kd_weight > 0 else None


def split_epochs(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i >= parts - extra else 0) for i in range(parts)]


def rng_for(cfg: PipelineConfig) -> np.random.Generator:
    return np.random.default_rng(cfg.seed)
