"""Every criterion and pipeline on the harder built-in task (``clutter``: the digits on a
32x32 canvas among clutter and noise, wide ResNet-20), at 25% and 15% of the FLOPs, with the
same fine-tuning budget, over seeds -- the table that tells methods apart.

Per seed and target: every criterion one-shot (scores computed once per seed), L1 and LASSO
also with least-squares reconstruction of the consumers before fine-tuning, Torch-Pruning's
default pruner, and every pipeline. Top-1 before fine-tuning and after (last epoch, no
checkpoint picked on the validation split).

    python benchmarks/bench_methods.py [--seeds 0,1,2,3,4] [--targets 0.25,0.15] [--epochs 2]

Each invocation writes ``results/methods_seeds<S>_targets<T>.json``; render_docs merges them
(``make bench`` runs the two targets as two lanes side by side). ``--only "A;B"`` re-runs some
methods into ``..._rerun.json``, whose rows replace those methods' rows when merged.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import machine, save

from bench_criteria import tp_to_target
from studio.core import auto_plan, load_model, map_structure, prune
from studio.core.criteria import ALL as CRITERIA
from studio.core.jobs import run
from studio.core.pipelines import PipelineConfig, run_pipeline
from studio.core.structure.counting import count_model
from studio.core.train.data import load_data, loader
from studio.core.train.evaluate import evaluate
from studio.core.train.finetune import FinetuneConfig, finetune
from studio.core.verbs import reconstruct, score

EPOCHS = 2  # fine-tuning epochs for every method (short: where the starting point shows)
TP = "torch-pruning default (group L2, uniform)"
RECONSTRUCTED = {"l1 + reconstruction": "l1", "lasso + reconstruction (He et al.)": "lasso"}
PIPELINES = {
    "iterative (2 rounds, L1)": dict(pipeline="iterative", rounds=2),
    "sampling (12 sub-models)": dict(pipeline="sampling", candidates=12),
    "search (evolution, 8 x 3)": dict(pipeline="search", candidates=8, generations=3),
    "sensitivity-guided": dict(pipeline="sensitivity", ratios=(0.25, 0.5, 0.75)),
    "ABCPruner (6 sources x 3 cycles)": dict(pipeline="abc", candidates=6, generations=3),
    "AMC (24 episodes)": dict(pipeline="amc", episodes=24),
    "MetaPruning (1 epoch, 8 x 3)": dict(
        pipeline="metapruning", candidates=8, generations=3, meta_epochs=1
    ),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--targets", default="0.25,0.15")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--only", default="", help="method names separated by ';' (a quick look)")
    a = ap.parse_args()
    seeds = [int(x) for x in a.seeds.split(",")]
    targets = [float(x) for x in a.targets.split(",")]
    only = set(filter(None, a.only.split(";")))
    lm, data = load_model("clutter"), load_data("clutter")
    s = map_structure(lm)
    val = loader(data.val, 512)
    base = run(evaluate(lm.model, val))["top1"]
    runs = []

    def record(name, seed, target, model, pre, t0, **extra):
        top1 = run(evaluate(model, val))["top1"]
        flops = count_model(model, s.input_size).flops / s.original.flops
        runs.append(
            {
                "method": name,
                "seed": seed,
                "target": target,
                "top1": top1,
                "top1_pruned": pre,
                "flops": flops,
                "seconds": time.perf_counter() - t0,
                **extra,
            }
        )
        pre_s = f"{pre:.4f}" if pre is not None else "   -  "
        print(
            f"seed {seed} {target:.2f} {name:40s} FLOPs {flops:.3f} pruned {pre_s} -> {top1:.4f}",
            flush=True,
        )

    want = lambda name: not only or name in only  # noqa: E731
    for seed in seeds:
        ft = FinetuneConfig(
            epochs=a.epochs, lr=0.05, label_smoothing=0.05, seed=seed, keep_best=False
        )
        scores, score_s = {}, {}
        for crit in CRITERIA:
            if want(crit) or any(c == crit and want(n) for n, c in RECONSTRUCTED.items()):
                t0 = time.perf_counter()
                scores[crit] = run(score(lm.model, s, crit, data, batches=8, seed=seed))
                score_s[crit] = time.perf_counter() - t0
        for target in targets:
            oneshot = [(c, c, False) for c in CRITERIA if want(c)]
            oneshot += [(n, c, True) for n, c in RECONSTRUCTED.items() if want(n)]
            for name, crit, refit in oneshot:
                t0 = time.perf_counter() - score_s[crit]
                plan = auto_plan(lm, s, crit, flops_target=target, scores=scores[crit])
                model, _ = prune(lm, s, plan)
                pre = run(evaluate(model, val))["top1"]
                if refit:
                    run(reconstruct(lm, s, plan, model, data, seed=seed))
                    pre = run(evaluate(model, val))["top1"]
                run(finetune(model, data, ft))
                record(name, seed, target, model, pre, t0)
            if want(TP):
                t0 = time.perf_counter()
                torch.manual_seed(seed)
                model = tp_to_target(lm, s, target)
                pre = run(evaluate(model, val))["top1"]
                run(finetune(model, data, ft))
                record(TP, seed, target, model, pre, t0)
            for name, kw in PIPELINES.items():
                if not want(name):
                    continue
                t0 = time.perf_counter()
                cfg = PipelineConfig(
                    flops_target=target, criterion="l1", seed=seed, finetune=ft, **kw
                )
                res = run(run_pipeline(lm, data, cfg))
                chosen = res["history"].get("chosen", {})
                record(
                    name,
                    seed,
                    target,
                    res["model"].model,
                    None,
                    t0,
                    heldout_top1=chosen.get("heldout_top1"),
                    candidates=len(res["history"].get("candidates", [])),
                )
    save(
        "methods_seeds"
        + "".join(map(str, seeds))
        + "_targets"
        + "-".join(f"{t:g}" for t in targets)
        + ("_rerun" if only else ""),
        {
            "task": data.name,
            "model": lm.name,
            "base_top1": base,
            "base_flops": s.original.flops,
            "val_images": len(data.val),
            "epochs": a.epochs,
            "targets": targets,
            "seeds": seeds,
            "runs": runs,
            **machine(),
        },
    )


if __name__ == "__main__":
    main()
