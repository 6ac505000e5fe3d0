"""A selection target: which criterion, which share of the FLOPs to keep (or of the channels
to remove), scope, rounding, protected layers and blocks to drop. Recipes' ``target`` steps
and the command line's ``--flops-target`` / ``--ratio`` options both become one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studio.core.schema import CriterionName


class Target(BaseModel):
    """Select channels by a criterion to a FLOPs target or a ratio (and drop blocks)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    flops: float | None = Field(None, gt=0, lt=1)
    ratio: float | None = Field(None, gt=0, lt=1)
    criterion: CriterionName = "l1"
    scope: Literal["global", "uniform"] = "global"
    round_to: int = Field(1, ge=1, le=1024)
    protect: list[str] = Field(default_factory=list, max_length=10_000)
    drop_blocks: list[str] = Field(default_factory=list, max_length=10_000)
    batches: int = Field(8, ge=1, le=10_000)
    seed: int = Field(0, ge=0, lt=2**32)
    # refit the consumers of pruned channels by least squares (needs data)
    reconstruct: bool = False

    @model_validator(mode="after")
    def _one(self):
        if self.flops is not None and self.ratio is not None:
            raise ValueError("give flops or ratio, not both")
        if self.flops is None and self.ratio is None and not self.drop_blocks:
            raise ValueError("give flops (a FLOPs share to keep) or ratio")
        return self

    def selection(self) -> dict:
        """The keyword arguments of ``select`` / ``auto_plan``."""
        return {
            "flops_target": self.flops,
            "ratio": self.ratio,
            "scope": self.scope,
            "round_to": self.round_to,
            "protect": list(self.protect),
            "drop_blocks": list(self.drop_blocks),
            "seed": self.seed,
        }
