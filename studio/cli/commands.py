"""The commands: each reads its options, calls the verbs (``studio.core.verbs``) and prints.
Heavy imports (torch) happen inside the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from studio.format import human


def drive(gen, desc: str, quiet: bool = False):
    """Run a core job generator, with a progress bar on a terminal."""
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
            bar.write(
                f"epoch {ev['epoch']}/{ev['epochs']}  loss {ev['train_loss']:.3f}  "
                f"val top-1 {ev['val_top1']:.4f}  {ev['images_per_s']:.0f} img/s"
            )

    try:
        return run(gen, on)
    finally:
        bar.close()


def request(a, spec: str | None = None, input_size=None):
    """The ``ModelRequest`` the options describe (``spec`` for a second model: a teacher or
    a baseline, loaded with the same consent)."""
    from pydantic import ValidationError

    from studio.core.errors import InputError
    from studio.core.model.request import ModelRequest
    from studio.core.schema import describe

    try:
        return ModelRequest(
            spec=spec or a.model,
            arch=None if spec else a.arch,
            weights=None if spec else a.weights,
            pretrained=False if spec else a.pretrained,
            model_args={} if spec else a.model_args,
            input_size=input_size or a.input_size,
            trust=a.trust,
            code_root=a.code_root,
        )
    except ValidationError as e:
        raise InputError(
            describe(e).replace("input_size", "--input-size").replace("model_args", "--model-args")
        ) from None


def load(a):
    from studio.core import verbs
    from studio.core.model.loader import load as load_request

    lm = load_request(request(a))
    return lm, verbs.map_structure(lm)


def data(a, lm):
    from studio.core import verbs

    return verbs.data_for(
        lm, a.data, seed=getattr(a, "seed", 0), download=getattr(a, "download", False)
    )


def device(a):
    from studio.core.train.evaluate import pick_device

    try:
        return pick_device(a.device)
    except RuntimeError as e:
        from studio.core.errors import InputError

        raise InputError(f"--device {a.device}: {str(e).splitlines()[0]}") from None


def cmd_inspect(a) -> int:
    lm, s = load(a)
    d = s.as_dict()
    d["model"] = lm.name
    d["source"] = lm.describe_source()
    if a.fvcore:
        from studio.core.structure.fvcore_count import fvcore_macs

        d["fvcore_macs"] = fvcore_macs(lm.model, s.input_size)
    if a.json:
        print(json.dumps(d, indent=1))
        return 0
    print(
        f"{lm.name}   input {'x'.join(map(str, s.input_size))}   "
        f"params {human(s.original.params)}   FLOPs {human(s.original.flops)}   "
        f"MACs {human(s.original.macs)}   (1 MAC = 2 FLOPs)"
    )
    print(f"source: {lm.describe_source()}")
    if a.fvcore:
        print(
            f"fvcore MACs {human(d['fvcore_macs'])} "
            f"({d['fvcore_macs'] / s.original.macs:.4f} of the studio's count)"
        )
    print(f"\nLayers ({len(d['layers'])})")
    print(
        f"  {'name':34s} {'type':12s} {'in->out':>11s} {'k':>5s} {'s':>3s} {'g':>4s} "
        f"{'out':>9s} {'params':>9s} {'FLOPs':>9s}  group"
    )
    for r in d["layers"]:
        if r["kind"] == "param" and not r["params"]:
            continue
        k = "x".join(map(str, r["kernel"])) or "-"
        st = str(r["stride"][0]) if r["stride"] else "-"
        hw = "x".join(map(str, r["out_shape"][1:])) if len(r["out_shape"]) > 1 else "-"
        print(
            f"  {r['name'][:34]:34s} {r['type'][:12]:12s} "
            f"{r['in_channels']:>5d}->{r['out_channels']:<5d} {k:>5s} {st:>3s} "
            f"{r['groups']:>4d} {hw:>9s} {human(r['params']):>9s} {human(r['flops']):>9s}"
            f"  {r['group'] or ''}"
        )
    print(f"\nChannel groups ({len(s.groups)}; the classifier {s.classifier} is protected)")
    for g in s.groups:
        kind = "stage " if g.is_stage else "filter"
        stage = next((st.name for st in s.stages if st.id == g.id), "")
        where = (
            f"stage {stage} ({len(g.blocks)} blocks)"
            if g.is_stage
            else (f"in block {g.block}" if g.block else "")
        )
        note = "" if g.prunable else f"  [not prunable: {g.reason}]"
        cg = f"  channel groups {g.channel_groups}" if g.channel_groups > 1 else ""
        print(
            f"  {g.id[:40]:40s} {kind} {g.channels:5d} ch  {len(g.layers):3d} layers  "
            f"{where}{cg}{note}"
        )
    print(f"\nStages ({len(s.stages)})")
    for st in s.stages:
        print(f"  {st.name:30s} {st.channels:5d} ch  group {st.id}  blocks {', '.join(st.blocks)}")
    print(f"\nResidual blocks ({len(s.blocks)})")
    for b in s.blocks:
        mark = "droppable" if b.droppable else "kept     "
        print(f"  {b.name:36s} {b.type:20s} {mark}  {b.reason}")
    return 0


def plan_from_args(a, lm, s):
    from studio.core import verbs
    from studio.core.errors import PlanError
    from studio.core.plan.plan import Plan

    if getattr(a, "plan", None):
        if a.flops_target or a.ratio or a.latency_target or a.criterion:
            raise PlanError("give either --plan or a criterion with --flops-target/--ratio")
        plan = Plan.load(a.plan)
        plan.drop_blocks = sorted(set(plan.drop_blocks) | set(a.drop_block))
        return plan
    if a.flops_target is None and a.ratio is None and a.latency_target is None:
        if a.drop_block:  # only drop blocks
            plan = Plan.empty(s)
            plan.drop_blocks = sorted(set(a.drop_block))
            return plan
        raise PlanError(
            "say what to prune: --plan FILE, or --flops-target F / --ratio R, or --drop-block NAME"
        )
    from pydantic import ValidationError

    from studio.core.errors import InputError
    from studio.core.plan.target import MIN_LATENCY_STEP, Target
    from studio.core.schema import describe

    if a.latency_target is not None and a.scope != "latency":
        raise InputError("--latency-target needs --scope latency (layers timed on this machine)")
    if a.latency_batch != 1 and a.scope != "latency":
        raise InputError(
            "--latency-batch needs --scope latency (it is the batch layers are timed at)"
        )
    if a.scope == "latency" and a.ratio is not None:
        raise InputError(
            "--scope latency selects to --flops-target or --latency-target, not --ratio"
        )
    if a.scope == "latency" and a.round_to is not None and a.round_to < MIN_LATENCY_STEP:
        raise InputError(
            f"--scope latency moves in steps of --round-to channels: give "
            f"{MIN_LATENCY_STEP} or more (16 suits channels-last CPUs)"
        )
    try:
        given = {"round_to": a.round_to} if a.round_to is not None else {}
        if a.scope == "latency":
            given["latency_batch"] = a.latency_batch
        target = Target(
            flops=a.flops_target,
            ratio=a.ratio,
            latency=a.latency_target,
            criterion=a.criterion or "l1",
            scope=a.scope,
            max_ratio=a.max_ratio,
            protect=a.protect,
            drop_blocks=a.drop_block,
            batches=a.batches,
            seed=a.seed,
            **given,
        )
    except ValidationError as e:
        raise InputError(describe(e)) from None
    d = data(a, lm) if a.data else None
    return drive(
        verbs.make_plan(lm, s, target, d, device=device(a)), f"scoring ({target.criterion})"
    )


def latency_line(plan) -> str | None:
    """What the latency-aware scope predicted, from the plan's record of it."""
    lat = plan.meta.get("latency")
    if not isinstance(lat, dict):
        return None
    share = lat["predicted_ms"] / lat["dense_ms"] if lat.get("dense_ms") else float("nan")
    threads = f"{lat['threads']} thread{'s' if lat['threads'] != 1 else ''}"
    measured = (
        f"{lat['measured']} widths measured now, the rest from the table of earlier runs"
        if lat["measured"]
        else "every width from the table of earlier runs"
    )
    return (
        f"latency-aware at batch {lat['batch']} "
        f"({'channels-last' if lat['channels_last'] else 'contiguous'}, {threads}): the "
        f"{lat['layers_timed']} timed layers {lat['dense_ms']:.1f} -> "
        f"{lat['predicted_ms']:.1f} ms predicted ({share:.1%}; {measured})" + whole_line(lat)
    )


def whole_line(lat: dict) -> str:
    """The whole-model check of a latency-aware plan against the uniform one."""
    w = lat.get("whole")
    if not isinstance(w, dict):
        return ""
    if w["kept"] == "latency":
        return (
            f"\ntimed whole: {w['latency_ms']:.1f} ms against {w['uniform_ms']:.1f} ms for "
            f"the uniform plan of the same target"
        )
    return (
        f"\ntimed whole, the uniform plan of the same target ran faster ({w['uniform_ms']:.1f} "
        f"against {w['latency_ms']:.1f} ms): it is the plan kept"
    )


def summary(before: dict, after: dict, label: str) -> str:
    parts = []
    for k, name in (("params", "params"), ("flops", "FLOPs"), ("macs", "MACs")):
        parts.append(f"{name} {human(before[k])} -> {human(after[k])} ({after[k] / before[k]:.1%})")
    return f"{label}: " + "   ".join(parts)


def _inputs(a) -> list:
    return [p for p in (a.model, a.weights, getattr(a, "plan", None)) if p and Path(p).exists()]


def cmd_plan(a) -> int:
    from studio.core.outputs import check_file
    from studio.core.plan.plan import predict, validate

    check_file(a.out, _inputs(a))
    lm, s = load(a)
    plan = plan_from_args(a, lm, s)
    validate(plan, s)
    plan.save(a.out)
    pred = predict(plan, s).as_dict()
    if a.json:
        print(json.dumps({"plan": a.out, "before": s.original.as_dict(), "predicted": pred}))
    else:
        print(summary(s.original.as_dict(), pred, "predicted"))
        if latency_line(plan):
            print(latency_line(plan))
        print(
            f"wrote {a.out}: {plan.n_removed()} channels in "
            f"{sum(1 for v in plan.groups.values() if v)} groups, "
            f"{len(plan.drop_blocks)} blocks dropped"
        )
    return 0


def cmd_prune(a) -> int:
    from studio.core import verbs
    from studio.core.errors import InputError
    from studio.core.outputs import check_folder

    if a.reconstruct and not a.data:
        raise InputError("--reconstruct needs calibration images: give --data SOURCE")
    check_folder(a.out, _inputs(a))  # before any work
    lm, s = load(a)
    check_folder(a.out, _inputs(a) + [lm.folder])
    plan = plan_from_args(a, lm, s)
    pruned, report = verbs.prune(lm, s, plan)
    if a.reconstruct:  # a plan that only drops blocks leaves no layer to refit
        has_cut = any(plan.groups.values())
        report["reconstruction"] = (
            _reconstruct(a, lm, s, plan, pruned) if has_cut else {"layers": 0}
        )
    verbs.save(a.out, lm, model=pruned, plan=plan, report=report)
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print(summary(report["before"], report["after"], "pruned"))
        if latency_line(plan):
            print(latency_line(plan))
        print(
            f"removed {report['plan']['channels_removed']} channels in "
            f"{report['plan']['groups_pruned']} groups, dropped "
            f"{len(report['plan']['blocks_dropped'])} blocks in "
            f"{report['surgery_seconds']:.2f} s"
        )
        rec = report.get("reconstruction")
        if rec and not rec["layers"]:
            print("reconstruction: no layer reads pruned channels (nothing to refit)")
        elif rec:
            print(
                f"reconstructed {rec['layers']} layers by least squares on {rec['images']} "
                f"calibration images: held-out output error {rec['error_before']:.3f} -> "
                f"{rec['error_after']:.3f}; top-1 before fine-tuning on "
                f"{rec['val_images']} validation images {rec['top1_without']:.4f} without, "
                f"{rec['top1_with']:.4f} with" + (f" ({rec['note']})" if rec["note"] else "")
            )
        print(f"wrote {a.out}/ ({_files_of(a.out)})")
    return 0


RECONSTRUCT_EVAL_IMAGES = 5000


def _reconstruct(a, lm, s, plan, pruned) -> dict:
    """Refit the consumers of pruned channels (``prune --reconstruct``), with the top-1
    before fine-tuning without and with it."""
    from torch.utils.data import Subset

    from studio.core import verbs
    from studio.core.train.data import loader
    from studio.core.train.evaluate import evaluate

    d = data(a, lm)
    dev = device(a)
    n = min(len(d.val), RECONSTRUCT_EVAL_IMAGES)  # two passes: keep them short
    val = loader(Subset(d.val, range(n)), 256)
    without = drive(evaluate(pruned, val, device=dev), "evaluating")["top1"]
    rec = drive(verbs.reconstruct(lm, s, plan, pruned, d, seed=a.seed), "reconstructing")
    with_ = drive(evaluate(pruned, val, device=dev), "evaluating")["top1"]
    pruned.cpu()
    return {
        **rec,
        "top1_without": without,
        "top1_with": with_,
        "val_images": n,
        "note": d.note,
    }


def baseline(a, lm):
    """The unpruned model to compare with: --baseline, or a pruned model's own origin."""
    from studio.core import verbs

    if a.baseline:
        return second_model(a, "--baseline", a.baseline, lm)
    return verbs.original_of(lm, trust=a.trust)


def second_model(a, flag: str, spec: str, lm):
    """A teacher or baseline for ``lm``: loaded with the user's consent, at ``lm``'s input."""
    from studio.core.errors import LoadError
    from studio.core.model.loader import load as load_request

    try:
        return load_request(request(a, spec, input_size=lm.input_size))
    except LoadError as e:
        raise LoadError(
            f"{flag} {spec}: {e}", fix=None if e.fix == "input_size" else e.fix
        ) from None


def evaluate_pair(a, lm, d, base) -> dict:
    """``lm`` (and ``base``) on ``d`` with the command's latency, device and batch flags."""
    from studio.core import verbs

    return drive(
        verbs.evaluate(
            lm,
            d,
            baseline=base,
            latency=a.latency,
            latency_batch=getattr(a, "latency_batch", 16),
            threads=a.threads,
            runtime=getattr(a, "runtime", "torch"),
            channels_last=getattr(a, "channels_last", None) or "auto",
            device=device(a),
            batch_size=max(a.batch_size, 128),
        ),
        "evaluate",
    )


def cmd_evaluate(a) -> int:
    from studio.core.errors import InputError

    if a.runtime != "torch" and not a.latency:
        raise InputError("--runtime is the runtime --latency times in: give --latency too")
    if a.channels_last not in (None, "auto") and a.runtime != "deploy":
        raise InputError("--channels-last is for --runtime deploy (the memory format it times)")
    lm, _s = load(a)
    d = data(a, lm)
    res = evaluate_pair(a, lm, d, baseline(a, lm))
    if a.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"{lm.name} on {d.name} ({res['n']} validation images)")
    print(
        f"  top-1 {res['top1']:.4f}   top-5 {res['top5']:.4f}   loss {res['loss']:.4f}   "
        f"params {human(res['params'])}   FLOPs {human(res['flops'])}"
    )
    if "baseline" in res:
        c = res["change"]
        print(
            f"  vs {res['baseline']['model']}: top-1 {c['top1']:+.4f}   top-5 "
            f"{c['top5']:+.4f}   params x{c['params_ratio']:.3f}   FLOPs "
            f"x{c['flops_ratio']:.3f}"
        )
    if a.latency:
        print_latency(res["latency"])
    if d.note:
        print(f"  note: {d.note}")
    return 0


def print_latency(lat: dict) -> None:
    from studio.core.export import RUNTIME_WORDS

    treatment = lat.get("treatment") or {}
    how = []
    if "batchnorm_folded" in treatment:
        how.append("BatchNorm folded" if treatment["batchnorm_folded"] else "BatchNorm NOT folded")
    if "channels_last" in treatment:
        how.append(f"channels-last {'on' if treatment['channels_last'] else 'off'}")
    where = lat.get("pruned", lat)
    n = where.get("threads", "?")
    how.append(f"{where.get('device', 'cpu')}, {n} thread{'' if n == 1 else 's'}")
    print(f"  latency in {RUNTIME_WORDS[lat.get('runtime', 'torch')]}; {', '.join(how)}:")
    if "pruned" in lat:
        for bs, sp in lat["speedup"].items():
            o, p = lat["original"]["batch"][bs], lat["pruned"]["batch"][bs]
            print(
                f"  latency batch {bs}: {o['median_ms']:.2f} -> {p['median_ms']:.2f} ms   "
                f"speed-up {sp:.2f}x   realisation {lat['realisation'][bs]:.2f}"
            )
    else:
        for bs, v in lat["batch"].items():
            print(f"  latency batch {bs}: {v['median_ms']:.2f} ms")
    if treatment.get("note"):
        print(f"  note: {treatment['note']}")
    for w in lat.get("warnings", []):
        print(f"  warning: {w}")


def cmd_score(a) -> int:
    from studio.core import verbs
    from studio.core.io import atomic_write_text
    from studio.core.outputs import check_file

    check_file(a.out, _inputs(a))
    lm, s = load(a)
    d = data(a, lm) if a.data else None
    scores = drive(
        verbs.score(
            lm.model,
            s,
            a.criterion,
            d,
            batches=a.batches,
            batch_size=a.batch_size,
            device=device(a),
            seed=a.seed,
        ),
        f"scoring ({a.criterion})",
    )
    out = {
        "format": "pruning-studio/scores",
        "version": 1,
        "criterion": a.criterion,
        "model": lm.name,
        "fingerprint": s.fingerprint,
        "data": a.data,
        "batches": a.batches if d else None,
        "groups": {
            gid: {
                "group": sc.group.tolist(),
                "members": {k: v.tolist() for k, v in sc.members.items()},
                "extra": sc.extra,
            }
            for gid, sc in scores.items()
        },
    }
    if d is not None and d.note:
        out["note"] = d.note
    atomic_write_text(Path(a.out), json.dumps(out))
    print(
        f"wrote {a.out}: {a.criterion} scores of {sum(len(v.group) for v in scores.values())}"
        f" channels in {len(scores)} groups"
    )
    return 0


def finetune_config(a):
    from pydantic import ValidationError

    from studio.core.errors import InputError
    from studio.core.schema import describe
    from studio.core.train.finetune import FinetuneConfig

    try:
        return FinetuneConfig(
            epochs=a.epochs,
            lr=a.lr,
            optimizer=a.optimizer,
            weight_decay=a.weight_decay,
            warmup_epochs=a.warmup,
            label_smoothing=a.label_smoothing,
            batch_size=a.batch_size,
            kd_weight=a.kd_weight if a.kd_weight is not None else (0.5 if a.teacher else 0.0),
            kd_temperature=a.kd_temperature,
            device=a.device,
            seed=a.seed,
            max_steps=a.max_steps,
        )
    except ValidationError as e:
        raise InputError(f"fine-tuning settings: {describe(e)}") from None


def cmd_finetune(a) -> int:
    from studio.core import verbs
    from studio.core.outputs import check_folder
    from studio.core.train.finetune import distributed

    rank, world = distributed()
    cfg = finetune_config(a)
    if rank == 0:
        check_folder(a.out, _inputs(a))
    lm, _s = load(a)
    if rank == 0:
        check_folder(a.out, _inputs(a) + [lm.folder])
    d = data(a, lm)
    device(a)
    teacher = second_model(a, "--teacher", a.teacher, lm) if a.teacher else None
    tuned = drive(verbs.finetune(lm, d, cfg, teacher=teacher), "fine-tune", quiet=rank != 0)
    if rank != 0:
        return 0
    if tuned.lm is None:
        print("fine-tuning ended before the first epoch: nothing written", file=sys.stderr)
        return 1
    metrics = "".join(json.dumps(e) + "\n" for e in tuned.metrics)
    verbs.save(a.out, tuned.lm, report=tuned.report, extra_files={"metrics.jsonl": metrics})
    r = tuned.report
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        print(
            f"fine-tuned {r['epochs_done']} epochs on {world} process(es) ({r['device']}): "
            f"top-1 {r['before']['top1']:.4f} -> {r['after']['top1']:.4f} "
            f"(best epoch {r['after']['best_epoch']})"
        )
        print(f"wrote {a.out}/ ({_files_of(a.out)})")
    return 0


def cmd_run(a) -> int:
    from studio.core.recipe import Recipe, run_recipe
    from studio.core.train.finetune import distributed

    rank, _ = distributed()
    rec = Recipe.load(a.recipe)
    report = drive(
        run_recipe(rec, out_dir=a.out, trust=a.trust, code_root=a.code_root, recipe_path=a.recipe),
        "recipe",
        quiet=rank != 0,
    )
    if rank != 0:
        return 0
    if a.json:
        print(json.dumps(report, indent=1))
        return 0
    b, f = report["before"], report["after"]
    top = ""
    if report.get("top1_after") is not None:
        top = f", top-1 {report['top1_before']:.4f} -> {report['top1_after']:.4f}"
    print(
        f"ran {a.recipe}: FLOPs {human(b['flops'])} -> {human(f['flops'])} "
        f"({f['flops'] / b['flops']:.1%}), params {human(b['params'])} -> "
        f"{human(f['params'])}{top}"
    )
    print(f"wrote {report['out']}/")
    return 0


def cmd_sensitivity(a) -> int:
    from pydantic import ValidationError

    from studio.core import verbs
    from studio.core.errors import InputError
    from studio.core.io import atomic_write_text
    from studio.core.outputs import check_file
    from studio.core.pipelines.config import PipelineConfig
    from studio.core.schema import describe

    try:
        ratios = tuple(float(r) for r in a.ratios.split(","))
        cfg = PipelineConfig(criterion=a.criterion, ratios=ratios, seed=a.seed)
    except ValueError:
        raise InputError(f"--ratios must be numbers separated by commas, got {a.ratios}") from None
    except ValidationError as e:
        raise InputError(f"--ratios: {describe(e)}") from None
    check_file(a.out, _inputs(a))
    if a.plan_out:
        check_file(a.plan_out, _inputs(a))
    lm, _s = load(a)
    d = data(a, lm)
    res = drive(verbs.sensitivity(lm, d, cfg, flops_target=a.flops_target), "sensitivity")
    plan = res.pop("plan", None)
    out = {
        "format": "pruning-studio/sensitivity",
        "version": 1,
        "model": lm.name,
        "data": d.name,
        **res,
    }
    atomic_write_text(Path(a.out), json.dumps(out, indent=1))
    if plan is not None and a.plan_out:
        plan.save(a.plan_out)
    worst = sorted(res["curves"].items(), key=lambda kv: kv[1][len(kv[1]) // 2])
    print(f"base held-out top-1 {res['base_top1']:.4f}; {res['evaluations']} evaluations")
    print(
        "most sensitive at mid removal: "
        + ", ".join(f"{g} ({c[len(c) // 2]:.3f})" for g, c in worst[:3])
    )
    print(f"wrote {a.out}" + (f" and {a.plan_out}" if plan is not None and a.plan_out else ""))
    return 0


def _measure_for_report(a, lm, orig):
    """Top-1/top-5 of the original and ``lm`` on ``--data``, side by side (and, with
    ``--latency``, their latency): the report's accuracy is then against the original."""
    from studio.core.errors import StudioError

    if orig is None:
        raise StudioError(
            f"{lm.folder}: --data/--latency compare with the original model, which does "
            "not load here (pass --trust if it needs code to run)"
        )
    if not a.data:
        raise StudioError("--latency for a report needs --data too (the accuracy side)")
    d = data(a, lm)
    res = evaluate_pair(a, lm, d, orig)
    keys = ("top1", "top5")
    accuracy = {
        "before": {k: res["baseline"][k] for k in keys},
        "after": {k: res[k] for k in keys},
        "versus": "the original",
        "note": f"the original and this model on {d.name} "
        f"({res['n']} validation images), measured for this report",
    }
    return accuracy, res.get("latency")


def _folder_report(lm, a=None):
    """The report of a folder written by 'prune' or 'finetune': costs counted on the model
    and on the original it names (when that loads without consent), accuracy and curves
    from its report.json and metrics.jsonl. With ``--data`` (and ``--latency``) the original
    and the model are measured side by side, so accuracy is against the original."""
    import torch

    from studio.core import verbs
    from studio.core.errors import StudioError
    from studio.core.export.report import ReportData, environment, model_bytes, plan_steps
    from studio.core.schema import load_json
    from studio.core.structure.counting import build_cost_table

    rep = Path(lm.folder or "", "report.json")
    if not lm.folder or not rep.is_file():
        raise StudioError(
            "--report needs a folder written by 'prune' or 'finetune' "
            "(it reads the folder's report.json)"
        )
    r = load_json(rep, "report")
    r = r if isinstance(r, dict) else {}

    def cost(m) -> dict:
        t = build_cost_table(m, torch.zeros(1, *lm.input_size)).totals().as_dict()
        return dict(t, bytes=model_bytes(m))

    orig = verbs.original_of(lm, trust=bool(a and a.trust))
    after = cost(lm.model)
    if orig is not None:
        before = cost(orig.model)
    elif isinstance((r.get("before") or {}).get("params"), (int, float)):
        before = dict(r["before"])
    else:
        raise StudioError(f"{lm.folder}: the original model it was pruned from does not load")
    facts = {
        "model": lm.name,
        "architecture": lm.arch,
        "input size": "×".join(map(str, lm.input_size)),
        "folder": str(lm.folder),
    }
    accuracy, runs = None, []
    b, f = r.get("before") or {}, r.get("after") or {}
    if isinstance(b.get("top1"), float) and isinstance(f.get("top1"), float):
        keys = [k for k in ("top1", "top5") if isinstance(b.get(k), float) and k in f]
        accuracy = {
            "before": {k: b[k] for k in keys},
            "after": {k: f[k] for k in keys},
            "versus": "before fine-tuning",
            "note": f"accuracy before and after fine-tuning, on {r.get('data', 'its data')}; "
            "the original's accuracy was not measured here (the window's Evaluate does)",
        }
        facts["fine-tuned"] = (
            f"{r.get('epochs_done', '?')} epochs on {r.get('data', '?')}, "
            f"{r.get('device', '?')} × {r.get('world_size', 1)}"
        )
    latency = None
    if a is not None and (a.data or a.latency):
        accuracy, latency = _measure_for_report(a, lm, orig)
    metrics = Path(lm.folder, "metrics.jsonl")
    if metrics.is_file():
        epochs = []
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and ev.get("type") == "epoch":
                epochs.append(ev)
        runs.append({"label": "fine-tuning", "epochs": epochs})
    widths = []
    if orig is not None:
        o = build_cost_table(orig.model, torch.zeros(1, *lm.input_size))
        c = build_cost_table(lm.model, torch.zeros(1, *lm.input_size))
        kinds = {row.name: row.kind for row in o.rows}
        for n in o.executed_order:
            if kinds.get(n) in ("conv", "linear"):
                i = c.index.get(n)
                widths.append((n, int(o.cout[o.index[n]]), int(c.cout[i]) if i is not None else 0))
    return ReportData(
        title=f"Pruning report — {lm.arch}",
        model=facts,
        before=before,
        after=after,
        accuracy=accuracy,
        latency=latency,
        steps=plan_steps(lm.plans),
        widths=widths,
        runs=runs,
        environment=environment(),
    )


def cmd_export(a) -> int:
    from studio.core import verbs
    from studio.core.errors import StudioError
    from studio.core.export.report import html_report
    from studio.core.model.loader import load as load_request

    if not (a.onnx or a.report or a.deploy):
        raise StudioError("nothing to export: give --onnx FILE, --deploy FILE and/or --report FILE")
    if (a.data or a.latency) and not a.report:
        raise StudioError("--data and --latency measure for --report: give --report FILE too")
    if a.channels_last and not (a.deploy or a.runtime == "deploy"):
        raise StudioError(
            "--channels-last is for --deploy (or --runtime deploy): give --deploy FILE.pt2 too"
        )
    if a.runtime != "torch" and not a.latency:
        raise StudioError("--runtime is for --latency: give --report FILE --data D --latency")
    outs = [str(Path(p).resolve()) for p in (a.onnx, a.deploy, a.report) if p]
    if len(set(outs)) != len(outs):
        raise StudioError("--onnx, --deploy and --report name the same file; give each its own")
    if a.deploy:
        from studio.core.export.deploy import check_deploy_path

        check_deploy_path(a.deploy)  # refused before any work, not after the ONNX
    lm = load_request(request(a))
    if a.report:
        out = html_report(a.report, _folder_report(lm, a))
        print(f"wrote {out}")
    if a.deploy:
        res = verbs.export_deploy(lm, a.deploy, channels_last=a.channels_last or "auto")
        timing = res.get("batch1_ms")
        chose = f"channels-last {'on' if res['channels_last'] else 'off'}" + (
            f" (batch 1 here: {timing['channels_last']:.1f} ms NHWC vs "
            f"{timing['contiguous']:.1f} ms NCHW)"
            if timing
            else ""
        )
        print(
            f"wrote {res['path']} ({res['batchnorm_folded']} BatchNorm folded, {chose}; "
            f"max |diff| {res['max_abs_diff']:.1e}); run it with "
            f"torch.export.load(path).module()"
        )
        if res["note"]:
            print(f"note: {res['note']}")
    if a.onnx:
        res = verbs.export_onnx(lm, a.onnx, deploy=bool(a.deploy))
        print(
            f"wrote {res['path']} (opset {res['opset']}, onnxruntime max |diff| "
            f"{res['max_abs_diff']:.1e}"
            + (f", {res['batchnorm_folded']} BatchNorm folded" if a.deploy else "")
            + ")"
        )
        if res["hint"]:
            print(f"note: {res['hint']} (CLI: --round-to 8)")
    return 0


def cmd_archs(a) -> int:
    from studio.core.model import zoo

    for name in zoo.architectures():
        why = zoo.unsupported_reason(name)
        print(name + (f"   (not supported: {why})" if why else ""))
    if a.timm:
        from studio.core.model import timm_source

        for name in timm_source.names():
            print(f"timm:{name}")
    return 0


def cmd_install_desktop(a) -> int:
    from studio import desktop

    if a.uninstall:
        gone = desktop.uninstall()
        print(f"removed {len(gone)} files" + "".join(f"\n  {p}" for p in gone))
        return 0
    paths = desktop.install(dry_run=a.dry_run)
    verb = "would write" if a.dry_run else "wrote"
    print(f"{verb} {len(paths)} files under {desktop.data_home()}")
    for p in paths:
        print(f"  {p}")
    if not a.dry_run:
        print(f"the menu entry runs: {desktop.launcher()} gui")
    return 0


COMMANDS = {
    "inspect": cmd_inspect,
    "plan": cmd_plan,
    "prune": cmd_prune,
    "evaluate": cmd_evaluate,
    "score": cmd_score,
    "finetune": cmd_finetune,
    "run": cmd_run,
    "sensitivity": cmd_sensitivity,
    "export": cmd_export,
    "archs": cmd_archs,
    "install-desktop": cmd_install_desktop,
}


def _files_of(folder) -> str:
    """The files the studio wrote into a model folder, as its model.json lists them."""
    try:
        files = json.loads((Path(folder) / "model.json").read_text())["files"]
        return ", ".join(str(f) for f in files)
    except (OSError, ValueError, KeyError, TypeError):
        return "model.json, weights.pt"
