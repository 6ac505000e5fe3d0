"""Recipes: a whole pruning job in one file (JSON or YAML), executed headless by
``pruning-studio run --recipe FILE`` -- also under torchrun. Schema: ``docs/recipes.md``.

A recipe names the model (never consent: only the user's own ``--trust`` grants it), the
data, and the steps in order -- apply a plan, select to a target, run a pipeline,
fine-tune -- and where to write. The window exports the steps its session took, so a run
replays everything the user did. The earlier shorthand (``plans``/``target``/``pipeline``/
``finetune`` at the top level) is read as the same steps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studio.core import criteria
from studio.core.errors import RecipeError
from studio.core.io import atomic_write_text
from studio.core.jobs import CancelToken, Events, progress
from studio.core.model.request import ModelRequest, ModelSpec
from studio.core.pipelines.config import PipelineConfig
from studio.core.plan.plan import PlanFile
from studio.core.plan.target import Target
from studio.core.schema import MiB, expect_format, load_json, parse
from studio.core.train.finetune import FinetuneConfig

FORMAT = "pruning-studio/recipe"
RECIPE_FORMAT = FORMAT
MAX_BYTES = 32 * MiB


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RecipeModel(ModelSpec):
    """What to load: a ``ModelSpec``; never consent."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_consent(cls, d):
        if isinstance(d, dict) and "trust" in d:
            raise ValueError(
                "a recipe cannot grant trust: only the user's own --trust (or "
                "the window's question) does; remove 'trust'"
            )
        return d

    def request(self, trust: bool = False, code_root: str | None = None) -> ModelRequest:
        return ModelRequest(**self.model_dump(), trust=trust, code_root=code_root, from_file=True)


class Step(_Strict):
    """Exactly one of: apply a plan, select to a target, run a pipeline, fine-tune."""

    plan: PlanFile | None = None
    target: Target | None = None
    pipeline: PipelineConfig | None = None
    finetune: FinetuneConfig | None = None
    # with a plan: refit the consumers of its pruned channels (a target or a pipeline
    # takes ``reconstruct`` itself)
    reconstruct: bool = False

    @model_validator(mode="after")
    def _one(self):
        given = [
            k for k in ("plan", "target", "pipeline", "finetune") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a step is exactly one of plan, target, pipeline, finetune "
                f"(got {', '.join(given) or 'none'})"
            )
        if self.finetune is not None and self.finetune.epochs < 1:
            raise ValueError("a fine-tuning step needs at least one epoch")
        if self.reconstruct and self.plan is None:
            raise ValueError(
                "'reconstruct' next to a step applies to a plan; a target or a pipeline "
                "takes it inside (target: {..., reconstruct: true})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(
            k for k in ("plan", "target", "pipeline", "finetune") if getattr(self, k) is not None
        )

    @property
    def needs_data(self) -> bool:
        return (
            self.pipeline is not None
            or self.finetune is not None
            or self.reconstruct
            or (
                self.target is not None
                and (criteria.needs_data(self.target.criterion) or self.target.reconstruct)
            )
        )


class Outputs(_Strict):
    dir: str = Field("out/recipe-run", min_length=1, max_length=4096)


class Recipe(_Strict):
    format: Literal["pruning-studio/recipe"]
    version: Literal[1]
    model: RecipeModel
    data: str | None = Field(None, max_length=4096)
    steps: list[Step] = Field(default_factory=list, max_length=1000)
    outputs: Outputs = Field(default_factory=Outputs)
    meta: dict[str, Any] = Field(default_factory=dict)
    # the earlier shorthand, read as steps (``all_steps``)
    applied_plans: list[PlanFile] = Field(default_factory=list, max_length=1000)
    plans: list[PlanFile] = Field(default_factory=list, max_length=1000)
    plan: PlanFile | None = None
    target: Target | None = None
    pipeline: PipelineConfig | None = None
    finetune: FinetuneConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, d):
        """The shorthand pipeline takes its target and criterion from ``target`` and its
        fine-tuning budget from ``finetune``; null fields mean absent."""
        if not isinstance(d, dict):
            return d
        d = {k: v for k, v in d.items() if v is not None}
        pipe, t = d.get("pipeline"), d.get("target")
        if isinstance(pipe, dict) and "finetune" not in pipe:
            pipe = dict(pipe)
            if isinstance(t, dict):
                if "flops" in t:
                    pipe.setdefault("flops_target", t["flops"])
                if "criterion" in t:
                    pipe.setdefault("criterion", t["criterion"])
                if "reconstruct" in t:
                    pipe.setdefault("reconstruct", t["reconstruct"])
            if isinstance(d.get("finetune"), dict):
                pipe["finetune"] = d["finetune"]
            d["pipeline"] = pipe
        return d

    @model_validator(mode="after")
    def _consistent(self):
        plans = self.plans or self.plan is not None
        if plans and (self.target is not None or self.pipeline is not None):
            raise ValueError(
                "give either 'plans' or a 'target'/'pipeline', not both "
                "('applied_plans' go first and combine with either)"
            )
        shorthand = (
            plans
            or self.applied_plans
            or self.target is not None
            or self.pipeline is not None
            or self.finetune is not None
        )
        if self.steps and shorthand:
            raise ValueError(
                "give 'steps', or the shorthand (plans/target/pipeline/finetune), not both"
            )
        if any(s.needs_data for s in self.all_steps()) and not self.data:
            raise ValueError(
                "data: pipelines, fine-tuning, data-driven criteria and reconstruction "
                "need a data source"
            )
        return self

    def all_steps(self) -> list[Step]:
        if self.steps:
            return list(self.steps)
        out = [Step(plan=p) for p in [*self.applied_plans, *self.plans]]
        if self.plan is not None:
            out.append(Step(plan=self.plan))
        if self.pipeline is not None:
            out.append(Step(pipeline=self.pipeline))
            return out  # the pipeline spends the fine-tuning budget itself
        if self.target is not None:
            out.append(Step(target=self.target))
        if self.finetune is not None and self.finetune.epochs > 0:
            out.append(Step(finetune=self.finetune))
        return out

    # -- files ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path) -> Recipe:
        return cls.from_dict(load_json(path, "recipe", MAX_BYTES, RecipeError), str(path))

    @classmethod
    def from_dict(cls, d, where: str = "recipe") -> Recipe:
        expect_format(d, FORMAT, "recipe", where, (1,), RecipeError)
        return parse(cls, d, where, RecipeError)

    def to_dict(self) -> dict:
        return self.model_dump(
            mode="json",
            exclude_defaults=True,
            exclude={"applied_plans", "plans", "plan"}
            if not (self.applied_plans or self.plans or self.plan)
            else None,
        )

    def save(self, path) -> None:
        from studio.core.outputs import check_file

        check_file(path)
        d = self.to_dict()
        d.setdefault("format", FORMAT)
        d.setdefault("version", 1)
        atomic_write_text(Path(path), json.dumps(d, indent=1))


def make_recipe(
    model: dict, steps: list[dict], *, data: str | None = None, output: str = "out/recipe-run"
) -> Recipe:
    """A recipe from a model record (``ModelRequest.record()``) and step dicts, e.g.
    ``{"plan": PLAN}`` or ``{"finetune": {...}}``."""
    return Recipe.from_dict(
        {
            "format": FORMAT,
            "version": 1,
            "model": model,
            "data": data,
            "steps": steps,
            "outputs": {"dir": output},
        }
    )


# -- running ---------------------------------------------------------------------------------
def _inputs(recipe_path, req: ModelRequest) -> list:
    out = [recipe_path, req.spec if Path(req.spec).exists() else None, req.weights]
    return [p for p in out if p]


def run_recipe(
    rec: Recipe,
    out_dir=None,
    *,
    trust: bool = False,
    code_root: str | None = None,
    recipe_path=None,
    cancel: CancelToken | None = None,
) -> Events:
    """Execute a recipe; returns its report. Only rank 0 writes (under torchrun). The
    output folder is checked before any work starts."""
    from studio.core import verbs
    from studio.core.model.loader import load
    from studio.core.outputs import check_folder
    from studio.core.plan.plan import Plan, validate
    from studio.core.plan.surgery import apply_plan
    from studio.core.structure.counting import count_model
    from studio.core.train.finetune import distributed

    rank, world = distributed()
    t0 = time.perf_counter()
    req = rec.model.request(trust=trust, code_root=code_root)
    out = Path(out_dir or rec.outputs.dir)
    if rank == 0:
        check_folder(out, _inputs(recipe_path, req))
    steps = rec.all_steps()
    total = len(steps) + 2
    yield progress(0, total, f"loading {req.label}")
    lm0 = load(req)
    s0 = verbs.map_structure(lm0)
    data = verbs.data_for(lm0, rec.data) if rec.data else None
    before = None
    if data is not None:
        before = (yield from verbs.evaluate(lm0, data, cancel=cancel))["top1"]
    lm, metrics, history = lm0, [], None
    for k, step in enumerate(steps, 1):
        yield progress(k, total, f"step {k}/{len(steps)}: {step.kind}")
        if step.plan is not None:
            plan = Plan.from_dict(step.plan.model_dump(), f"recipe step {k}")
            s = verbs.map_structure(lm)
            validate(plan, s)
            pruned = apply_plan(lm.model, s, plan)
            if step.reconstruct:
                yield from verbs.reconstruct(lm, s, plan, pruned, data, cancel=cancel)
            lm = lm.derive(pruned, plan)
        elif step.target is not None:
            s = verbs.map_structure(lm)
            plan = yield from verbs.make_plan(lm, s, step.target, data, cancel=cancel)
            pruned = apply_plan(lm.model, s, plan)
            if step.target.reconstruct:
                yield from verbs.reconstruct(
                    lm, s, plan, pruned, data, seed=step.target.seed, cancel=cancel
                )
            lm = lm.derive(pruned, plan)
        elif step.pipeline is not None:
            res = yield from verbs.run_pipeline(lm, data, step.pipeline, cancel)
            lm, history = res.lm, res.history
            metrics += res.metrics
        else:
            teacher = lm0 if step.finetune.kd_weight > 0 else None
            tuned = yield from verbs.finetune(
                lm, data, step.finetune, teacher=teacher, cancel=cancel, evaluate_first=False
            )
            if tuned.lm is not None:
                lm = tuned.lm
            metrics += tuned.metrics
    after = None
    if data is not None:
        after = yield from verbs.evaluate(lm, data, cancel=cancel)
    yield progress(total - 1, total, "writing outputs")
    cost = count_model(lm.model, lm.input_size)
    report = {
        "model": lm0.name,
        "data": rec.data,
        "before": s0.original.as_dict(),
        "after": cost.as_dict(),
        "top1_before": before,
        "top1_after": after and after["top1"],
        "top5_after": after and after["top5"],
        "plans_applied": len(lm.plans) - len(lm0.plans),
        "steps": [s.kind for s in steps],
        "pipeline": history and history.get("pipeline"),
        "seconds": time.perf_counter() - t0,
        "world_size": world,
    }
    if data is not None and data.note:
        report["note"] = data.note
    if rank == 0:
        extra = {
            "recipe.json": json.dumps(rec.to_dict(), indent=1),
            "metrics.jsonl": "".join(json.dumps(e) + "\n" for e in metrics),
        }
        if history is not None:
            from studio.core.model.saving import dumps

            extra["pipeline.json"] = dumps(history)
        verbs.save(out, lm, report=report, extra_files=extra)
    report["out"] = str(out)
    return report
