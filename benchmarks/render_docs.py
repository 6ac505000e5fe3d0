"""Regenerate docs/benchmarks.md from the JSON results in benchmarks/results/."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _counting(r: dict) -> str:
    return f"""## Counting an edited plan ({r['arch']}, {'x'.join(map(str, r['input_size']))})

The GUI re-counts the plan on every click. The studio reads a per-layer table built once
when the model is mapped; the baselines must first apply the edit to a copy of the model
(surgery) and then count the pruned model. Same edit, same run, median of repeats,
{r['threads']} CPU threads ({r['machine']}). {r['groups']} channel groups, {r['channels']:,}
channels.

| step | time | ratio vs studio |
|---|---:|---:|
| studio: re-count the edited plan | {r['plan_recount_ms']:.2f} ms | 1 |
| fvcore: surgery + FlopCountAnalysis | {r['fvcore_total_with_surgery_s'] * 1e3:.0f} ms | {r['speedup_vs_fvcore']:.0f}x slower |
| Torch-Pruning: surgery + count_ops_and_params | {r['tp_total_with_surgery_s'] * 1e3:.0f} ms | {r['speedup_vs_tp']:.0f}x slower |
| (of which surgery alone) | {r['surgery_s'] * 1e3:.0f} ms | |
| map the model once (groups, blocks, cost table) | {r['structure_map_s'] * 1e3:.0f} ms | |
| auto-select to 50% FLOPs (L1, global) | {r['select_flops_target_s'] * 1e3:.0f} ms | |

The three counters agree on the pruned model: studio {r['studio_macs']:,} MACs, fvcore
{r['fvcore_macs']:,} (it also counts BatchNorm as 2 per element and the pooling),
Torch-Pruning {r['tp_macs']:,}; params studio {r['studio_params']:,}, Torch-Pruning
{r['tp_params']:,}.
"""


def _criteria(r: dict) -> str:
    rows = r["rows"]
    out = [f"""## Criteria on the demo (ResNet-20, digits), pruned then fine-tuned

Unpruned: top-1 {r['base_top1']:.4f}. Every method prunes to the FLOPs target, then gets the
same fine-tuning ({r['epochs']} epochs, SGD, cosine, label smoothing 0.05, seed 0, no
distillation); top-1 is the *last* epoch's on the 359 validation images (no checkpoint is
chosen on them; "best epoch" is shown for reference only). Data-driven criteria use 8
calibration batches of the training split. Torch-Pruning's default pruner is the outside
reference: its uniform ratio is bisected until the studio counts the same FLOPs target.
"""]
    for target in sorted({x["target"] for x in rows}, reverse=True):
        out.append(f"### {target:.0%} of the FLOPs\n")
        out.append("| criterion | FLOPs | params | top-1 pruned | top-1 fine-tuned | change "
                   "| best epoch |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for x in [x for x in rows if x["target"] == target]:
            out.append(f"| {x['criterion']} | {x['flops_ratio']:.3f} | {x['params_ratio']:.3f} "
                       f"| {x['top1_pruned']:.4f} | **{x['top1_finetuned']:.4f}** | "
                       f"{x['top1_finetuned'] - r['base_top1']:+.4f} | "
                       f"{x['best_epoch_top1']:.4f} |")
        out.append("")
    out.append("One validation image is 0.28 points: on this small set most differences "
               "between criteria are within noise. Every criterion stays within 1 point of "
               "the unpruned model at 50% of the FLOPs and within 3 points at 25%.\n")
    return "\n".join(out)


def _scoring(r: dict) -> str:
    lines = [f"""## Cost of the data-driven criteria ({r['model']}, {r['images']} images, batch {r['batch']})

One pass with forward hooks collects every layer's statistics; the ratio is against a plain
forward over the same batches, measured next to it (goal for APoZ / mean activation: at
most 1.3x). HRank pays for one batched SVD per feature map, Taylor for a backward pass.

| criterion | seconds | vs plain forward |
|---|---:|---:|"""]
    for c, v in r["criteria"].items():
        lines.append(f"| {c} | {v['seconds']:.2f} | {v['ratio']:.2f}x |")
    lines.append(f"| plain forward | {r['plain_forward_s']:.2f} | 1 |\n")
    return "\n".join(lines)


def _finetune(r: dict) -> str:
    return f"""## Fine-tuning loop overhead ({r['model']}, batch {r['batch']})

Training images/s of the studio's loop (events, LR schedule, metrics) against a bare
PyTorch loop with the same model, data, batch size and optimizer, alternating in one run:
studio {r['studio_images_per_s']:.0f} img/s, bare {r['bare_images_per_s']:.0f} img/s,
**ratio {r['ratio']:.2f}** (goal >= 0.95).
"""


def _gui(r: dict) -> str:
    f, lag, cs = r["refresh"], r["lag"], r["cold_start"]
    return f"""## Window responsiveness (offscreen Qt, same run)

| measurement | result | goal / baseline |
|---|---:|---|
| one heatmap click on ResNet-50 ({f['groups']} groups, {f['channels']:,} channels) → every view refreshed, median | {f['edit_refresh_ms_median']:.1f} ms | ≤ 50 ms |
| same, p95 | {f['edit_refresh_ms_p95']:.1f} ms | ≤ 50 ms |
| of which the plan re-count (core) | {f['plan_recount_ms_median']:.2f} ms | |
| FLOPs-target slider step on ResNet-50 (global selection + refresh), median | {f['slider_select_and_refresh_ms_median']:.1f} ms | |
| event-loop lag while fine-tuning the demo in the window, p50 / p95 / max | {lag['finetuning']['p50_ms']} / {lag['finetuning']['p95_ms']} / {lag['finetuning']['max_ms']} ms | p95 ≤ 100 ms |
| event-loop lag with no job, p50 / p95 | {lag['idle']['p50_ms']} / {lag['idle']['p95_ms']} ms | |
| fine-tuning images/s in the window's worker vs the core loop alone (same threads) | {r['window_vs_core']:.2f} | |
| cold start to first paint | {cs['first_paint_s']:.2f} s | `import torch, torchvision`: {cs['import_torch_s']:.2f} s |

The window's worker uses all cores but one (the GUI keeps a core), which is why fine-tuning
in the window runs at {r['window_vs_core']:.2f}× the images/s of the core loop measured
alone; the benchmark's own 1 ms event polling also takes its share. What made the refresh
fast: the structure table builds its display strings once per edit and answers Qt's
per-cell calls with one dict lookup; pyqtgraph axes are drawn from a pixmap cache
(their text rendering was 60% of a refresh); planned widths are cached per edit.
"""


def _pipelines(r: dict) -> str:
    rows = sorted(r["rows"], key=lambda x: -x["mean_top1"])
    lines = [f"""## Pipelines on the demo at {r['target']:.0%} of the FLOPs

Same fine-tuning budget for every method ({r['epochs']} epochs in total: the iterative
pipeline splits them over its rounds; sampling and search fine-tune their winner), L1
channel choice, seeds {', '.join(map(str, r['seeds']))}; top-1 of the last epoch on the 359
validation images, mean ± standard deviation over the seeds. Unpruned: {r['base_top1']:.4f}.
Torch-Pruning's default pruner is the outside reference (its uniform ratio bisected to the
same target; its granularity leaves it somewhat below the target, i.e. smaller).

| method | FLOPs | top-1 mean | ± | worst seed | seconds per run |
|---|---:|---:|---:|---:|---:|"""]
    for x in rows:
        lines.append(f"| {x['method']} | {x['flops']:.3f} | **{x['mean_top1']:.4f}** | "
                     f"{x['std_top1']:.4f} | {x['min_top1']:.4f} | {x['seconds']:.0f} |")
    best = rows[0]
    ref = next(x for x in rows if x["method"].startswith("torch-pruning"))
    one = next(x for x in rows if x["method"].startswith("one-shot"))
    noise = max(x["std_top1"] for x in rows)
    gap_one = best["mean_top1"] - one["mean_top1"]
    gap_ref = best["mean_top1"] - ref["mean_top1"]
    verdict = (f"The best pipeline here is **{best['method']}** ({best['mean_top1']:.4f}): "
               f"{gap_one * 100:+.2f} points over one-shot L1 and {gap_ref * 100:+.2f} over "
               f"Torch-Pruning's default. The seeds spread by up to ±{noise * 100:.2f} points "
               f"(one validation image is 0.28), so ")
    verdict += ("both margins exceed the noise." if min(gap_one, gap_ref) > noise else
                "the margin over Torch-Pruning's default exceeds the noise but the one over "
                "one-shot L1 does not: on this small, easy data set the pipelines are close."
                if gap_ref > noise else "neither margin exceeds the noise.")
    lines.append("")
    lines.append(verdict + "\n")
    return "\n".join(lines)


def _sensitivity(r: dict) -> str:
    d, n = r["demo"], r["resnet18"]
    return f"""## Sensitivity analysis time (9 ratios per group)

| model | groups | evaluations | seconds | per evaluation |
|---|---:|---:|---:|---:|
| demo (digits, 4 BN batches, 216 held-out images) | {d['groups']} | {d['evaluations']} | {d['seconds']:.1f} | {d['seconds'] / d['evaluations']:.2f} s |
| ResNet-18 ({n['input']}; {n['bn_batches']} BN batches, {n['heldout_images']} held-out images) | {n['groups']} | {n['evaluations']} | {n['seconds']:.1f} | {n['seconds'] / n['evaluations']:.2f} s |

Against the naive way on the demo -- physical surgery on a copy and a copied model per
point, same batches: {d['naive_seconds']:.1f} s, so masking with hooks and restoring the
BatchNorm statistics is {d['speedup_vs_naive']:.1f}x faster. The rest of the cost is the
forward passes themselves (BN re-estimation and the held-out score), which is why the
analysis uses 4 BN batches per point rather than the candidates' 10, and a held-out subset.
"""


def render() -> Path:
    parts = ["# Benchmarks\n", "Generated by `make bench` from `benchmarks/results/*.json`; "
             "do not edit by hand. Times are from a shared 2-core machine: read the ratios, "
             "the absolute numbers are context.\n"]
    for name, fn in (("counting", _counting), ("criteria", _criteria),
                     ("scoring", _scoring), ("finetune_overhead", _finetune), ("gui", _gui),
                     ("pipelines", _pipelines), ("sensitivity", _sensitivity)):
        f = RESULTS / f"{name}.json"
        if f.exists():
            parts.append(fn(json.loads(f.read_text())))
    out = ROOT / "docs" / "benchmarks.md"
    out.write_text("\n".join(parts))
    return out


if __name__ == "__main__":
    print(render())
