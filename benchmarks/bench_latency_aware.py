"""Latency-aware allocation against the FLOPs-only scopes, at the same FLOPs target.

resnet50, resnet18 and mobilenet_v2 (224x224) pruned to 50% of their FLOPs four ways, L1
channel choice, channel counts multiples of 16: ``uniform`` and ``global`` (FLOPs only) and
``latency`` with the layer table measured at batch 1 and at batch 16 (``--scope latency
--latency-batch B``; no group loses more than half its channels). The tables are measured
from empty in a fresh folder, so "selection s" is the whole cost of a first run on this
machine (a second run reads the table).

Every variant and the dense model are timed in two runtimes, each with the same treatment
for all (``evaluate --latency --runtime``, ``export.deploy.timing_calls``): PyTorch under the
deploy treatment of ``export --deploy`` (BatchNorm folded; the memory format chosen on the
dense model, used for all), and onnxruntime (BatchNorm folded, exported to ONNX, all graph
optimisations, threads not spinning between calls). Each plan is timed against the dense
model the way ``evaluate --latency --runtime R`` does it (``compare_latency``: the two in
turn, ``--rounds`` rounds per batch size, the speed-up the median of the per-round ratios,
so that a slow spell of this shared machine hits both). Batch 1 and 16. Realisation =
speed-up x FLOPs kept.
Random initial weights: latency does not depend on them (the plans do, a little, through
the L1 ranking). Writes ``benchmarks/results/latency_aware.json``.

    python benchmarks/bench_latency_aware.py [--archs resnet50,...] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from common import machine, save

from studio.core import auto_plan, load_model, map_structure
from studio.core.train.evaluate import compare_latency
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
    models, rows = {"dense": lm.model.eval()}, {}
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
        models[name] = m
        print(f"{arch} {name}: FLOPs {rows[name]['flops_ratio']:.3f}, {took:.1f} s", flush=True)
    rows["dense"] = {"flops_ratio": 1.0}
    treatment = {}
    for runtime, prefix in (("deploy", ""), ("onnxruntime", "ort_")):
        for name, m in models.items():
            if name == "dense":
                continue
            row = rows[name]
            # what `evaluate --latency --runtime` does: the dense model and this one under
            # the same treatment, timed in turn, median of the per-round speed-ups
            r = compare_latency(
                models["dense"], m, size, row["flops_ratio"], batch_sizes=(1, 16),
                rounds=rounds, runtime=runtime,
            )  # fmt: skip
            treatment[runtime] = r["treatment"]
            for b in ("1", "16"):
                row[f"{prefix}b{b}_ms"] = r["pruned"]["batch"][b]["median_ms"]
                row[f"{prefix}b{b}_speedup"] = r["speedup"][b]
                row[f"{prefix}b{b}_speedup_iqr"] = r["speedup_iqr"][b]
                row[f"{prefix}b{b}_realisation"] = r["realisation"][b]
                rows["dense"].setdefault(f"{prefix}b{b}_ms", r["original"]["batch"][b]["median_ms"])
            row[f"{prefix}warnings"] = r["warnings"]
            row[f"{prefix}treatment"] = r["treatment"]  # the memory format, per comparison
            print(
                f"{arch} {name} {runtime}: R b1 {r['realisation']['1']:.2f} "
                f"b16 {r['realisation']['16']:.2f}",
                flush=True,
            )
    return {
        "arch": arch,
        "channels_last": treatment["deploy"]["channels_last"],
        "onnxruntime": treatment["onnxruntime"]["onnxruntime"],
        "variants": rows,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--rounds", type=int, default=15)
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
                    f"{arch:13s} {k:12s} FLOPs {v['flops_ratio']:.3f}  deploy "
                    f"b1 R {v['b1_realisation']:.2f} b16 R {v['b16_realisation']:.2f}  "
                    f"onnxruntime b1 R {v['ort_b1_realisation']:.2f} "
                    f"b16 R {v['ort_b16_realisation']:.2f}",
                    flush=True,
                )
    save(
        "latency_aware",
        {"target": TARGET, "rounds": a.rounds, "threads": torch.get_num_threads(), "rows": res}
        | machine(),
    )


if __name__ == "__main__":
    main()
