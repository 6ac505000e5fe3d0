"""Latency-aware allocation against the FLOPs-only scopes, at the same FLOPs target.

resnet50, resnet18 and mobilenet_v2 (224x224) pruned to 50% of their FLOPs four ways, L1
channel choice, channel counts multiples of 16: ``uniform`` and ``global`` (FLOPs only) and
``latency`` with the layer table measured at batch 1 and at batch 16 (``--scope latency
--latency-batch B``; no group loses more than half its channels). The tables are measured
from empty in a fresh folder, so "selection s" is the whole cost of a first run on this
machine (a second run reads the table).

Every variant and the dense model get the deploy treatment of ``export --deploy``
(BatchNorm folded; the memory format chosen on the dense model, used for all) and are
timed at batch 1 and 16, interleaved rounds, median. Realisation = speed-up x FLOPs kept.
Random initial weights: latency does not depend on them (the plans do, a little, through
the L1 ranking). Writes ``benchmarks/results/latency_aware.json``.

    python benchmarks/bench_latency_aware.py [--archs resnet50,...] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from common import machine, save

from bench_realisation import interleaved
from studio.core import auto_plan, load_model, map_structure
from studio.core.export.deploy import deploy_model, run_input
from studio.core.plan.surgery import apply_plan
from studio.core.structure.counting import count_model

ARCHS = ("resnet50", "resnet18", "mobilenet_v2")
TARGET = 0.5
VARIANTS = {  # name -> auto_plan keywords
    "uniform": dict(scope="uniform", round_to=16),
    "global": dict(scope="global", round_to=16),
    "latency b1": dict(scope="latency", round_to=16, latency_batch=1),
    "latency b16": dict(scope="latency", round_to=16, latency_batch=16),
}


def bench_arch(arch: str, rounds: int) -> dict:
    lm = load_model(arch)
    s = map_structure(lm)
    size = s.input_size
    dense, dep = deploy_model(lm.model.eval(), size, channels_last="auto")
    fmt = "on" if dep["channels_last"] else "off"
    models, rows = {"dense": dense}, {}
    for name, kw in VARIANTS.items():
        t0 = time.perf_counter()
        plan = auto_plan(lm, s, "l1", flops_target=TARGET, **kw)
        took = time.perf_counter() - t0
        m = apply_plan(lm.model, s, plan).eval()
        cost = count_model(m, size)
        lat = plan.meta.get("latency", {})
        rows[name] = {
            "flops_ratio": cost.flops / s.original.flops,
            "params_ratio": cost.params / s.original.params,
            "selection_s": took,
            "predicted_ratio": lat["predicted_ms"] / lat["dense_ms"] if lat else None,
            "widths_measured": lat.get("measured"),
            "whole": lat.get("whole"),  # the scope's own check against the uniform plan
        }
        models[name] = deploy_model(m, size, channels_last=fmt)[0]
        print(f"{arch} {name}: FLOPs {rows[name]['flops_ratio']:.3f}, {took:.1f} s", flush=True)
    calls = {k: (lambda x, m=m: m(run_input(dep, x))) for k, m in models.items()}
    for batch in (1, 16):
        t = interleaved(
            calls, size, batch, rounds if batch > 1 else 2 * rounds, 5 if batch == 1 else 1
        )
        for name, row in rows.items():
            sp = t["dense"] / t[name]
            row[f"b{batch}_ms"] = t[name]
            row[f"b{batch}_speedup"] = sp
            row[f"b{batch}_realisation"] = sp * row["flops_ratio"]
        rows.setdefault("dense", {"flops_ratio": 1.0})[f"b{batch}_ms"] = t["dense"]
    return {"arch": arch, "channels_last": dep["channels_last"], "variants": rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    res = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PRUNING_STUDIO_CACHE"] = tmp  # tables measured from empty
        for arch in a.archs.split(","):
            r = bench_arch(arch, a.rounds)
            res.append(r)
            for k, v in r["variants"].items():
                if k == "dense":
                    continue
                print(
                    f"{arch:13s} {k:12s} FLOPs {v['flops_ratio']:.3f}  "
                    f"b1 x{v['b1_speedup']:.2f} (R {v['b1_realisation']:.2f})  "
                    f"b16 x{v['b16_speedup']:.2f} (R {v['b16_realisation']:.2f})",
                    flush=True,
                )
    save(
        "latency_aware",
        {"target": TARGET, "rounds": a.rounds, "threads": torch.get_num_threads(), "rows": res}
        | machine(),
    )


if __name__ == "__main__":
    main()
