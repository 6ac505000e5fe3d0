"""A selection target: which criterion, which share of the FLOPs to keep (or of the channels
to remove), scope, rounding, protected layers and blocks to drop. Recipes' ``target`` steps
and the command line's ``--flops-target`` / ``--ratio`` options both become one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studio.core.schema import CriterionName, record_error

MAX_LATENCY_BATCH = 256  # the batch layers are timed at: inputs of this batch are made


class Target(BaseModel):
    """Select channels by a criterion to a FLOPs target, a ratio or (latency-aware scope) a
    share of the measured latency, and drop blocks."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    flops: float | None = Field(None, gt=0, lt=1)
    ratio: float | None = Field(None, gt=0, lt=1)
    # the share of the predicted (measured per layer) latency to keep; scope "latency" only
    latency: float | None = Field(None, gt=0, lt=1)
    criterion: CriterionName = "l1"
    scope: Literal["global", "uniform", "latency"] = "global"
    round_to: int = Field(1, ge=1, le=1024)
    # the most of its channels one group may lose (default: 1, or 0.5 with scope latency)
    max_ratio: float | None = Field(None, gt=0, le=1)
    # the batch the latency-aware scope times layers at
    latency_batch: int = Field(1, ge=1, le=MAX_LATENCY_BATCH)
    protect: list[str] = Field(default_factory=list, max_length=10_000)
    drop_blocks: list[str] = Field(default_factory=list, max_length=10_000)
    batches: int = Field(8, ge=1, le=10_000)
    seed: int = Field(0, ge=0, lt=2**32)
    # refit the consumers of pruned channels by least squares (needs data)
    reconstruct: bool = False

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in ("flops", "ratio", "latency") if getattr(self, k) is not None]
        if len(given) > 1:
            both = " and ".join(given)
            raise record_error(f"give one of flops, ratio or latency, not both {both}")
        if not given and not self.drop_blocks:
            raise record_error("give flops (a FLOPs share to keep), ratio or latency")
        if self.latency is not None and self.scope != "latency":
            raise record_error("a latency target needs scope 'latency'")
        if "latency_batch" in self.model_fields_set and self.scope != "latency":
            raise record_error("latency_batch needs scope 'latency' (layers are timed at it)")
        if self.scope == "latency":
            if self.ratio is not None:
                raise record_error("scope 'latency' selects to flops or latency, not a ratio")
            if "round_to" not in self.model_fields_set:
                self.round_to = LATENCY_STEP
            elif self.round_to < MIN_LATENCY_STEP:
                raise record_error(
                    f"scope 'latency' moves in steps of round_to channels: give "
                    f"{MIN_LATENCY_STEP} or more ({LATENCY_STEP} suits channels-last CPUs)"
                )
        return self

    def selection(self) -> dict:
        """The keyword arguments of ``select_plan`` / ``auto_plan``."""
        return {
            "flops_target": self.flops,
            "ratio": self.ratio,
            "latency_target": self.latency,
            "scope": self.scope,
            "round_to": self.round_to,
            "max_ratio": self.max_ratio,
            "latency_batch": self.latency_batch,
            "protect": list(self.protect),
            "drop_blocks": list(self.drop_blocks),
            "seed": self.seed,
        }


LATENCY_STEP = 16  # the latency-aware scope's default step (oneDNN's channel block)
MIN_LATENCY_STEP = 8  # finer steps time mostly noise, and take many more moves
