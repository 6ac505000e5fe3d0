"""How fast the studio re-counts an edited plan, next to recounting the edited model.

Baselines, measured in the same run on the same edit of ResNet-50 (224x224):
- fvcore: apply the edit (surgery) then a full FlopCountAnalysis of the pruned model;
- Torch-Pruning: its ``count_ops_and_params`` on the pruned model.
The studio counts the plan from its precomputed per-layer table: no model, no copy.
Writes ``benchmarks/results/counting.json`` and the table in ``docs/benchmarks.md``.

    python benchmarks/bench_counting.py [--arch resnet50] [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.core import auto_plan, load_model, map_structure, predict  # noqa: E402
from studio.core.structure.depgraph import tp_count  # noqa: E402
from studio.core.structure.fvcore_count import fvcore_macs  # noqa: E402
from studio.core.plan.surgery import apply_plan  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(2)
    lm = load_model(a.arch)
    t_map, s = timed(lambda: map_structure(lm), 3)
    t_select, plan = timed(lambda: auto_plan(lm, s, "l1", flops_target=0.5), 5)

    # "One edit": the user clicks four more channels of one group for removal.
    g = next(g for g in s.groups if g.prunable and len(plan.removed(g.id)) + 4 < g.channels)
    edited = plan.copy()
    free = [c for c in range(g.channels) if c not in set(plan.removed(g.id))]
    edited.set_removed(g.id, plan.removed(g.id) + free[:4])

    t_plan, studio_totals = timed(lambda: predict(edited, s), a.repeats)
    t_surgery, pruned = timed(lambda: apply_plan(lm.model, s, edited, check=False), 3)
    x = torch.zeros(1, *s.input_size)
    t_fv, fv = timed(lambda: fvcore_macs(pruned, s.input_size), 3)
    t_tp, (tp_macs, tp_params) = timed(lambda: tp_count(pruned, x), 3)

    res = {
        "arch": a.arch,
        "input_size": list(s.input_size),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "groups": len(s.groups),
        "channels": sum(g.channels for g in s.groups),
        "structure_map_s": t_map,
        "select_flops_target_s": t_select,
        "plan_recount_ms": t_plan * 1e3,
        "surgery_s": t_surgery,
        "fvcore_recount_s": t_fv,
        "fvcore_total_with_surgery_s": t_fv + t_surgery,
        "tp_recount_s": t_tp,
        "tp_total_with_surgery_s": t_tp + t_surgery,
        "speedup_vs_fvcore": (t_fv + t_surgery) / t_plan,
        "speedup_vs_tp": (t_tp + t_surgery) / t_plan,
        "studio_macs": studio_totals.macs,
        "fvcore_macs": fv,
        "tp_macs": tp_macs,
        "studio_params": studio_totals.params,
        "tp_params": tp_params,
    }
    out = ROOT / "benchmarks" / "results" / "counting.json"
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
