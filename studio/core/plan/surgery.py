"""Physical pruning: apply a plan to a copy of the model. Tensors shrink; nothing is masked.
The loaded original is never modified."""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from studio.core.errors import SurgeryError
from studio.core.plan.plan import Plan, predict, validate
from studio.core.structure import depgraph
from studio.core.structure.counting import count_model
from studio.core.structure.map import StructureMap

log = logging.getLogger(__name__)


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def apply_plan(model: nn.Module, structure: StructureMap, plan: Plan,
               check: bool = True) -> nn.Module:
    """A physically smaller copy of ``model`` with ``plan`` applied.

    Channel removals go first (on the full graph, so a stage's channels also leave the blocks
    about to be dropped), then dropped blocks become ``nn.Identity``. With ``check`` the
    result is run once and its counted cost must equal the plan's prediction exactly.
    """
    validate(plan, structure)
    was_training = model.training
    pruned = copy.deepcopy(model).eval()
    x = torch.zeros(1, *structure.input_size)
    removals = {}
    for gid, idxs in plan.groups.items():
        g = structure.group_index[gid]
        if idxs and not (g.block and g.block in plan.drop_blocks):
            removals[gid] = idxs
    try:
        depgraph.prune_in_place(pruned, x, removals)
    except Exception as e:  # Torch-Pruning failing on an exotic wiring
        raise SurgeryError(f"channel surgery failed on {structure.arch}: {e}") from e
    for b in plan.drop_blocks:
        _set_submodule(pruned, b, nn.Identity())
    if check:
        with torch.no_grad():
            try:
                ref = model.eval()(x)
                out = pruned(x)
            except Exception as e:
                raise SurgeryError(f"the pruned {structure.arch} does not run: {e}") from e
            finally:
                model.train(was_training)
        if out.shape != ref.shape:
            raise SurgeryError(f"the pruned model's output shape {tuple(out.shape)} differs "
                               f"from the original's {tuple(ref.shape)}")
        got, want = count_model(pruned, structure.input_size), predict(plan, structure)
        if got != want:
            raise SurgeryError(f"pruned model costs {got}, the plan predicted {want}: "
                               f"{structure.arch} has wiring the studio does not follow")
    pruned.train(was_training)
    return pruned
