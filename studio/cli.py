"""``pruning-studio``: the command line. Heavy imports (torch) happen inside commands so
``--help`` is instant; errors print one line (``--debug`` shows the traceback)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from studio import __version__
from studio.format import human

# studio.core.criteria.CRITERIA + studio.core.datacriteria.DATA_CRITERIA (no torch import)
CRITERIA = ("l1", "l2", "group_norm", "fpgm", "bn_scale", "random", "apoz", "mean_activation",
            "hrank", "taylor", "thinet", "pfa")
DATA_HELP = ("demo (demo:N: another split of its digits), synthetic, cifar10:DIR, "
             "cifar100:DIR, or an image folder (train/ and val/ class subfolders, or class "
             "subfolders split by --seed)")


def _fraction(name):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got '{text}'") from None
        if not 0 < v < 1:
            raise argparse.ArgumentTypeError(f"{name} must lie strictly between 0 and 1, "
                                             f"got {text}")
        return v
    return parse


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="architecture name (e.g. resnet18), 'demo', a checkpoint "
                   "file, or a folder written by 'prune'")
    p.add_argument("--arch", help="architecture of a state_dict checkpoint (e.g. resnet18)")
    p.add_argument("--input-size", metavar="C,H,W", help="dummy input size (default: the "
                   "model's own, 224 for ImageNet architectures)")
    p.add_argument("--trust", action="store_true", help="allow full unpickling of a pickled "
                   "model file (it can run code: only for files you trust)")
    p.add_argument("--pretrained", action="store_true", help="torchvision's pretrained "
                   "weights (hub cache first, then download)")


def _selection_args(p: argparse.ArgumentParser, need_out_plan: bool) -> None:
    p.add_argument("--criterion", choices=CRITERIA, help="importance criterion (default l1)")
    g = p.add_mutually_exclusive_group(required=need_out_plan)
    g.add_argument("--flops-target", type=_fraction("--flops-target"), metavar="F",
                   help="keep this fraction of the FLOPs, 0 < F < 1")
    g.add_argument("--ratio", type=_fraction("--ratio"), metavar="R",
                   help="remove this fraction of the channels, 0 < R < 1")
    p.add_argument("--scope", choices=("global", "uniform"), default="global",
                   help="rank channels across all groups (global) or per group (uniform)")
    p.add_argument("--round-to", type=int, default=1, metavar="N",
                   help="keep channel counts a multiple of N (8 suits GPUs)")
    p.add_argument("--protect", nargs="+", default=[], metavar="LAYER",
                   help="layers whose output channels stay")
    p.add_argument("--drop-block", nargs="+", default=[], metavar="BLOCK",
                   help="residual blocks to remove (they become identity)")
    p.add_argument("--seed", type=int, default=0, help="seed for the random criterion")
    p.add_argument("--data", metavar="SOURCE", help="calibration data for data-driven "
                   "criteria: " + DATA_HELP)
    p.add_argument("--batches", type=int, default=8, metavar="K",
                   help="calibration batches for data-driven criteria")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda …")


def _data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--data", required=required, metavar="SOURCE", help=DATA_HELP)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda …")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download CIFAR when it is missing (needs internet)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="pruning-studio",
        description="Map a CNN's channel groups, stages and blocks, count its cost, and "
                    "physically prune it.")
    ap.add_argument("--version", action="version", version=f"pruning-studio {__version__}")
    ap.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("inspect", help="layers, channel groups, stages, blocks, cost",
                       description="Show a model's layers with their cost, its coupled "
                       "channel groups, stages and residual blocks.")
    _model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--fvcore", action="store_true", help="cross-check the MACs with fvcore")

    p = sub.add_parser("plan", help="write a pruning plan (JSON) chosen by a criterion",
                       description="Score channels and write the plan that reaches a FLOPs "
                       "target or ratio; nothing is pruned.")
    _model_args(p)
    _selection_args(p, need_out_plan=True)
    p.add_argument("--out", required=True, metavar="PLAN.json")
    p.add_argument("--json", action="store_true", help="print the prediction as JSON")

    p = sub.add_parser("prune", help="physically prune and save the smaller model",
                       description="Apply a plan (from a file or chosen by a criterion) to a "
                       "copy of the model and save it with plan.json and report.json.")
    _model_args(p)
    p.add_argument("--plan", metavar="PLAN.json", help="apply this plan")
    _selection_args(p, need_out_plan=False)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("evaluate", help="top-1/top-5/loss on the validation split, latency",
                       description="Evaluate on the validation split; with --latency also "
                       "measure forward time (and speed-up vs --baseline).")
    _model_args(p)
    _data_args(p)
    p.add_argument("--latency", action="store_true", help="measure CPU/GPU forward latency")
    p.add_argument("--latency-batch", type=int, default=16, metavar="N",
                   help="the larger batch size measured besides 1")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for latency")
    p.add_argument("--baseline", metavar="MODEL", help="unpruned model to compare with "
                   "(default: the source of a pruned folder when it can be reloaded)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("score", help="importance scores of every channel (JSON)",
                       description="Score every channel of every group with a criterion "
                       "(data-driven ones over K calibration batches).")
    _model_args(p)
    p.add_argument("--criterion", choices=CRITERIA, required=True)
    _data_args(p, required=False)
    p.add_argument("--batches", type=int, default=8, metavar="K")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="SCORES.json")

    p = sub.add_parser("finetune", help="fine-tune (recover accuracy); works under torchrun",
                       description="Fine-tune a (pruned) model and save it with a metrics log "
                       "and a report. Runs unchanged under torchrun (DDP).")
    _model_args(p)
    _data_args(p)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup", type=float, default=0.5, metavar="EPOCHS")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--teacher", metavar="MODEL", help="distil from this (unpruned) model")
    p.add_argument("--kd-weight", type=float, default=None,
                   help="share of the loss from the teacher (default 0.5 with --teacher)")
    p.add_argument("--kd-temperature", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("run", help="execute a recipe headless (works under torchrun)",
                       description="Execute a recipe (JSON or YAML; docs/recipes.md): load, "
                       "prune by plans / target / pipeline, fine-tune, write the outputs.")
    p.add_argument("--recipe", required=True, metavar="FILE")
    p.add_argument("--out", metavar="DIR", help="override the recipe's outputs.dir")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("sensitivity", help="accuracy per group as its removal ratio grows",
                       description="Per channel group, held-out accuracy (after BN "
                       "re-estimation) at removal ratios 0.1 ... 0.9; with --flops-target "
                       "also the suggested per-group ratios as a plan.")
    _model_args(p)
    _data_args(p)
    p.add_argument("--criterion", choices=CRITERIA, default="l1")
    p.add_argument("--ratios", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    p.add_argument("--flops-target", type=_fraction("--flops-target"), metavar="F")
    p.add_argument("--plan-out", metavar="PLAN.json", help="write the suggested plan here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="FILE.json")

    p = sub.add_parser("export", help="ONNX (checked in onnxruntime) and/or an HTML report",
                       description="Export a model to ONNX, verified against PyTorch in "
                       "onnxruntime; --report writes a stakeholder report for a folder "
                       "written by 'prune' or 'finetune' (its report.json).")
    _model_args(p)
    p.add_argument("--onnx", metavar="FILE.onnx")
    p.add_argument("--report", metavar="FILE.html")

    sub.add_parser("archs", help="list the torchvision architectures the studio accepts")
    sub.add_parser("gui", help="open the window (the default with no command)",
                   add_help=False)
    return ap


def _drive(gen, desc: str, quiet: bool = False):
    """Run a core job generator with a progress bar on a terminal."""
    from studio.core.jobs import run

    if quiet or not sys.stderr.isatty():
        return run(gen)
    from tqdm import tqdm

    bar = tqdm(desc=desc, file=sys.stderr, leave=False)

    def on(ev):
        if ev.get("type") in ("progress", "step"):
            bar.total = ev.get("total")
            bar.n = ev.get("step", 0)
            if "loss" in ev:
                bar.set_postfix(loss=f"{ev['loss']:.3f}")
            bar.refresh()
        elif ev.get("type") == "epoch":
            bar.write(f"epoch {ev['epoch']}/{ev['epochs']}  loss {ev['train_loss']:.3f}  "
                      f"val top-1 {ev['val_top1']:.4f}  {ev['images_per_s']:.0f} img/s")

    try:
        return run(gen, on)
    finally:
        bar.close()


def _data(a, lm):
    from studio.core.train.data import load_data

    d = load_data(a.data, lm.input_size, num_classes=lm.num_classes, seed=getattr(a, "seed", 0),
                  download=getattr(a, "download", False))
    d.check_model(lm.model, lm.input_size)
    return d


def _load(a):
    from studio.core import load_model, map_structure

    lm = load_model(a.model, arch=a.arch, trust=a.trust, pretrained=a.pretrained,
                    input_size=a.input_size)
    return lm, map_structure(lm)


def cmd_inspect(a) -> int:
    lm, s = _load(a)
    d = s.as_dict()
    d["model"] = lm.name
    if a.fvcore:
        from studio.core.structure.fvcore_count import fvcore_macs

        d["fvcore_macs"] = fvcore_macs(lm.model, s.input_size)
    if a.json:
        print(json.dumps(d, indent=1))
        return 0
    print(f"{lm.name}   input {'x'.join(map(str, s.input_size))}   "
          f"params {human(s.original.params)}   FLOPs {human(s.original.flops)}   "
          f"MACs {human(s.original.macs)}   (1 MAC = 2 FLOPs)")
    if a.fvcore:
        print(f"fvcore MACs {human(d['fvcore_macs'])} "
              f"({d['fvcore_macs'] / s.original.macs:.4f} of the studio's count)")
    print(f"\nLayers ({len(d['layers'])})")
    print(f"  {'name':34s} {'type':12s} {'in->out':>11s} {'k':>5s} {'s':>3s} {'g':>4s} "
          f"{'out':>9s} {'params':>9s} {'FLOPs':>9s}  group")
    for r in d["layers"]:
        if r["kind"] == "param" and not r["params"]:
            continue
        k = "x".join(map(str, r["kernel"])) or "-"
        st = str(r["stride"][0]) if r["stride"] else "-"
        hw = "x".join(map(str, r["out_shape"][1:])) if len(r["out_shape"]) > 1 else "-"
        print(f"  {r['name'][:34]:34s} {r['type'][:12]:12s} "
              f"{r['in_channels']:>5d}->{r['out_channels']:<5d} {k:>5s} {st:>3s} "
              f"{r['groups']:>4d} {hw:>9s} {human(r['params']):>9s} {human(r['flops']):>9s}"
              f"  {r['group'] or ''}")
    print(f"\nChannel groups ({len(s.groups)}; the classifier {s.classifier} is protected)")
    for g in s.groups:
        kind = "stage " if g.is_stage else "filter"
        stage = next((st.name for st in s.stages if st.id == g.id), "")
        where = f"stage {stage} ({len(g.blocks)} blocks)" if g.is_stage else (
            f"in block {g.block}" if g.block else "")
        note = "" if g.prunable else f"  [not prunable: {g.reason}]"
        cg = f"  channel groups {g.channel_groups}" if g.channel_groups > 1 else ""
        print(f"  {g.id[:40]:40s} {kind} {g.channels:5d} ch  {len(g.layers):3d} layers  "
              f"{where}{cg}{note}")
    print(f"\nStages ({len(s.stages)})")
    for st in s.stages:
        print(f"  {st.name:30s} {st.channels:5d} ch  group {st.id}  blocks "
              f"{', '.join(st.blocks)}")
    print(f"\nResidual blocks ({len(s.blocks)})")
    for b in s.blocks:
        mark = "droppable" if b.droppable else "kept     "
        print(f"  {b.name:36s} {b.type:20s} {mark}  {b.reason}")
    return 0


def _plan_from_args(a, lm, s):
    from studio.core import Plan, auto_plan
    from studio.core.errors import PlanError

    if getattr(a, "plan", None):
        if a.flops_target or a.ratio or a.criterion:
            raise PlanError("give either --plan or a criterion with --flops-target/--ratio")
        plan = Plan.load(a.plan)
        plan.drop_blocks = sorted(set(plan.drop_blocks) | set(a.drop_block))
        return plan
    if a.flops_target is None and a.ratio is None:
        if a.drop_block:  # only drop blocks
            plan = Plan.empty(s)
            plan.drop_blocks = sorted(a.drop_block)
            return plan
        raise PlanError("say what to prune: --plan FILE, or --flops-target F / --ratio R, "
                        "or --drop-block NAME")
    from studio.core.train.evaluate import pick_device
    from studio.core.verbs import compute_scores

    criterion = a.criterion or "l1"
    data = _data(a, lm) if a.data else None
    scores = _drive(compute_scores(lm, s, criterion, data, batches=a.batches,
                                   device=pick_device(a.device), seed=a.seed),
                    f"scoring ({criterion})")
    plan = auto_plan(lm, s, criterion, ratio=a.ratio, flops_target=a.flops_target,
                     scope=a.scope, round_to=a.round_to, protect=a.protect,
                     drop_blocks=a.drop_block, seed=a.seed, scores=scores)
    if data is not None:
        plan.meta["data"] = a.data
        plan.meta["batches"] = a.batches
    return plan


def _summary(before: dict, after: dict, label: str) -> str:
    parts = []
    for k, name in (("params", "params"), ("flops", "FLOPs"), ("macs", "MACs")):
        parts.append(f"{name} {human(before[k])} -> {human(after[k])} "
                     f"({after[k] / before[k]:.1%})")
    return f"{label}: " + "   ".join(parts)


def cmd_plan(a) -> int:
    from studio.core import predict, validate

    lm, s = _load(a)
    plan = _plan_from_args(a, lm, s)
    validate(plan, s)
    plan.save(a.out)
    pred = predict(plan, s).as_dict()
    if a.json:
        print(json.dumps({"plan": a.out, "before": s.original.as_dict(), "predicted": pred}))
    else:
        print(_summary(s.original.as_dict(), pred, "predicted"))
        print(f"wrote {a.out}: {plan.n_removed()} channels in "
              f"{sum(1 for v in plan.groups.values() if v)} groups, "
              f"{len(plan.drop_blocks)} blocks dropped")
    return 0


def cmd_prune(a) -> int:
    from studio.core import prune, save_pruned

    lm, s = _load(a)
    plan = _plan_from_args(a, lm, s)
    pruned, report = prune(lm, s, plan)
    out = save_pruned(a.out, lm, pruned, plan, report)
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print(_summary(report["before"], report["after"], "pruned"))
        print(f"removed {report['plan']['channels_removed']} channels in "
              f"{report['plan']['groups_pruned']} groups, dropped "
              f"{len(report['plan']['blocks_dropped'])} blocks in "
              f"{report['surgery_seconds']:.2f} s")
        print(f"wrote {out}/ (model.json, weights.pt, plan.json, report.json)")
    return 0


def _baseline(a, lm):
    """The unpruned model to compare with: --baseline, or a pruned folder's own source."""
    from studio.core import load_model
    from studio.core.errors import StudioError

    if a.baseline:
        return load_model(a.baseline, arch=a.arch, trust=a.trust, input_size=lm.input_size)
    if not lm.plans:
        return None
    src = lm.source
    try:
        if src.get("demo"):
            return load_model("demo")
        if src.get("file") and src.get("kind") == "arch":
            return load_model(src["file"], arch=src["arch"], input_size=lm.input_size)
    except StudioError:
        return None
    return None


def cmd_evaluate(a) -> int:
    from studio.core.structure.counting import count_model
    from studio.core.train.data import loader
    from studio.core.train.evaluate import compare_latency, evaluate, measure_latency, pick_device

    lm, s = _load(a)
    data = _data(a, lm)
    device = pick_device(a.device)
    val = loader(data.val, max(a.batch_size, 128))
    res = {"model": lm.name, "data": data.name, **_drive(evaluate(lm.model, val, device),
                                                         "evaluate")}
    res.update(s.original.as_dict())
    if data.note:
        res["note"] = data.note
    base = _baseline(a, lm)
    if base is not None:
        b = _drive(evaluate(base.model, val, device), "evaluate baseline")
        bt = count_model(base.model, lm.input_size)
        res["baseline"] = {"model": base.name, **b, **bt.as_dict()}
        res["change"] = {"top1": res["top1"] - b["top1"], "top5": res["top5"] - b["top5"],
                         "params_ratio": res["params"] / bt.params,
                         "flops_ratio": res["flops"] / bt.flops}
    if a.latency:
        kw = dict(batch_sizes=(1, a.latency_batch), device=device, threads=a.threads)
        if base is not None:
            res["latency"] = compare_latency(base.model, lm.model, lm.input_size,
                                             res["change"]["flops_ratio"], **kw)
        else:
            res["latency"] = measure_latency(lm.model, lm.input_size, **kw)
    if a.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"{lm.name} on {data.name} ({res['n']} validation images)")
    print(f"  top-1 {res['top1']:.4f}   top-5 {res['top5']:.4f}   loss {res['loss']:.4f}   "
          f"params {human(res['params'])}   FLOPs {human(res['flops'])}")
    if "baseline" in res:
        c = res["change"]
        print(f"  vs {res['baseline']['model']}: top-1 {c['top1']:+.4f}   top-5 "
              f"{c['top5']:+.4f}   params x{c['params_ratio']:.3f}   FLOPs "
              f"x{c['flops_ratio']:.3f}")
    if a.latency:
        lat = res["latency"]
        if "pruned" in lat:
            for bs, sp in lat["speedup"].items():
                print(f"  latency batch {bs}: {lat['original']['batch'][bs]['median_ms']:.2f} "
                      f"-> {lat['pruned']['batch'][bs]['median_ms']:.2f} ms   speed-up "
                      f"{sp:.2f}x   realisation {lat['realisation'][bs]:.2f}")
        else:
            for bs, v in lat["batch"].items():
                print(f"  latency batch {bs}: {v['median_ms']:.2f} ms ({lat['device']}, "
                      f"{lat['threads']} threads)")
    if data.note:
        print(f"  note: {data.note}")
    return 0


def cmd_score(a) -> int:
    from studio.core.train.evaluate import pick_device
    from studio.core.io import atomic_write_text
    from studio.core.verbs import compute_scores

    lm, s = _load(a)
    data = _data(a, lm) if a.data else None
    scores = _drive(compute_scores(lm, s, a.criterion, data, batches=a.batches,
                                   batch_size=a.batch_size, device=pick_device(a.device),
                                   seed=a.seed), f"scoring ({a.criterion})")
    out = {"criterion": a.criterion, "model": lm.name, "fingerprint": s.fingerprint,
           "data": a.data, "batches": a.batches if data else None,
           "groups": {gid: {"group": sc.group.tolist(),
                            "members": {k: v.tolist() for k, v in sc.members.items()},
                            "extra": sc.extra} for gid, sc in scores.items()}}
    if data is not None and data.note:
        out["note"] = data.note
    from pathlib import Path

    atomic_write_text(Path(a.out), json.dumps(out))
    print(f"wrote {a.out}: {a.criterion} scores of {sum(len(v.group) for v in scores.values())}"
          f" channels in {len(scores)} groups")
    return 0


def cmd_finetune(a) -> int:
    from studio.core import load_model, save_pruned
    from studio.core.train.finetune import FinetuneConfig, distributed, finetune

    rank, world = distributed()
    lm, s = _load(a)
    data = _data(a, lm)
    teacher = None
    if a.teacher:
        teacher = load_model(a.teacher, arch=a.arch, trust=a.trust, input_size=lm.input_size)
    kd = a.kd_weight if a.kd_weight is not None else (0.5 if teacher else 0.0)
    cfg = FinetuneConfig(epochs=a.epochs, lr=a.lr, optimizer=a.optimizer,
                         weight_decay=a.weight_decay, warmup_epochs=a.warmup,
                         label_smoothing=a.label_smoothing, batch_size=a.batch_size,
                         kd_weight=kd, kd_temperature=a.kd_temperature, device=a.device,
                         seed=a.seed, max_steps=a.max_steps)
    log: list[dict] = []
    from studio.core.train.data import loader
    from studio.core.train.evaluate import evaluate, pick_device

    val = loader(data.val, 256)
    before = _drive(evaluate(lm.model, val, pick_device(a.device)), "evaluate", rank != 0)
    gen = finetune(lm.model, data, cfg, teacher=teacher.model if teacher else None)

    def record():
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                return stop.value
            if ev["type"] in ("step", "epoch"):
                log.append(ev)
            yield ev

    result = _drive(record(), "fine-tune", quiet=rank != 0)
    if rank != 0:
        return 0
    final = log[-1] if log and log[-1]["type"] == "epoch" else None
    report = {"model": lm.name, "data": data.name, "before": before,
              "after": {"top1": result["best"]["top1"], "top5": result["best"].get("top5"),
                        "loss": result["best"].get("loss"),
                        "best_epoch": result["best"]["epoch"]},
              "last_epoch": final, "cost": s.original.as_dict(),
              "world_size": world, "device": result["device"], "config": result["config"],
              "teacher": a.teacher, "cancelled": result["cancelled"],
              "seconds": result["seconds"]}
    if data.note:
        report["note"] = data.note
    metrics = "".join(json.dumps(e) + "\n" for e in log)
    out = save_pruned(a.out, lm, lm.model, None, report, {"metrics.jsonl": metrics})
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"fine-tuned {a.epochs} epochs on {world} process(es) ({result['device']}): "
              f"top-1 {before['top1']:.4f} -> {report['after']['top1']:.4f} "
              f"(best epoch {report['after']['best_epoch']})")
        print(f"wrote {out}/ (model.json, weights.pt, metrics.jsonl, report.json)")
    return 0


def cmd_run(a) -> int:
    from studio.core.train.finetune import distributed
    from studio.core.recipe import load_recipe, run_recipe

    rank, _ = distributed()
    rec = load_recipe(a.recipe)
    report = _drive(run_recipe(rec, out_dir=a.out), "recipe", quiet=rank != 0)
    if rank != 0:
        return 0
    if a.json:
        print(json.dumps(report, indent=1))
        return 0
    b, f = report["before"], report["after"]
    print(f"ran {a.recipe}: FLOPs {human(b['flops'])} -> {human(f['flops'])} "
          f"({f['flops'] / b['flops']:.1%}), params {human(b['params'])} -> "
          f"{human(f['params'])}" + (f", top-1 {report['top1_before']:.4f} -> "
                                     f"{report['top1_after']:.4f}"
                                     if report.get("top1_after") is not None else ""))
    print(f"wrote {report['out']}/")
    return 0


def cmd_sensitivity(a) -> int:
    from pathlib import Path

    from studio.core.io import atomic_write_text
    from studio.core.pipelines.common import PipelineConfig, scores_for, sensitivity, suggest_ratios

    lm, s = _load(a)
    data = _data(a, lm)
    try:
        ratios = tuple(float(r) for r in a.ratios.split(","))
    except ValueError:
        from studio.core.errors import StudioError

        raise StudioError(f"--ratios must be numbers separated by commas, got {a.ratios}"
                          ) from None
    cfg = PipelineConfig(criterion=a.criterion, ratios=ratios, seed=a.seed)
    res = _drive(sensitivity(lm, data, cfg), "sensitivity")
    out = {"model": lm.name, "data": data.name, **res}
    if a.flops_target:
        scores = _drive(scores_for(lm.model, s, a.criterion, data, 8, a.seed, None), "scores")
        plan = suggest_ratios(s, scores, res, a.flops_target)
        out["suggested"] = plan.meta["ratios"]
        if a.plan_out:
            plan.save(a.plan_out)
    atomic_write_text(Path(a.out), json.dumps(out, indent=1))
    worst = sorted(res["curves"].items(), key=lambda kv: kv[1][len(kv[1]) // 2])
    print(f"base held-out top-1 {res['base_top1']:.4f}; {res['evaluations']} evaluations")
    print("most sensitive at 50% removal: " + ", ".join(
        f"{g} ({c[len(c) // 2]:.3f})" for g, c in worst[:3]))
    print(f"wrote {a.out}" + (f" and {a.plan_out}" if a.flops_target and a.plan_out else ""))
    return 0


def cmd_export(a) -> int:
    from pathlib import Path

    from studio.core import load_model
    from studio.core.errors import StudioError
    from studio.core.export.common import export_onnx, html_report, plan_steps

    if not (a.onnx or a.report):
        raise StudioError("nothing to export: give --onnx FILE and/or --report FILE")
    lm = load_model(a.model, arch=a.arch, trust=a.trust, pretrained=a.pretrained,
                    input_size=a.input_size)
    if a.report:
        rep = Path(lm.folder or "", "report.json")
        if not lm.folder or not rep.is_file():
            raise StudioError("--report needs a folder written by 'prune' or 'finetune' "
                              "(it reads the folder's report.json)")
        r = json.loads(rep.read_text())
        b, f = r.get("before", {}), r.get("after", {})
        metrics = [(k, b[k], f[k]) for k in ("params", "flops", "macs") if k in b and k in f]
        if isinstance(f.get("top1"), float) and isinstance(b.get("top1"), float):
            metrics.append(("top-1", b["top1"], f["top1"]))
        widths = [(x["name"], x["before"][1], x["after"][1] if x["after"] else 0)
                  for x in r.get("layers", [])]
        out = html_report(a.report, title=f"Pruning report — {r.get('model', lm.name)}",
                          summary={"model": lm.name, "architecture": lm.arch,
                                   "input size": "×".join(map(str, lm.input_size))},
                          metrics=metrics, images={}, plan_summary=plan_steps(lm.plans),
                          widths=widths)
        print(f"wrote {out}")
    if a.onnx:
        res = export_onnx(lm.model, lm.input_size, a.onnx)
        print(f"wrote {res['path']} (opset {res['opset']}, onnxruntime max |diff| "
              f"{res['max_abs_diff']:.1e})")
        if res["hint"]:
            print(f"note: {res['hint']}")
    return 0


def cmd_archs(a) -> int:
    from studio.core.model import zoo

    for name in zoo.architectures():
        why = zoo.unsupported_reason(name)
        print(name + (f"   (not supported: {why})" if why else ""))
    return 0


COMMANDS = {"inspect": cmd_inspect, "plan": cmd_plan, "prune": cmd_prune,
            "evaluate": cmd_evaluate, "score": cmd_score, "finetune": cmd_finetune,
            "run": cmd_run, "sensitivity": cmd_sensitivity, "export": cmd_export,
            "archs": cmd_archs}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] == "gui":  # the window; its own parser
        from studio.gui.app import main as gui_main

        return gui_main(argv[1:])
    ap = build_parser()
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not a.debug:
        import warnings

        warnings.filterwarnings("ignore")  # library deprecation chatter is not for users
    if a.command is None:
        ap.print_help()
        return 0
    try:
        return COMMANDS[a.command](a)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except Exception as e:  # noqa: BLE001 - one line for the user, traceback with --debug
        if a.debug:
            raise
        from studio.core.errors import StudioError

        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, StudioError):
            print(f"error: {msg}", file=sys.stderr)
            return 2
        print(f"error: {type(e).__name__}: {msg} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
