"""Sensitivity analysis time: the demo (its digits) and ResNet-18 (3x64x64, synthetic data:
the cost does not depend on the pixels), 9 ratios per group. Baseline on the demo: the
naive way -- physical surgery on a copy and a fresh evaluator copy for every point."""

from __future__ import annotations

import time

import numpy as np
import torch

from common import machine, save

from studio.core import load_model, map_structure
from studio.core.criteria.weights import score
from studio.core.train.data import load_data
from studio.core.jobs import run
from studio.core.pipelines.common import Evaluator
from studio.core.pipelines.config import PipelineConfig
from studio.core.pipelines.sensitivity import sensitivity
from studio.core.plan.plan import Plan
from studio.core.plan.surgery import apply_plan


def naive(lm, data, cfg) -> float:
    s = map_structure(lm)
    sc = score(lm.model, s, cfg.criterion)
    ev = Evaluator(data, cfg.model_copy(update={"bn_batches": cfg.sensitivity_bn_batches}))
    t0 = time.perf_counter()
    for g in [g for g in s.groups if g.prunable]:
        order = np.argsort(sc[g.id].group, kind="stable")
        for r in cfg.ratios:
            p = Plan.empty(s)
            n = min(g.channels - 1, int(round(r * g.channels)))
            p.set_removed(
                g.id, s.orbit_closure(g.id, order[:n]) if g.channel_groups > 1 else order[:n]
            )
            ev(apply_plan(lm.model, s, p, check=False))
    return time.perf_counter() - t0


def main():
    torch.set_num_threads(2)
    res = {}
    lm, data = load_model("demo"), load_data("demo")
    cfg = PipelineConfig()
    t0 = time.perf_counter()
    out = run(sensitivity(lm, data, cfg))
    res["demo"] = {
        "seconds": time.perf_counter() - t0,
        "evaluations": out["evaluations"],
        "groups": len(out["curves"]),
        "naive_seconds": naive(lm, data, cfg),
    }
    res["demo"]["speedup_vs_naive"] = res["demo"]["naive_seconds"] / res["demo"]["seconds"]
    print(res["demo"], flush=True)
    lm = load_model("resnet18", input_size=(3, 64, 64))
    data = load_data("synthetic", (3, 64, 64), num_classes=1000)
    data.train = torch.utils.data.TensorDataset(
        torch.randn(1024, 3, 64, 64), torch.randint(0, 1000, (1024,))
    )
    cfg = PipelineConfig(sensitivity_bn_batches=2, holdout_fraction=0.125)
    t0 = time.perf_counter()
    out = run(sensitivity(lm, data, cfg))
    res["resnet18"] = {
        "seconds": time.perf_counter() - t0,
        "evaluations": out["evaluations"],
        "groups": len(out["curves"]),
        "input": "3x64x64, synthetic",
        "bn_batches": 2,
        "heldout_images": 128,
    }
    print(res["resnet18"], flush=True)
    save("sensitivity", {**res, **machine()})


if __name__ == "__main__":
    main()
