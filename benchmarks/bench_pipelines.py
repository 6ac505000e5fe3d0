"""The result that matters: the demo at 30% of the original FLOPs, every pipeline with the
same fine-tuning budget (10 epochs in total), three seeds, and Torch-Pruning's default
pruner as the outside reference. Top-1 is the last epoch's (no checkpoint chosen on the
validation split). ``--split N``: the same on another split of the digits (``demo:N``) with a
baseline trained on that split."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import demo_setup, machine, result_name, save

from bench_criteria import tp_to_target
from studio.core import map_structure
from studio.core.structure.counting import count_model
from studio.core.train.data import loader
from studio.core.train.evaluate import evaluate
from studio.core.train.finetune import FinetuneConfig, finetune
from studio.core.jobs import run
from studio.core.pipelines import PipelineConfig, run_pipeline

TARGET, EPOCHS, SEEDS = 0.3, 10, (0, 1, 2)
METHODS = {
    "one-shot (L1)": dict(pipeline="oneshot"),
    "iterative (3 rounds, L1)": dict(pipeline="iterative", rounds=3),
    "sampling (16 sub-models)": dict(pipeline="sampling", candidates=16),
    "search (evolution, 8 x 4)": dict(pipeline="search", candidates=8, generations=4),
    "sensitivity-guided": dict(pipeline="sensitivity"),
}
TP = "torch-pruning default (group L2, uniform)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", type=int, default=0)
    a = ap.parse_args()
    lm, data = demo_setup(a.split)
    s = map_structure(lm)
    val = loader(data.val, 512)
    rows = {name: [] for name in list(METHODS) + [TP]}
    for seed in SEEDS:
        ft = FinetuneConfig(
            epochs=EPOCHS, lr=0.05, label_smoothing=0.05, seed=seed, keep_best=False
        )
        for name, kw in METHODS.items():
            t0 = time.perf_counter()
            cfg = PipelineConfig(flops_target=TARGET, criterion="l1", seed=seed, finetune=ft, **kw)
            res = run(run_pipeline(lm, data, cfg))
            model = res["model"].model
            acc = run(evaluate(model, val))["top1"]
            flops = count_model(model, s.input_size).flops / s.original.flops
            rows[name].append(
                {"seed": seed, "top1": acc, "flops": flops, "seconds": time.perf_counter() - t0}
            )
            print(f"seed {seed} {name:28s} FLOPs {flops:.3f} top-1 {acc:.4f}", flush=True)
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        m = tp_to_target(lm, s, TARGET)
        run(finetune(m, data, ft))
        acc = run(evaluate(m, val))["top1"]
        flops = count_model(m, s.input_size).flops / s.original.flops
        rows[TP].append(
            {"seed": seed, "top1": acc, "flops": flops, "seconds": time.perf_counter() - t0}
        )
        print(f"seed {seed} {TP:28s} FLOPs {flops:.3f} top-1 {acc:.4f}", flush=True)
    base = run(evaluate(lm.model, val))["top1"]
    summary = []
    for name, rs in rows.items():
        accs = [r["top1"] for r in rs]
        summary.append(
            {
                "method": name,
                "mean_top1": statistics.mean(accs),
                "std_top1": statistics.pstdev(accs),
                "min_top1": min(accs),
                "flops": statistics.mean(r["flops"] for r in rs),
                "seconds": statistics.mean(r["seconds"] for r in rs),
                "runs": rs,
            }
        )
    save(
        result_name("pipelines", a.split),
        {
            "target": TARGET,
            "epochs": EPOCHS,
            "seeds": list(SEEDS),
            "split": a.split,
            "data": data.name,
            "base_top1": base,
            "rows": summary,
            **machine(),
        },
    )


if __name__ == "__main__":
    main()
