"""The verbs: the one place where core steps are chained into what a user does -- open,
score, plan, apply, evaluate, fine-tune, run a pipeline, analyse sensitivity, save and
export. The CLI, the window and recipes call only these.

Long verbs are generators of typed progress events (``studio.core.jobs``) that return a
result record; none of them changes a model it is given: pruning and fine-tuning work on
copies and return derived ``LoadedModel`` children.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from studio.core import criteria
from studio.core.errors import LoadError, StudioError
from studio.core.jobs import Cancelled, CancelToken, Events, progress
from studio.core.model.loader import LoadedModel, load
from studio.core.model.request import ModelRequest
from studio.core.plan.plan import Plan, predict, validate
from studio.core.plan.probe import map_checked
from studio.core.plan.reconstruct import IMAGES as RECONSTRUCT_IMAGES
from studio.core.plan.selection import select
from studio.core.plan.surgery import apply_plan
from studio.core.structure.counting import build_cost_table, count_model
from studio.core.structure.map import StructureMap

score = criteria.score  # the one scoring path (a generator)

log = logging.getLogger(__name__)


# -- results --------------------------------------------------------------------------------
@dataclass
class Opened:
    lm: LoadedModel
    structure: StructureMap
    scores: dict = field(default_factory=dict)  # criterion -> {group id: GroupScores}


@dataclass
class Applied:
    lm: LoadedModel  # the pruned child
    structure: StructureMap
    scores: dict
    report: dict
    plan: Plan


@dataclass
class Tuned:
    lm: LoadedModel | None  # the fine-tuned child (None: cancelled before any epoch ended)
    report: dict
    metrics: list  # step and epoch events, for metrics.jsonl
    cancelled: bool


@dataclass
class PipelineRun:
    lm: LoadedModel
    structure: StructureMap
    scores: dict
    history: dict
    cancelled: bool
    metrics: list = field(default_factory=list)


# -- open -----------------------------------------------------------------------------------
def map_structure(lm: LoadedModel) -> StructureMap:
    """The structure map of a loaded model, or a one-line ``LoadError``."""
    try:
        return map_checked(lm.model, lm.input_size, lm.arch)
    except StudioError:
        raise
    except Exception as e:  # tracing failures on exotic models
        raise LoadError(
            f"could not map the channel groups of {lm.name}: "
            f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
        ) from e


def open_model(req: ModelRequest, cancel: CancelToken | None = None) -> Events:
    """Load, map and score (L1: cheap) -- what the window shows first. Returns ``Opened``."""
    yield progress(0, 3, f"loading {req.label}")
    lm = load(req)
    if cancel is not None:
        cancel.check()
    yield progress(1, 3, "mapping groups, stages and blocks")
    s = map_structure(lm)
    if cancel is not None:
        cancel.check()
    yield progress(2, 3, "scoring (l1)")
    sc = yield from score(lm.model, s, "l1")
    return Opened(lm, s, {"l1": sc})


def open_prefetched(prefetch, req: ModelRequest, cancel: CancelToken | None = None) -> Events:
    """Follow an ``open_model(req)`` started earlier in a ``jobs.Prefetch``; should it fail
    other than with a studio error (a crash in its thread), open again here."""
    try:
        return (yield from prefetch.follow(cancel))
    except (StudioError, Cancelled):
        raise
    except Exception:  # noqa: BLE001
        log.warning("the early open of %s failed; opening again", req.label, exc_info=True)
        return (yield from open_model(req, cancel))


def original_of(lm: LoadedModel, trust: bool = False) -> LoadedModel | None:
    """The unpruned model ``lm`` was derived from, with its own weights (pretrained, a
    weights file), or None when it cannot be reloaded (gone, or it would need consent)."""
    if not lm.plans or not lm.origin:
        return None
    try:
        req = ModelRequest.from_record(lm.origin, "origin", trust=trust, input_size=lm.input_size)
        if lm.folder is None:  # the user opened it in this process: no file speaks for it
            req = req.replace(from_file=False)
        return load(req)
    except StudioError:
        return None


def data_for(lm: LoadedModel, spec: str, *, seed: int = 0, download: bool = False):
    """The data source ``spec`` for ``lm``'s input, checked against the model."""
    from studio.core.train.data import load_data

    data = load_data(spec, lm.input_size, num_classes=lm.num_classes, seed=seed, download=download)
    data.check_model(lm.model, lm.input_size)
    return data


# -- plan ----------------------------------------------------------------------------------
def auto_plan(lm: LoadedModel, s: StructureMap, criterion: str = criteria.DEFAULT, **kw) -> Plan:
    """Select to a ratio or FLOPs target by ``scores`` (computed with a parameter-driven
    ``criterion`` when not given): ``select_plan``'s keywords, run to its end. The
    latency-aware scope times layers first; ``select_plan``, a job, reports that progress."""
    from studio.core.jobs import run

    return run(select_plan(lm, s, criterion, **kw))


def select_plan(
    lm: LoadedModel,
    s: StructureMap,
    criterion: str = criteria.DEFAULT,
    *,
    ratio: float | None = None,
    flops_target: float | None = None,
    scope: str = "global",
    round_to: int = 1,
    protect=(),
    drop_blocks=(),
    seed: int = 0,
    scores=None,
    max_ratio: float | None = None,
    latency_target: float | None = None,
    latency_batch: int = 1,
    cancel: CancelToken | None = None,
) -> Events:
    """``auto_plan`` as a job: the latency-aware scope times layers, which takes a while."""
    criteria.check(criterion)
    for b in drop_blocks:  # check blocks before spending time on scores
        if b not in s.block_index:
            raise StudioError(f"unknown residual block '{b}'")
    if latency_target is not None and scope != "latency":
        raise StudioError("a latency target needs the latency-aware scope (--scope latency)")
    if scores is None:
        if criteria.needs_data(criterion):
            raise StudioError(
                f"criterion '{criterion}' is data-driven: compute its scores first (verbs.score)",
                fix="data",
            )
        scores = yield from score(lm.model, s, criterion, seed=seed, cancel=cancel)
    meta = {"criterion": criterion, "seed": seed}
    if scope == "latency":
        from studio.core.plan.latency import latency_plan

        if ratio is not None:
            raise StudioError(
                "the latency-aware scope selects to a FLOPs or latency target, not a ratio"
            )
        return (
            yield from latency_plan(
                lm.model,
                s,
                scores,
                batch=latency_batch,
                flops_target=flops_target,
                latency_target=latency_target,
                step=round_to,
                max_ratio=0.5 if max_ratio is None else max_ratio,
                protect=protect,
                drop_blocks=drop_blocks,
                meta=meta,
                cancel=cancel,
            )
        )
    return select(
        s,
        scores,
        ratio=ratio,
        flops_target=flops_target,
        scope=scope,
        round_to=round_to,
        protect=protect,
        drop_blocks=drop_blocks,
        max_ratio=1.0 if max_ratio is None else max_ratio,
        meta=meta,
    )


def make_plan(
    lm: LoadedModel,
    s: StructureMap,
    target,
    data=None,
    *,
    batch_size: int = 64,
    device="cpu",
    cancel: CancelToken | None = None,
) -> Events:
    """Score with the ``target``'s criterion (data-driven ones on ``data``), then select to
    it (a ``studio.core.plan.target.Target``). Returns the plan."""
    for b in target.drop_blocks:  # fail before the scores, not after
        if b not in s.block_index:
            raise StudioError(f"unknown residual block '{b}'")
    if target.flops is None and target.ratio is None and target.latency is None:
        plan = Plan.empty(s)
        plan.drop_blocks = sorted(set(target.drop_blocks))
        validate(plan, s)
        return plan
    sc = yield from score(
        lm.model,
        s,
        target.criterion,
        data,
        batches=target.batches,
        batch_size=batch_size,
        device=device,
        seed=target.seed,
        cancel=cancel,
    )
    plan = yield from select_plan(
        lm, s, target.criterion, scores=sc, cancel=cancel, **target.selection()
    )
    if data is not None and criteria.needs_data(target.criterion):
        plan.meta.update(data=data.name, batches=target.batches)
    return plan


# -- apply ---------------------------------------------------------------------------------
def prune(lm: LoadedModel, s: StructureMap, plan: Plan) -> tuple[nn.Module, dict]:
    """Physically prune a copy of ``lm.model``; returns it with its report."""
    t0 = time.perf_counter()
    pruned = apply_plan(lm.model, s, plan)
    report = build_report(lm, s, plan, pruned)
    report["surgery_seconds"] = round(time.perf_counter() - t0, 3)
    return pruned, report


def reconstruct(
    lm: LoadedModel,
    s: StructureMap,
    plan: Plan,
    pruned: nn.Module,
    data,
    *,
    images: int = RECONSTRUCT_IMAGES,
    seed: int = 0,
    cancel: CancelToken | None = None,
) -> Events:
    """Refit, in place, the layers of ``pruned`` that consume pruned channels so their
    outputs match ``lm``'s (least squares on ``images`` calibration images -- never the
    validation split). Returns ``{"layers", "images", "error_before", "error_after"}``
    (mean relative output error of the refit layers)."""
    from studio.core.plan.reconstruct import reconstruct as refit
    from studio.core.train.data import loader

    if data is None:
        raise StudioError("reconstruction needs calibration data: give a data source", fix="data")
    x = next(iter(loader(data.calibration, images, shuffle=True, seed=seed)))[0]
    res = yield from refit(lm.model, pruned, s, plan, x, seed=seed, cancel=cancel)
    errs = list(res["error"].values())
    return {
        "layers": res["layers"],
        "images": len(x),
        "error_before": float(sum(e[0] for e in errs) / len(errs)) if errs else 0.0,
        "error_after": float(sum(e[1] for e in errs) / len(errs)) if errs else 0.0,
    }


def apply(
    lm: LoadedModel,
    s: StructureMap,
    plan: Plan,
    cancel: CancelToken | None = None,
    reconstruct_on: str | None = None,
) -> Events:
    """Prune, then map and score the child (what the window shows next). Returns
    ``Applied``. ``reconstruct_on``: a data source spec -- refit the consumers of pruned
    channels on its calibration images (``reconstruct``)."""
    yield progress(0, 3, "pruning (surgery)")
    pruned, report = prune(lm, s, plan)
    if reconstruct_on:
        data = data_for(lm, reconstruct_on)
        report["reconstruction"] = yield from reconstruct(lm, s, plan, pruned, data, cancel=cancel)
    child = lm.derive(pruned, plan)
    if cancel is not None:
        cancel.check()
    yield progress(1, 3, "mapping the pruned model")
    s2 = map_structure(child)
    yield progress(2, 3, "scoring (l1)")
    sc = yield from score(pruned, s2, "l1")
    return Applied(child, s2, {"l1": sc}, report, plan)


def _change(before: int, after: int) -> float:
    return round(after / before, 6) if before else 1.0


def build_report(lm: LoadedModel, s: StructureMap, plan: Plan, pruned: nn.Module) -> dict:
    import torch

    validate(plan, s)
    table = build_cost_table(pruned, torch.zeros(1, *s.input_size))
    after = table.totals()
    before = s.original
    widths_after = {n: (int(table.cin[i]), int(table.cout[i])) for i, n in enumerate(table.names)}
    layers = []
    for r in s.table.layer_rows():
        if r.kind not in ("conv", "linear"):
            continue
        a = widths_after.get(r.name)
        layers.append(
            {
                "name": r.name,
                "type": r.type,
                "before": [r.in_channels, r.out_channels],
                "after": list(a) if a else None,
            }
        )
    from studio.core.export.report import model_bytes

    return {
        "model": lm.name,
        "arch": lm.arch,
        "input_size": list(s.input_size),
        "before": dict(before.as_dict(), bytes=model_bytes(lm.model)),
        "after": dict(after.as_dict(), bytes=model_bytes(pruned)),
        "predicted": predict(plan, s).as_dict(),
        "ratio": {
            k: _change(getattr(before, k), getattr(after, k)) for k in ("params", "flops", "macs")
        },
        "plan": {
            "groups_pruned": sum(1 for v in plan.groups.values() if v),
            "channels_removed": plan.n_removed(),
            "blocks_dropped": plan.drop_blocks,
            "meta": plan.meta,
        },
        "layers": layers,
    }


# -- evaluate ------------------------------------------------------------------------------
def evaluate(
    lm: LoadedModel,
    data,
    *,
    baseline: LoadedModel | None = None,
    latency: bool = False,
    latency_batch: int = 16,
    threads: int | None = None,
    device="cpu",
    batch_size: int = 128,
    cancel: CancelToken | None = None,
    runtime: str = "torch",
    channels_last: str = "auto",
) -> Events:
    """Top-1/top-5/loss of ``lm`` (and of ``baseline``) on the validation split, their
    cost, the change, and -- with ``latency`` -- measured latency side by side, both models
    under ``runtime`` (torch, deploy or onnxruntime: ``export.deploy.timing_calls``)."""
    from studio.core.train.data import loader
    from studio.core.train.evaluate import compare_latency, measure_latency
    from studio.core.train.evaluate import evaluate as run_eval

    val = loader(data.val, batch_size)
    cost = count_model(lm.model, lm.input_size)
    bt = count_model(baseline.model, lm.input_size) if baseline is not None else None
    timed = None
    if latency:  # first: a model the runtime cannot take is refused before the long part
        yield progress(0, 1, f"measuring latency in {runtime}")
        kw = dict(
            batch_sizes=(1, latency_batch),
            device=device,
            threads=threads,
            runtime=runtime,
            channels_last=channels_last,
        )
        if baseline is not None:
            timed = compare_latency(
                baseline.model, lm.model, lm.input_size, cost.flops / bt.flops, **kw
            )
        else:
            timed = measure_latency(lm.model, lm.input_size, **kw)
    res = {
        "model": lm.name,
        "data": data.name,
        **(yield from run_eval(lm.model, val, device, cancel)),
        **cost.as_dict(),
    }
    if data.note:
        res["note"] = data.note
    if baseline is not None:
        b = yield from run_eval(baseline.model, val, device, cancel)
        res["baseline"] = {"model": baseline.name, **b, **bt.as_dict()}
        res["change"] = {
            "top1": res["top1"] - b["top1"],
            "top5": res["top5"] - b["top5"],
            "params_ratio": res["params"] / bt.params,
            "flops_ratio": res["flops"] / bt.flops,
        }
    if timed is not None:
        res["latency"] = timed
    return res


# -- fine-tune ------------------------------------------------------------------------------
def finetune(
    lm: LoadedModel,
    data,
    cfg,
    *,
    teacher: LoadedModel | None = None,
    cancel: CancelToken | None = None,
    evaluate_first: bool = True,
) -> Events:
    """Fine-tune a copy of ``lm`` (with ``teacher`` distilling when ``cfg.kd_weight`` > 0).
    Returns ``Tuned``: the child holds the best epoch's weights. A cancel returns
    ``cancelled`` with the partial child (or None before the first epoch ended) -- the
    caller decides whether to keep it."""
    from studio.core.train.data import loader
    from studio.core.train.evaluate import evaluate as run_eval
    from studio.core.train.evaluate import pick_device
    from studio.core.train.finetune import finetune as train

    if cfg.epochs < 1:
        raise StudioError(f"fine-tuning needs at least one epoch (got {cfg.epochs})")
    if teacher is not None and cfg.kd_weight > 0:
        _check_teacher(teacher, lm)
    model = copy.deepcopy(lm.model)
    before = None
    if evaluate_first:
        before = yield from run_eval(model, loader(data.val, 256), pick_device(cfg.device), cancel)
    metrics: list = []
    from studio.core.jobs import record

    use_teacher = teacher.model if (teacher is not None and cfg.kd_weight > 0) else None
    result = yield from record(train(model, data, cfg, teacher=use_teacher, cancel=cancel), metrics)
    best = result["best"]
    epochs_done = len(result["history"])
    report = {
        "model": lm.name,
        "data": data.name,
        "before": before,
        "after": (
            {
                "top1": best["top1"],
                "top5": best.get("top5"),
                "loss": best.get("loss"),
                "best_epoch": best["epoch"],
            }
            if epochs_done
            else None
        ),
        "last_epoch": result["history"][-1] if epochs_done else None,
        "epochs_done": epochs_done,
        "cost": count_model(model, lm.input_size).as_dict(),
        "world_size": result["world_size"],
        "device": result["device"],
        "config": result["config"],
        "teacher": teacher.name if use_teacher else None,
        "cancelled": result["cancelled"],
        "seconds": result["seconds"],
    }
    if data.note:
        report["note"] = data.note
    child = lm.derive(model, None, "fine-tuned") if epochs_done else None
    return Tuned(child, report, metrics, result["cancelled"])


def _check_teacher(teacher: LoadedModel, lm: LoadedModel) -> None:
    """A teacher must take the student's input and predict the same classes."""
    import torch

    x = torch.zeros(1, *lm.input_size)
    try:
        with torch.no_grad():
            t, s = teacher.model.eval()(x), lm.model.eval()(x)
    except Exception as e:  # noqa: BLE001
        raise StudioError(
            f"the teacher {teacher.name} does not run on the student's input "
            f"{list(lm.input_size)}: {str(e).splitlines()[0][:120]}"
        ) from None
    if t.shape != s.shape:
        raise StudioError(
            f"the teacher {teacher.name} has {t.shape[-1]} outputs, the "
            f"student {s.shape[-1]}: distillation needs the same classes"
        )


# -- pipelines ------------------------------------------------------------------------------
def run_pipeline(lm: LoadedModel, data, cfg, cancel: CancelToken | None = None) -> Events:
    """Run a pipeline on ``lm``; returns ``PipelineRun`` (its child mapped and scored).
    ``cancelled`` marks a partial result (the last finished round, the best candidate so
    far, not fine-tuned)."""
    from studio.core.jobs import record
    from studio.core.pipelines import run_pipeline as run

    metrics: list = []
    res = yield from record(run(lm, data, cfg, cancel), metrics)
    child = res["model"]
    s2 = map_structure(child)
    sc = yield from score(child.model, s2, "l1")
    return PipelineRun(child, s2, {"l1": sc}, res["history"], res["cancelled"], metrics)


def sensitivity(
    lm: LoadedModel, data, cfg, flops_target: float | None = None, cancel: CancelToken | None = None
) -> Events:
    """The sensitivity analysis (JSON-ready), with the plan it suggests for
    ``flops_target`` under ``"plan"`` (a ``Plan``) when one is given."""
    from studio.core.pipelines.sensitivity import analyse, suggest_ratios

    s, sc, res = yield from analyse(lm, data, cfg, cancel)
    if flops_target is not None:
        res["plan"] = suggest_ratios(s, sc, res, flops_target)
        res["suggested"] = res["plan"].meta["ratios"]
    return res


# -- save and export ------------------------------------------------------------------------
def save(
    out,
    lm: LoadedModel,
    *,
    plan: Plan | None = None,
    report: dict | None = None,
    extra_files: dict[str, str] | None = None,
    model: nn.Module | None = None,
) -> Path:
    """Write ``lm`` (or ``model``, ``lm`` after ``plan``) as a studio folder."""
    from studio.core.model.saving import save_pruned

    if model is None:
        if plan is not None:
            raise StudioError("save: a plan needs the pruned model it produced")
        # a child carries its own plans already: save it as a model of its parent
        return save_pruned(
            out, _parent_view(lm), lm.model, _last_plan(lm), report or {}, extra_files
        )
    return save_pruned(out, lm, model, plan, report or {}, extra_files)


def _last_plan(lm: LoadedModel) -> Plan | None:
    return Plan.from_dict(lm.plans[-1]) if lm.plans else None


def _parent_view(lm: LoadedModel) -> LoadedModel:
    """``lm`` with its last plan taken off (save_pruned appends the plan it is given)."""
    view = copy.copy(lm)
    view.plans = list(lm.plans[:-1])
    return view


def export_onnx(lm: LoadedModel, path, deploy: bool = False) -> dict:
    """ONNX, checked in onnxruntime; ``deploy``: of the model with BatchNorm folded."""
    from studio.core.export.deploy import fold_batchnorm
    from studio.core.export.onnx import export_onnx as export

    model, folded = fold_batchnorm(lm.model)[:2] if deploy else (lm.model, 0)
    return dict(export(model, lm.input_size, path, inputs=_inputs_of(lm)), batchnorm_folded=folded)


def export_deploy(lm: LoadedModel, path, channels_last: str = "auto") -> dict:
    """The deploy-treated model as a torch.export program (see ``export/deploy.py``)."""
    from studio.core.export.deploy import export_deploy as export

    return export(lm.model, lm.input_size, path, inputs=_inputs_of(lm), channels_last=channels_last)


def _inputs_of(lm: LoadedModel) -> list:
    """Files an export must never overwrite."""
    out = [lm.folder]
    if lm.request is not None and Path(lm.request.spec).exists():
        out.append(lm.request.spec)
    if lm.origin and lm.origin.get("weights"):
        out.append(lm.origin["weights"])
    return [p for p in out if p]


__all__ = [
    "Applied",
    "Opened",
    "PipelineRun",
    "Tuned",
    "apply",
    "auto_plan",
    "select_plan",
    "build_report",
    "data_for",
    "evaluate",
    "finetune",
    "make_plan",
    "map_structure",
    "open_model",
    "open_prefetched",
    "original_of",
    "prune",
    "run_pipeline",
    "save",
    "score",
    "sensitivity",
]
