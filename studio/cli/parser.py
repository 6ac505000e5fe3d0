"""The command line's parser. Numbers are checked where they are read (a one-line error
naming the option); nothing here imports torch, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import json
import math

from studio import __version__
from studio.core.criteria import ALL as CRITERIA
from studio.core.export import RUNTIMES

DATA_HELP = (
    "demo (demo:N: another split of its digits), clutter (the harder task), synthetic, "
    "cifar10:DIR, cifar100:DIR, or an image folder (train/ and val/ class subfolders, or "
    "class subfolders split by --seed)"
)
MODEL_HELP = (
    "architecture (resnet18, timm:NAME), the user's code (FILE.py:NAME or "
    "package.module:NAME), 'demo', 'clutter', a checkpoint file, or a folder written by the "
    "studio"
)


def _runtime_arg(p) -> None:
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="torch",
        help="with --latency: time both models as they are (torch, default), under the "
        "deploy treatment of export --deploy (BatchNorm folded, channels-last where faster) "
        "or exported to ONNX and run in onnxruntime (BatchNorm folded, all graph "
        "optimisations) -- the same treatment for both",
    )


def _number(kind, lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse type: ``kind`` (int/float), finite, within [lo, hi] (or open ends)."""

    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a {'whole ' if kind is int else ''}number, got '{text}'"
            ) from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(
                f"must be {'above' if lo_open else 'at least'} {lo}, got {text}"
            )
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise argparse.ArgumentTypeError(
                f"must be {'below' if hi_open else 'at most'} {hi}, got {text}"
            )
        return v

    parse.__name__ = kind.__name__
    return parse


def FRACTION(text):  # noqa: N802 - an argparse type
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return v


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line (and where to read more) instead of the usage."""

    def error(self, message):  # noqa: D102
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


POSITIVE = _number(int, 1)
SEED = _number(int, 0, 2**32 - 1)


def _json_object(text):
    try:
        v = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e.msg}): {text[:60]}") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError('expected a JSON object, e.g. {"num_classes": 10}')
    return v


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "--arch", help="architecture of a state_dict checkpoint (resnet18, timm:NAME, FILE.py:NAME)"
    )
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="load this state_dict or .safetensors file into the architecture",
    )
    p.add_argument(
        "--model-args",
        type=_json_object,
        default={},
        metavar="JSON",
        help="arguments of the model's class or factory, e.g. '{\"num_classes\": 10}'",
    )
    p.add_argument(
        "--input-size",
        metavar="C,H,W",
        help="dummy input size (default: the model's own, 224 for ImageNet architectures); "
        "C,L for a sequence model (Conv1d)",
    )
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="pretrained weights of a "
        "torchvision or timm architecture (local cache first, then download)",
    )
    p.add_argument(
        "--trust",
        action="store_true",
        help="allow code to run: unpickling a "
        "pickled model, or model code a folder or recipe names (only for files "
        "you trust)",
    )
    p.add_argument(
        "--code-root", metavar="DIR", help="where the model code of a moved folder lives"
    )


def _selection_args(p: argparse.ArgumentParser, need_target: bool) -> None:
    p.add_argument("--criterion", choices=CRITERIA, help="importance criterion (default l1)")
    g = p.add_mutually_exclusive_group(required=need_target)
    g.add_argument(
        "--flops-target",
        type=FRACTION,
        metavar="F",
        help="keep this fraction of the FLOPs, 0 < F < 1",
    )
    g.add_argument(
        "--ratio",
        type=FRACTION,
        metavar="R",
        help="remove this fraction of the channels, 0 < R < 1",
    )
    g.add_argument(
        "--latency-target",
        type=FRACTION,
        metavar="L",
        help="keep this fraction of the layers' measured time (with --scope latency)",
    )
    p.add_argument(
        "--scope",
        choices=("global", "uniform", "latency"),
        default="global",
        help="rank channels across all groups (global), per group (uniform), or by the time "
        "they cost, measured here per layer (latency)",
    )
    p.add_argument(
        "--round-to",
        type=_number(int, 1, 1024),
        default=None,
        metavar="N",
        help="keep channel counts a multiple of N (8 suits GPUs and onnxruntime, 16 "
        "channels-last CPUs; default 1, or 16 with --scope latency)",
    )
    p.add_argument(
        "--latency-batch",
        type=_number(int, 1, 256),
        default=1,
        metavar="B",
        help="with --scope latency: the batch size layers are timed at (default 1)",
    )
    p.add_argument(
        "--max-ratio",
        type=_number(float, 0.01, 1.0),
        default=None,
        metavar="R",
        help="no group loses more than this fraction of its channels (default 1, or 0.5 "
        "with --scope latency)",
    )
    p.add_argument(
        "--protect",
        nargs="+",
        default=[],
        metavar="LAYER",
        help="layers whose output channels stay",
    )
    p.add_argument(
        "--drop-block",
        nargs="+",
        default=[],
        metavar="BLOCK",
        help="residual blocks to remove (they become identity)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="seed for the random criterion")
    p.add_argument(
        "--data", metavar="SOURCE", help="calibration data for data-driven criteria: " + DATA_HELP
    )
    p.add_argument(
        "--batches",
        type=_number(int, 1, 10_000),
        default=8,
        metavar="K",
        help="calibration batches for data-driven criteria",
    )
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda …")


def _data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--data", required=required, metavar="SOURCE", help=DATA_HELP)
    p.add_argument("--batch-size", type=_number(int, 1, 65536), default=64)
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda …")
    p.add_argument(
        "--download",
        action="store_true",
        help="let torchvision download CIFAR when it is missing (needs internet)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(
        prog="pruning-studio",
        description="Map a CNN's channel groups, stages and blocks, count its cost, and "
        "physically prune it.",
    )
    ap.add_argument("--version", action="version", version=f"pruning-studio {__version__}")
    ap.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs (anywhere on the line)"
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser(
        "inspect",
        help="layers, channel groups, stages, blocks, cost",
        description="Show a model's layers with their cost, its coupled "
        "channel groups, stages and residual blocks.",
    )
    _model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--fvcore", action="store_true", help="cross-check the MACs with fvcore")

    p = sub.add_parser(
        "plan",
        help="write a pruning plan (JSON) chosen by a criterion",
        description="Score channels and write the plan that reaches a FLOPs "
        "target or ratio; nothing is pruned.",
    )
    _model_args(p)
    _selection_args(p, need_target=True)
    p.add_argument("--out", required=True, metavar="PLAN.json")
    p.add_argument("--json", action="store_true", help="print the prediction as JSON")

    p = sub.add_parser(
        "prune",
        help="physically prune and save the smaller model",
        description="Apply a plan (from a file or chosen by a criterion) to a "
        "copy of the model and save it with plan.json and report.json. --out "
        "must be a new folder, an empty one, or one the studio wrote.",
    )
    _model_args(p)
    p.add_argument("--plan", metavar="PLAN.json", help="apply this plan")
    _selection_args(p, need_target=False)
    p.add_argument(
        "--reconstruct",
        action="store_true",
        help="refit the layers that consume pruned channels by least squares on "
        "calibration images from --data (He et al. 2017); prints top-1 before "
        "fine-tuning without and with it",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser(
        "evaluate",
        help="top-1/top-5/loss on the validation split, latency",
        description="Evaluate on the validation split; with --latency also "
        "measure forward time (and speed-up vs --baseline).",
    )
    _model_args(p)
    _data_args(p)
    p.add_argument("--latency", action="store_true", help="measure CPU/GPU forward latency")
    p.add_argument(
        "--latency-batch",
        type=_number(int, 1, 4096),
        default=16,
        metavar="N",
        help="the larger batch size measured besides 1",
    )
    p.add_argument(
        "--threads", type=_number(int, 1, 1024), default=None, help="CPU threads for latency"
    )
    _runtime_arg(p)
    p.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default=None,
        help="with --runtime deploy: NHWC memory format for both models; auto (default) "
        "times both formats on the original at batch 1",
    )
    p.add_argument(
        "--baseline",
        metavar="MODEL",
        help="unpruned model to compare with "
        "(default: the source of a pruned folder when it can be reloaded)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser(
        "score",
        help="importance scores of every channel (JSON)",
        description="Score every channel of every group with a criterion "
        "(data-driven ones over K calibration batches).",
    )
    _model_args(p)
    p.add_argument("--criterion", choices=CRITERIA, required=True)
    _data_args(p, required=False)
    p.add_argument("--batches", type=_number(int, 1, 10_000), default=8, metavar="K")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", required=True, metavar="SCORES.json")

    p = sub.add_parser(
        "finetune",
        help="fine-tune (recover accuracy); works under torchrun",
        description="Fine-tune a (pruned) model and save it with a metrics log "
        "and a report. Runs unchanged under torchrun (DDP).",
    )
    _model_args(p)
    _data_args(p)
    p.add_argument("--epochs", type=_number(int, 1, 100_000), required=True)
    p.add_argument("--lr", type=_number(float, 0, 10, lo_open=True), default=0.05)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--weight-decay", type=_number(float, 0, 1), default=5e-4)
    p.add_argument("--warmup", type=_number(float, 0, 10_000), default=0.5, metavar="EPOCHS")
    p.add_argument("--label-smoothing", type=_number(float, 0, 1, hi_open=True), default=0.0)
    p.add_argument("--teacher", metavar="MODEL", help="distil from this (unpruned) model")
    p.add_argument(
        "--kd-weight",
        type=_number(float, 0, 1),
        default=None,
        help="share of the loss from the teacher (default 0.5 with --teacher)",
    )
    p.add_argument("--kd-temperature", type=_number(float, 0, 100, lo_open=True), default=4.0)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--max-steps", type=POSITIVE, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser(
        "run",
        help="execute a recipe headless (works under torchrun)",
        description="Execute a recipe (JSON or YAML; docs/recipes.md): load, "
        "apply its steps (plans, targets, pipelines, fine-tuning), write the "
        "outputs.",
    )
    p.add_argument("--recipe", required=True, metavar="FILE")
    p.add_argument("--out", metavar="DIR", help="override the recipe's outputs.dir")
    p.add_argument(
        "--trust",
        action="store_true",
        help="allow the code the recipe's model "
        "names (a pickle, model code) to run -- only for recipes you trust",
    )
    p.add_argument("--code-root", metavar="DIR", help="where the recipe's model code lives")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser(
        "sensitivity",
        help="accuracy per group as its removal ratio grows",
        description="Per channel group, held-out accuracy (after BN "
        "re-estimation) at removal ratios 0.1 ... 0.9; with --flops-target "
        "also the suggested per-group ratios as a plan.",
    )
    _model_args(p)
    _data_args(p)
    p.add_argument("--criterion", choices=CRITERIA, default="l1")
    p.add_argument("--ratios", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    p.add_argument("--flops-target", type=FRACTION, metavar="F")
    p.add_argument("--plan-out", metavar="PLAN.json", help="write the suggested plan here")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", required=True, metavar="FILE.json")

    p = sub.add_parser(
        "export",
        help="ONNX (checked in onnxruntime), a deploy program, an HTML report",
        description="Export a model to ONNX, verified against PyTorch in "
        "onnxruntime; --deploy writes the deploy-treated model (BatchNorm folded into the "
        "convolutions, channels-last where it is faster here) as a torch.export program "
        "that runs without the studio or the model's code, and makes --onnx export the "
        "folded model; --report writes a stakeholder report for a folder "
        "written by 'prune' or 'finetune' (its report.json); with --data it "
        "measures top-1/top-5 of the original and of this model for it, with --latency "
        "their speed side by side.",
    )
    _model_args(p)
    p.add_argument("--onnx", metavar="FILE.onnx")
    p.add_argument(
        "--deploy",
        metavar="FILE.pt2",
        help="the deploy-treated model as a torch.export program (torch.export.load(f).module())",
    )
    p.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default=None,
        help="for --deploy and --runtime deploy: NHWC memory format; auto times both at "
        "batch 1 (default)",
    )
    p.add_argument("--report", metavar="FILE.html")
    _data_args(p, required=False)
    p.add_argument(
        "--latency",
        action="store_true",
        help="for --report: time the original and this model side by side",
    )
    _runtime_arg(p)
    p.add_argument("--threads", type=_number(int, 1, 1024), default=None, help=argparse.SUPPRESS)

    p = sub.add_parser(
        "archs",
        help="list the architectures the studio accepts",
        description="torchvision architectures (and, with --timm, timm's).",
    )
    p.add_argument("--timm", action="store_true", help="also list timm's architectures")

    p = sub.add_parser(
        "install-desktop",
        help="add the studio to this user's application menu (Linux)",
        description="Install the application entry, icons, file types (.pt/.pth checkpoints, "
        "recipes) and AppStream metainfo under $XDG_DATA_HOME (~/.local/share), so the "
        "studio is in the menu and opens files from the file manager. Never replaces a file "
        "it did not write.",
    )
    p.add_argument("--uninstall", action="store_true", help="remove what it installed")
    p.add_argument("--dry-run", action="store_true", help="list the files, write nothing")
    sub.add_parser("gui", help="open the window (the default with no command)", add_help=False)
    return ap
