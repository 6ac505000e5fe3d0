"""The pruning pipelines of the literature, as generators of progress events (one module
each): one-shot and iterative prune -> fine-tune (``iterative``), sub-model sampling and
evolutionary search (``candidates``), sensitivity analysis (``sensitivity``), ABCPruner's bee
colony (``beecolony``), AMC's reinforcement-learning agent (``amc``) and MetaPruning's
weight-generating PruningNet (``metapruning``). Each returns
``{"model": LoadedModel, "history": {...}, "cancelled": bool}``; the history (rounds,
candidates, curves, the chosen one) is JSON-ready."""

from __future__ import annotations

import time

from studio.core.jobs import CancelToken, Events
from studio.core.pipelines.config import PIPELINES, PipelineConfig


def _runner(name: str):
    from studio.core.pipelines import (
        amc,
        beecolony,
        candidates,
        iterative,
        metapruning,
        sensitivity,
    )

    return {
        "abc": beecolony.abc,
        "amc": amc.amc,
        "metapruning": metapruning.metapruning,
        "oneshot": iterative.oneshot,
        "iterative": iterative.iterative,
        "sampling": candidates.sampling,
        "search": candidates.search,
        "sensitivity": sensitivity.guided,
    }[name]


def run_pipeline(lm, data, cfg: PipelineConfig, cancel: CancelToken | None = None) -> Events:
    """Run ``cfg.pipeline`` on ``lm`` (never changed: results are derived copies)."""
    import torch

    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    out = yield from _runner(cfg.pipeline)(lm, data, cfg, cancel)
    out["history"]["seconds"] = time.perf_counter() - t0
    out["history"]["config"] = cfg.as_dict()
    return out


__all__ = ["PIPELINES", "PipelineConfig", "run_pipeline"]
