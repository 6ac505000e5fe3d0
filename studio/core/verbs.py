"""The studio's main verbs as plain functions: map a loaded model, plan, prune, report.
The CLI calls these; the GUI will call the same."""

from __future__ import annotations

import time

from torch import nn

from studio.core.criteria import weights as crit
from studio.core.structure.counting import build_cost_table
from studio.core.train.data import loader
from studio.core.criteria.activations import DATA_CRITERIA, pass_size, score_data
from studio.core.errors import LoadError, StudioError
from studio.core.jobs import CancelToken, Events
from studio.core.model.loader import LoadedModel
from studio.core.plan.plan import Plan, predict, validate
from studio.core.plan.selection import select
from studio.core.structure.map import StructureMap
from studio.core.plan.surgery import apply_plan


def map_structure(lm: LoadedModel) -> StructureMap:
    """The structure map of a loaded model, or a one-line ``LoadError``."""
    try:
        return StructureMap(lm.model, lm.input_size, lm.arch)
    except StudioError:
        raise
    except Exception as e:  # tracing failures on exotic models
        raise LoadError(f"could not map the channel groups of {lm.name}: "
                        f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                        ) from e


ALL_CRITERIA = crit.CRITERIA + DATA_CRITERIA


def compute_scores(lm: LoadedModel, s: StructureMap, criterion: str, data=None, *,
                   batches: int = 8, batch_size: int = 64, device="cpu",
                   cancel: CancelToken | None = None, seed: int = 0) -> Events:
    """Scores of any criterion; data-driven ones need ``data`` (a DataSource) and yield
    progress per calibration batch."""
    if criterion in crit.CRITERIA:
        return crit.score(lm.model, s, criterion, seed=seed)
    if criterion not in DATA_CRITERIA:
        raise StudioError(f"unknown criterion '{criterion}' "
                          f"(choose from {', '.join(ALL_CRITERIA)})")
    if data is None:
        raise StudioError(f"criterion '{criterion}' is data-driven: give --data SOURCE")
    data.check_model(lm.model, lm.input_size)
    # Read the images a pass at a time: the same images in the same order as batches of
    # ``batch_size`` (one shuffled order), without holding a whole batch of large images.
    step = min(batch_size, pass_size(s, criterion, device))
    dl = loader(data.calibration, step, shuffle=True, seed=seed)
    return (yield from score_data(lm.model, s, criterion, dl,
                                  batches=-(-batches * batch_size // step), device=device,
                                  cancel=cancel, seed=seed, pass_images=step))


def auto_plan(lm: LoadedModel, s: StructureMap, criterion: str = crit.DEFAULT, *,
              ratio: float | None = None, flops_target: float | None = None,
              scope: str = "global", round_to: int = 1, protect=(), drop_blocks=(),
              seed: int = 0, scores=None) -> Plan:
    """Select to a ratio or FLOPs target by ``scores`` (computed with a parameter-driven
    ``criterion`` when not given)."""
    for b in drop_blocks:  # check blocks before spending time on scores
        if b not in s.block_index:
            raise StudioError(f"unknown residual block '{b}'")
    if scores is None:
        if criterion not in crit.CRITERIA:
            raise StudioError(f"criterion '{criterion}' is data-driven: compute its scores "
                              f"first (compute_scores)")
        scores = crit.score(lm.model, s, criterion, seed=seed)
    return select(s, scores, ratio=ratio, flops_target=flops_target, scope=scope,
                  round_to=round_to, protect=protect, drop_blocks=drop_blocks,
                  meta={"criterion": criterion, "seed": seed})


def prune(lm: LoadedModel, s: StructureMap, plan: Plan) -> tuple[nn.Module, dict]:
    """Physically prune a copy of ``lm.model``; returns it with its report."""
    t0 = time.perf_counter()
    pruned = apply_plan(lm.model, s, plan)
    report = build_report(lm, s, plan, pruned)
    report["surgery_seconds"] = round(time.perf_counter() - t0, 3)
    return pruned, report


def _change(before: int, after: int) -> float:
    return round(after / before, 6) if before else 1.0


def build_report(lm: LoadedModel, s: StructureMap, plan: Plan, pruned: nn.Module) -> dict:
    import torch

    validate(plan, s)
    table = build_cost_table(pruned, torch.zeros(1, *s.input_size))
    after = table.totals()
    before = s.original
    widths_after = {n: (int(table.cin[i]), int(table.cout[i]))
                    for i, n in enumerate(table.names)}
    layers = []
    for r in s.table.layer_rows():
        if r.kind not in ("conv", "linear"):
            continue
        a = widths_after.get(r.name)
        layers.append({"name": r.name, "type": r.type,
                       "before": [r.in_channels, r.out_channels],
                       "after": list(a) if a else None})
    return {
        "model": lm.name, "arch": lm.arch, "input_size": list(s.input_size),
        "before": before.as_dict(), "after": after.as_dict(),
        "predicted": predict(plan, s).as_dict(),
        "ratio": {k: _change(getattr(before, k), getattr(after, k))
                  for k in ("params", "flops", "macs")},
        "plan": {"groups_pruned": sum(1 for v in plan.groups.values() if v),
                 "channels_removed": plan.n_removed(), "blocks_dropped": plan.drop_blocks,
                 "meta": plan.meta},
        "layers": layers,
    }
