"""Does the model's own code let each group shrink? Some code fixes channel counts in ways
no graph shows (``x.view(-1, 1536)`` before a classifier, sizes kept in attributes): a
group whose removal breaks the forward is found here, once, when the model is mapped, and
marked as not prunable -- with where the code broke -- instead of failing at Apply time.

One probe surgery takes a unit from every prunable group at once and runs the result; only
when that fails are the groups bisected (a few more surgeries) to find the culprits.
"""

from __future__ import annotations

import logging
import traceback

import torch
from torch import nn

from studio.core.plan.plan import Plan, emptied_layers
from studio.core.structure.map import StructureMap

log = logging.getLogger(__name__)
MAX_PROBES = 64  # surgeries one map may spend finding culprits


def _where(e: BaseException) -> str:
    """The last frame of the traceback outside torch: where the model's code broke."""
    frames = [
        f
        for f in traceback.extract_tb(e.__traceback__)
        if "/torch/" not in f.filename and "/studio/" not in f.filename
    ]
    return f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""


def _probe_plan(s: StructureMap, gids: list[str]) -> Plan:
    plan = Plan.empty(s)
    for gid in gids:
        g = s.group_index[gid]
        chans = g.channels_of([g.units - 1]).tolist()  # the last unit: any one will do
        plan.set_removed(gid, chans)
    for name in emptied_layers(plan, s):  # never empty a layer: leave such groups out
        row = s.table.index[name]
        for gid in list(plan.groups):
            if any(m.row == row for m in s.group_index[gid].members):
                plan.set_removed(gid, [])
    return plan


def _breaks(model: nn.Module, s: StructureMap, gids: list[str]) -> BaseException | None:
    from studio.core.plan.surgery import apply_plan

    plan = _probe_plan(s, gids)
    if plan.is_empty():
        return None
    try:
        pruned = apply_plan(model, s, plan, check=False)
        with torch.no_grad():
            pruned(torch.zeros(1, *s.input_size))
    except Exception as e:  # noqa: BLE001 - any failure of the user's code counts
        return e
    return None


def probe(model: nn.Module, s: StructureMap) -> list[str]:
    """Mark the groups whose removal breaks the model's forward; returns their ids."""
    candidates = [g.id for g in s.groups if g.prunable and g.units >= 2]
    if not candidates or _breaks(model, s, candidates) is None:
        return []
    found: list[str] = []
    budget = [MAX_PROBES]

    def search(gids: list[str]) -> None:
        if not gids or budget[0] <= 0:
            return
        budget[0] -= 1
        err = _breaks(model, s, gids)
        if err is None:
            return
        if len(gids) == 1:
            g = s.group_index[gids[0]]
            first = str(err).strip().splitlines()[0][:140] if str(err).strip() else ""
            g.prunable, g.reason = (
                False,
                (
                    f"removing its channels breaks the model's own code{_where(err)}: "
                    f"{type(err).__name__}: {first}"
                ),
            )
            found.append(g.id)
            return
        half = len(gids) // 2
        search(gids[:half])
        search(gids[half:])

    search(candidates)
    if budget[0] <= 0:
        log.warning("probe budget spent on %s; groups left unchecked", s.arch)
    return found


def map_checked(model: nn.Module, input_size, arch: str = "model") -> StructureMap:
    """The structure map, with the groups the code fixes marked (see the module
    docstring) -- from the structure cache when this architecture was mapped before."""
    from studio.core.structure import cache

    key = cache.structure_key(model, input_size)
    s = cache.lookup(model, input_size, arch, key)
    if s is not None:
        return s
    s = StructureMap(model, input_size, arch)
    probe(model, s)
    cache.store(s, model, key)
    return s
