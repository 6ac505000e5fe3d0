"""Recipes: a whole pruning job in one file (JSON, or YAML when PyYAML is installed),
executed headless by ``pruning-studio run --recipe FILE`` -- also under torchrun.

Schema (``docs/recipes.md``)::

    format: pruning-studio/recipe      # required
    version: 1                         # required
    model: {spec: demo}                # or {spec: ckpt.pth, arch: resnet18,
                                       #     input_size: "3,224,224", trust: false}
    data: demo                         # any --data source; needed by data criteria,
                                       # pipelines and fine-tuning
    plans: [PLAN, ...]                 # plans to apply in order (as written by the window), or
    target: {flops: 0.3, criterion: l1, scope: global, round_to: 1}
    pipeline: {pipeline: iterative, rounds: 3, ...}   # optional: PipelineConfig fields
    finetune: {epochs: 10, lr: 0.05, kd_weight: 0.5}  # optional: FinetuneConfig fields
    outputs: {dir: out/run}
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.export.common import RECIPE_FORMAT
from studio.core.jobs import CancelToken, Events, progress

KEYS = {"format", "version", "model", "data", "plans", "plan", "target", "pipeline",
        "finetune", "outputs", "applied_plans", "meta"}


class RecipeError(StudioError):
    """The recipe file is malformed; the message names the field."""


def load_recipe(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecipeError(f"recipe not found: {path}") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise RecipeError("YAML recipes need PyYAML (pip install pyyaml)") from None
        try:
            rec = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RecipeError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    else:
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecipeError(f"{path} is not valid JSON: {e}") from None
    return validate_recipe(rec)


def validate_recipe(rec) -> dict:
    if not isinstance(rec, dict) or rec.get("format") != RECIPE_FORMAT:
        raise RecipeError(f"not a recipe (expected \"format\": \"{RECIPE_FORMAT}\")")
    if rec.get("version") != 1:
        raise RecipeError(f"recipe version {rec.get('version')} is not supported (1 is)")
    unknown = set(rec) - KEYS
    if unknown:
        raise RecipeError(f"unknown recipe field(s): {', '.join(sorted(unknown))}")
    if not isinstance(rec.get("model"), dict):
        raise RecipeError("recipe field 'model' must be an object, e.g. {\"spec\": \"demo\"}")
    plans = list(rec.get("plans") or []) + ([rec["plan"]] if rec.get("plan") else [])
    if plans and (rec.get("target") or rec.get("pipeline")):
        raise RecipeError("give either 'plans' or a 'target'/'pipeline', not both "
                          "('applied_plans' go first and combine with either)")
    if (rec.get("pipeline") or (rec.get("finetune") and rec["finetune"].get("epochs"))) \
            and not rec.get("data"):
        raise RecipeError("pipelines and fine-tuning need 'data'")
    t = rec.get("target") or {}
    if t and not 0 < float(t.get("flops", 0)) < 1:
        raise RecipeError("target.flops must lie strictly between 0 and 1")
    return rec


def _plans(rec: dict) -> list[dict]:
    plans = list(rec.get("applied_plans") or []) + list(rec.get("plans") or [])
    if rec.get("plan"):
        plans.append(rec["plan"])
    return plans


def model_request(model: dict) -> dict:
    """A recipe's ``model`` (a load request, or a loaded model's ``source``) -> load args."""
    if "spec" in model:
        return {"spec": model["spec"], "arch": model.get("arch"),
                "input_size": model.get("input_size"), "trust": model.get("trust", False),
                "pretrained": model.get("pretrained", False)}
    if model.get("demo"):
        return {"spec": "demo"}
    if model.get("kind") == "pickle":
        return {"spec": model["file"], "trust": model.get("trust", False)}
    if model.get("file"):
        return {"spec": model["file"], "arch": model.get("arch")}
    if model.get("arch"):
        return {"spec": model["arch"]}
    raise RecipeError("recipe 'model' names no model (give {\"spec\": ...})")


def run_recipe(rec: dict, out_dir=None, cancel: CancelToken | None = None) -> Events:
    """Execute a recipe; returns its report. Only rank 0 writes (under torchrun)."""
    from studio.core import load_model, map_structure, save_pruned
    from studio.core.train.data import load_data, loader
    from studio.core.train.evaluate import evaluate
    from studio.core.train.finetune import FinetuneConfig, distributed, finetune
    from studio.core.model.loader import LoadedModel
    from studio.core.pipelines.common import PipelineConfig, run_pipeline
    from studio.core.plan.plan import Plan, validate
    from studio.core.plan.surgery import apply_plan
    from studio.core.verbs import auto_plan, compute_scores

    rec = validate_recipe(rec)
    rank, world = distributed()
    t0 = time.perf_counter()
    req = model_request(rec["model"])
    yield progress(0, 4, f"loading {req['spec']}")
    lm0 = load_model(req["spec"], arch=req.get("arch"), trust=req.get("trust", False),
                     pretrained=req.get("pretrained", False), input_size=req.get("input_size"))
    s0 = map_structure(lm0)
    data = None
    if rec.get("data"):
        data = load_data(rec["data"], lm0.input_size, num_classes=lm0.num_classes)
        data.check_model(lm0.model, lm0.input_size)
    before = None
    if data is not None:
        before = yield from evaluate(lm0.model, loader(data.val, 256), cancel=cancel)
    history, metrics = None, []
    lm = lm0
    ft_cfg = FinetuneConfig(**(rec.get("finetune") or {"epochs": 0}))
    yield progress(1, 4, "pruning")

    def apply(lm, pd):
        plan = Plan.from_dict(pd)
        s = map_structure(lm)
        validate(plan, s)
        model = apply_plan(lm.model, s, plan)
        return LoadedModel(model, lm.source, lm.name, lm.arch, lm.input_size,
                           lm.plans + [plan.to_dict()])

    for pd in rec.get("applied_plans") or []:  # what the session had applied already
        lm = apply(lm, pd)
    s_cur = map_structure(lm)
    if len(_plans(rec)) > len(rec.get("applied_plans") or []):
        for pd in _plans(rec)[len(rec.get("applied_plans") or []):]:
            lm = apply(lm, pd)
    elif rec.get("pipeline"):
        t = rec.get("target") or {}
        pc = dict(rec["pipeline"])
        pc.setdefault("flops_target", t.get("flops", 0.5))
        pc.setdefault("criterion", t.get("criterion", "l1"))
        cfg = PipelineConfig.from_dict({**pc, "finetune": rec.get("finetune") or {}})
        res = yield from run_pipeline(lm, data, cfg, cancel)
        lm, history = res["model"], res["history"]
        ft_cfg = FinetuneConfig(epochs=0)  # the pipeline spent the fine-tuning budget
    elif rec.get("target"):
        t = rec["target"]
        crit = t.get("criterion", "l1")
        scores = yield from compute_scores(lm, s_cur, crit, data, cancel=cancel)
        plan = auto_plan(lm, s_cur, crit, flops_target=float(t["flops"]),
                         scope=t.get("scope", "global"), round_to=int(t.get("round_to", 1)),
                         protect=t.get("protect", ()), drop_blocks=t.get("drop_blocks", ()),
                         scores=scores)
        model = apply_plan(lm.model, s_cur, plan)
        lm = LoadedModel(model, lm.source, lm.name, lm.arch, lm.input_size,
                         lm.plans + [plan.to_dict()])
    if ft_cfg.epochs and data is not None:
        yield progress(2, 4, "fine-tuning")
        teacher = lm0.model if ft_cfg.kd_weight > 0 else None
        gen = finetune(lm.model, data, ft_cfg, teacher=teacher, cancel=cancel)
        while True:
            try:
                ev = next(gen)
            except StopIteration:
                break
            if ev.get("type") in ("step", "epoch"):
                metrics.append(ev)
            yield ev
    after = None
    if data is not None:
        after = yield from evaluate(lm.model, loader(data.val, 256), cancel=cancel)
    yield progress(3, 4, "writing outputs")
    from studio.core.structure.counting import count_model

    cost = count_model(lm.model, lm.input_size)
    report = {"model": lm0.name, "data": rec.get("data"), "before": s0.original.as_dict(),
              "after": cost.as_dict(), "top1_before": before and before["top1"],
              "top1_after": after and after["top1"], "top5_after": after and after["top5"],
              "plans_applied": len(lm.plans) - len(lm0.plans),
              "pipeline": (rec.get("pipeline") or {}).get("pipeline"),
              "seconds": time.perf_counter() - t0, "world_size": world}
    if data is not None and data.note:
        report["note"] = data.note
    out = Path(out_dir or (rec.get("outputs") or {}).get("dir") or "out/recipe-run")
    if rank == 0:
        extra = {"recipe.json": json.dumps(rec, indent=1),
                 "metrics.jsonl": "".join(json.dumps(e) + "\n" for e in metrics)}
        if history is not None:
            extra["pipeline.json"] = json.dumps(_jsonable(history), indent=1)
        new = report["plans_applied"]
        # save_pruned appends the last plan to its parent's history
        parent = LoadedModel(lm.model, lm.source, lm0.name, lm.arch, lm.input_size,
                             lm.plans[:-1] if new else lm.plans, folder=lm0.folder)
        save_pruned(out, parent, lm.model, Plan.from_dict(lm.plans[-1]) if new else None,
                    report, extra)
    report["out"] = str(out)
    return report


def _jsonable(o):
    import numpy as np

    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return o
