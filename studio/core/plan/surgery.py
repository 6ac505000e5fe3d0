"""Physical pruning: apply a plan to a copy of the model. Tensors shrink; nothing is masked.
The loaded original is never modified."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from studio.core.errors import SurgeryError
from studio.core.plan.plan import Plan, predict, validate
from studio.core.structure import depgraph
from studio.core.structure.counting import count_model
from studio.core.structure.map import StructureMap


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _agrees(got, want, approximate: bool) -> bool:
    """Counted and predicted cost agree exactly -- or, where layers work across the channel
    axis (their cost follows the channel count but is counted at the unpruned width), the
    parameters exactly and the FLOPs to within 1%, never above the prediction."""
    if got == want:
        return True
    return (
        approximate and got.params == want.params and (0.99 * want.flops <= got.flops <= want.flops)
    )


def layer_removals(s: StructureMap, plan: Plan) -> dict[tuple[str, str], list[int]]:
    """The plan as each layer's own channel indices to remove, by (layer, "out"|"in"), from
    the group maps of the unpruned model -- so every layer is pruned once, in one pass.
    Groups inside a dropped block are left alone (the block goes anyway)."""
    out: dict[tuple[str, str], set[int]] = {}
    for gid, idxs in plan.groups.items():
        g = s.group_index[gid]
        if not idxs or (g.block and g.block in plan.drop_blocks):
            continue
        removed = np.asarray(idxs, dtype=np.int64)
        for m in g.surgery_members():
            hit = m.idx[np.isin(m.root_idx, removed)]
            if len(hit):
                out.setdefault((m.layer, m.dim), set()).update(int(i) for i in hit)
    return {k: sorted(v) for k, v in out.items()}


def apply_plan(
    model: nn.Module, structure: StructureMap, plan: Plan, check: bool = True
) -> nn.Module:
    """A physically smaller copy of ``model`` with ``plan`` applied.

    Channel removals go first (on the full graph, so a stage's channels also leave the blocks
    about to be dropped), then dropped blocks become ``nn.Identity``. With ``check`` the
    result is run once and its counted cost must equal the plan's prediction exactly.
    """
    validate(plan, structure)
    was_training = model.training
    pruned = copy.deepcopy(model).eval()
    x = torch.zeros(1, *structure.input_size)
    try:
        depgraph.prune_layers(pruned, layer_removals(structure, plan), structure.loose_dims)
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
            raise SurgeryError(
                f"the pruned model's output shape {tuple(out.shape)} differs "
                f"from the original's {tuple(ref.shape)}"
            )
        got, want = count_model(pruned, structure.input_size), predict(plan, structure)
        if not _agrees(got, want, approximate=bool(structure.notes)):
            raise SurgeryError(
                f"the pruned model has {got.params:,} parameters and {got.flops:,} FLOPs, the "
                f"plan predicted {want.params:,} and {want.flops:,}: part of {structure.arch} "
                f"is not counted the way it is pruned (please report it with the model)"
            )
    pruned.train(was_training)
    return pruned
