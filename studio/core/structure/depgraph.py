"""The one adapter around Torch-Pruning's ``DependencyGraph``.

No other module of the studio imports ``torch_pruning``. The rest of the code sees plain
data: channel groups with their member layers and, for each member, which of the member's
channel indices follow each channel of the group's root layer.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from studio.core.structure.blocks import trace_only

log = logging.getLogger(__name__)


@dataclass
class GroupMember:
    """One layer (or loose parameter) whose channels move with a group.

    ``dim`` is ``"out"`` when the member's output channels are removed, ``"in"`` when its
    input channels are. ``idx[i]`` is a channel index of the member that follows channel
    ``root_idx[i]`` of the group's root layer.
    """

    name: str
    dim: str
    idx: np.ndarray
    root_idx: np.ndarray


@dataclass
class RawGroup:
    root: str
    channels: int
    members: list[GroupMember] = field(default_factory=list)
    channel_groups: int = 1  # >1 when a grouped (non-depthwise) conv is a member


def _quiet_graph(model: nn.Module, example_input: torch.Tensor):
    import torch_pruning as tp

    with warnings.catch_warnings():
        # Torch-Pruning warns about every loose nn.Parameter (e.g. ConvNeXt's layer scale);
        # its default, pruning the parameter's channel dim, is what we want.
        warnings.simplefilter("ignore")
        with torch.enable_grad(), trace_only():
            dg = tp.DependencyGraph().build_dependency(
                model, example_inputs=example_input, verbose=False
            )
    return dg


def _module_names(model: nn.Module, dg) -> dict[int, str]:
    names = {id(m): n for n, m in model.named_modules()}
    for p, n in dg._param_to_name.items():
        names[id(p)] = n
    return names


def _loose_dims(dg) -> dict[str, int]:
    out = {}
    for up in dg.unwrapped_parameters:
        out[dg._param_to_name[up.parameters]] = int(up.pruning_dim)
    return out


def _is_grouped_conv(m) -> bool:
    return isinstance(m, nn.modules.conv._ConvNd) and m.groups > 1 and not (
        m.groups == m.in_channels == m.out_channels
    )


def trace_groups(
    model: nn.Module, example_input: torch.Tensor, ignored: list[str]
) -> tuple[list[RawGroup], dict[str, int]]:
    """Every coupled channel group of ``model``.

    Groups whose output channels include an ``ignored`` layer (the classifier) are left
    out. Returns the groups and the loose parameters with their pruned dim.
    """
    dg = _quiet_graph(model, example_input)
    names = _module_names(model, dg)
    ignored_modules = [model.get_submodule(n) for n in ignored]
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    groups: list[RawGroup] = []
    for g in dg.get_all_groups(ignored_layers=ignored_modules):
        root_mod = g[0].dep.target.module
        raw = RawGroup(root=names[id(root_mod)], channels=0)
        members: dict[tuple[str, str], GroupMember] = {}
        for item in g:
            dep, idxs = item.dep, item.idxs
            target = dep.target.module
            name = names.get(id(target))
            if name is None:  # an operator node (add, cat, relu ...), not a layer
                continue
            dim = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
            key = (name, dim)
            idx = np.asarray(idxs, dtype=np.int64)
            ridx = np.asarray(item.root_idxs, dtype=np.int64)
            if key in members:  # reached twice (e.g. a layer reused): merge
                m = members[key]
                m.idx = np.concatenate([m.idx, idx])
                m.root_idx = np.concatenate([m.root_idx, ridx])
            else:
                members[key] = GroupMember(name, dim, idx, ridx)
            if _is_grouped_conv(target):
                raw.channel_groups = max(raw.channel_groups, int(target.groups))
        raw.channels = int(dg.get_out_channels(root_mod))
        raw.members = sorted(members.values(), key=lambda m: (order.get(m.name, 1 << 30), m.dim))
        raw.root = _first_producer(raw, model, order) or raw.root
        groups.append(raw)
    return groups, _loose_dims(dg)


def _first_producer(raw: RawGroup, model: nn.Module, order: dict[str, int]) -> str | None:
    """Name groups after their first producing conv/linear layer (in model order) whose
    channels map one-to-one onto the group's, so ids read naturally ("features.2.conv.0.0",
    not the depthwise conv Torch-Pruning happened to start from)."""
    for m in raw.members:  # already in model order
        if m.dim != "out" or m.name not in order:
            continue
        mod = model.get_submodule(m.name)
        if not isinstance(mod, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        if len(m.idx) == raw.channels and np.array_equal(np.sort(m.idx), np.arange(raw.channels)) \
                and np.array_equal(m.idx, m.root_idx):
            return m.name
    return None


def prune_in_place(
    model: nn.Module, example_input: torch.Tensor, removals: dict[str, list[int]]
) -> None:
    """Physically remove channels: ``removals`` maps a group's root layer name to the root
    channel indices to remove. Every coupled layer shrinks with it."""
    if not removals:
        return
    dg = _quiet_graph(model, example_input)
    for root, idxs in removals.items():
        if not idxs:
            continue
        module = model.get_submodule(root)
        fn = dg.get_pruner_of_module(module).prune_out_channels
        group = dg.get_pruning_group(module, fn, sorted(int(i) for i in idxs))
        if not dg.check_pruning_group(group):
            raise ValueError(f"removing {len(idxs)} channels would empty a layer of group {root}")
        group.prune(record_history=False)


def tp_count(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """Torch-Pruning's own (MACs, params) counter -- an outside reference for benchmarks."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example_input)
    return int(macs), int(params)


def tp_default_prune(model: nn.Module, example_input: torch.Tensor, ratio: float,
                     ignored: list[str]) -> nn.Module:
    """Torch-Pruning's default pruner (BasePruner + GroupMagnitudeImportance(p=2), local,
    uniform ratio) on a copy -- the outside reference the benchmarks compare against."""
    import copy

    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.BasePruner(
            m, example_input, importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=ratio, ignored_layers=[m.get_submodule(n) for n in ignored])
        pruner.step()
    return m
