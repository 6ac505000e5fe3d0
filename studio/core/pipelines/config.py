"""A pipeline's settings, checked when made (from a recipe, the CLI or the window)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from studio.core.schema import CriterionName
from studio.core.train.finetune import FinetuneConfig

PIPELINES = (
    "oneshot",
    "iterative",
    "sampling",
    "search",
    "sensitivity",
    "abc",
    "amc",
    "metapruning",
)


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    pipeline: Literal[
        "oneshot", "iterative", "sampling", "search", "sensitivity", "abc", "amc", "metapruning"
    ] = "iterative"
    flops_target: float = Field(0.5, gt=0, lt=1)
    criterion: CriterionName = "l1"
    # iterative
    rounds: int = Field(3, ge=1, le=100)
    # geometric | linear | explicit FLOPs shares per round (decreasing, the last = target)
    schedule: Literal["geometric", "linear"] | list[float] = "geometric"
    # sampling / search
    candidates: int = Field(16, ge=2, le=10_000)  # sampling: how many; search: population
    generations: int = Field(4, ge=1, le=1_000)
    mutation: float = Field(0.15, ge=0, le=1)
    min_keep: float = Field(0.1, gt=0, le=1)  # smallest per-group keep ratio a candidate draws
    importance_weighted: bool = False
    # abc: trials without improvement before a food source is abandoned
    abc_limit: int = Field(3, ge=1, le=1_000)
    # amc: episodes of the agent (the first quarter act at random)
    episodes: int = Field(40, ge=2, le=10_000)
    # metapruning: PruningNet training epochs and its hidden width
    meta_epochs: int = Field(2, ge=1, le=1_000)
    meta_hidden: int = Field(16, ge=1, le=256)
    # the PruningNet's learning rate: at the fine-tuning rate (0.05) its shared weights
    # drift (cluttered digits, 15% FLOPs: candidates 52% held-out vs 82% at 0.01)
    meta_lr: float = Field(0.01, gt=0, le=10)
    # the cheap evaluator
    bn_batches: int = Field(10, ge=1, le=1_000)
    holdout_fraction: float = Field(0.15, gt=0, le=0.9)
    eval_batches: int | None = Field(None, ge=1)
    # sensitivity
    ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    sensitivity_bn_batches: int = Field(4, ge=1, le=1_000)  # a curve needs ranks only
    # fine-tuning: the total budget in epochs, shared by all rounds of a pipeline
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    seed: int = Field(0, ge=0, lt=2**32)
    score_batches: int = Field(8, ge=1, le=10_000)
    # refit the consumers of pruned channels by least squares before fine-tuning
    reconstruct: bool = False

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v):
        if isinstance(v, list) and (
            not v or any(not 0 < x < 1 for x in v) or sorted(v, reverse=True) != v
        ):
            raise ValueError("an explicit schedule is a decreasing list of FLOPs shares in (0, 1)")
        return v

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v):
        if not 1 <= len(v) <= 50 or any(not 0 < r < 1 for r in v):
            raise ValueError("ratios are 1 to 50 shares, each strictly between 0 and 1")
        return tuple(sorted(set(v)))

    def as_dict(self) -> dict:
        d = self.model_dump()
        d["ratios"] = list(self.ratios)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "pipeline") -> PipelineConfig:
        from studio.core.errors import InputError
        from studio.core.schema import parse

        return parse(cls, d, where, InputError)
