"""``pruning-studio``: the command line. Heavy imports (torch) happen inside commands so
``--help`` is instant; errors print one line (``--debug`` shows the traceback)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from studio import __version__

CRITERIA = ("l1", "l2", "group_norm", "fpgm", "bn_scale", "random")  # studio.core.criteria


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


def _human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


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

    p = sub.add_parser("archs", help="list the torchvision architectures the studio accepts")
    return ap


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
        from studio.core.fvcore_count import fvcore_macs

        d["fvcore_macs"] = fvcore_macs(lm.model, s.input_size)
    if a.json:
        print(json.dumps(d, indent=1))
        return 0
    print(f"{lm.name}   input {'x'.join(map(str, s.input_size))}   "
          f"params {_human(s.original.params)}   FLOPs {_human(s.original.flops)}   "
          f"MACs {_human(s.original.macs)}   (1 MAC = 2 FLOPs)")
    if a.fvcore:
        print(f"fvcore MACs {_human(d['fvcore_macs'])} "
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
              f"{r['groups']:>4d} {hw:>9s} {_human(r['params']):>9s} {_human(r['flops']):>9s}"
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
    return auto_plan(lm, s, a.criterion or "l1", ratio=a.ratio, flops_target=a.flops_target,
                     scope=a.scope, round_to=a.round_to, protect=a.protect,
                     drop_blocks=a.drop_block, seed=a.seed)


def _summary(before: dict, after: dict, label: str) -> str:
    parts = []
    for k, name in (("params", "params"), ("flops", "FLOPs"), ("macs", "MACs")):
        parts.append(f"{name} {_human(before[k])} -> {_human(after[k])} "
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


def cmd_archs(a) -> int:
    from studio.core import zoo

    for name in zoo.architectures():
        why = zoo.unsupported_reason(name)
        print(name + (f"   (not supported: {why})" if why else ""))
    return 0


COMMANDS = {"inspect": cmd_inspect, "plan": cmd_plan, "prune": cmd_prune, "archs": cmd_archs}


def main(argv: list[str] | None = None) -> int:
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
