"""Every criterion on the demo, and Torch-Pruning's default pruner as the outside reference:
prune to 50% and 25% of the FLOPs, fine-tune with the same budget, same run.

Fine-tuning: 10 epochs, SGD lr 0.05, cosine, label smoothing 0.05, no distillation, seed 0;
top-1 is reported for the *last* epoch (no checkpoint picked on the validation split).

    python benchmarks/bench_criteria.py [--epochs 10] [--targets 0.5,0.25] [--split 0]

``--split N`` runs the same table on another split of the digits (``demo:N``) with a
baseline trained on that split (benchmarks/common.py).
"""

from __future__ import annotations

import argparse
import time

import torch

from common import demo_setup, machine, result_name, save

from studio.core import auto_plan, map_structure, prune
from studio.core.structure.counting import count_model
from studio.core.train.data import loader
from studio.core.criteria import DATA_CRITERIA
from studio.core.criteria import WEIGHT_CRITERIA as CRITERIA
from studio.core.structure.depgraph import tp_default_prune
from studio.core.train.evaluate import evaluate
from studio.core.train.finetune import FinetuneConfig, finetune
from studio.core.jobs import run
from studio.core.verbs import score

TP_NAME = "torch-pruning default (group L2, uniform)"


def tp_to_target(lm, s, target):
    """Bisection on Torch-Pruning's uniform ratio until the studio's FLOPs count <= target."""
    x = torch.zeros(1, *s.input_size)
    lo, hi, best = 0.0, 0.95, None
    for _ in range(12):
        r = (lo + hi) / 2
        m = tp_default_prune(lm.model, x, r, [s.classifier])
        if count_model(m, s.input_size).flops <= target * s.original.flops:
            best, hi = m, r
        else:
            lo = r
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--targets", default="0.5,0.25")
    ap.add_argument("--split", type=int, default=0)
    a = ap.parse_args()
    lm, data = demo_setup(a.split)
    s = map_structure(lm)
    val = loader(data.val, 512)
    base = run(evaluate(lm.model, val))
    rows = []
    for target in [float(t) for t in a.targets.split(",")]:
        for crit in CRITERIA + DATA_CRITERIA + (TP_NAME,):
            t0 = time.perf_counter()
            if crit == TP_NAME:
                model = tp_to_target(lm, s, target)
            else:
                scores = run(score(lm.model, s, crit, data, batches=8))
                model, _ = prune(lm, s, auto_plan(lm, s, crit, flops_target=target, scores=scores))
            t_prune = time.perf_counter() - t0
            cost = count_model(model, s.input_size)
            pre = run(evaluate(model, val))
            cfg = FinetuneConfig(
                epochs=a.epochs, lr=0.05, label_smoothing=0.05, seed=0, keep_best=False
            )
            res = run(finetune(model, data, cfg))
            post = run(evaluate(model, val))
            rows.append(
                {
                    "target": target,
                    "criterion": crit,
                    "flops_ratio": cost.flops / s.original.flops,
                    "params_ratio": cost.params / s.original.params,
                    "top1_pruned": pre["top1"],
                    "top1_finetuned": post["top1"],
                    "top5_finetuned": post["top5"],
                    "best_epoch_top1": max(h["val_top1"] for h in res["history"]),
                    "prune_s": t_prune,
                    "finetune_s": res["seconds"],
                }
            )
            print(
                f"{target:.2f} {crit:42s} FLOPs {rows[-1]['flops_ratio']:.3f} "
                f"pruned {pre['top1']:.4f} -> fine-tuned {post['top1']:.4f}",
                flush=True,
            )
    save(
        result_name("criteria", a.split),
        {
            "base_top1": base["top1"],
            "base_top5": base["top5"],
            "split": a.split,
            "data": data.name,
            "epochs": a.epochs,
            "rows": rows,
            **machine(),
        },
    )


if __name__ == "__main__":
    main()
