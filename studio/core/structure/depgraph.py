"""The one adapter around Torch-Pruning's ``DependencyGraph``.

No other module of the studio imports ``torch_pruning``. The rest of the code sees plain
data: channel groups with their member layers and, for each member, which of the member's
channel indices follow each channel of the group's root layer.

What the adapter adds to Torch-Pruning (1.6):

- **Refusals first.** One forward pass watched by a ``TorchFunctionMode`` finds what the
  graph cannot follow -- channel shuffles, pixel shuffles, attention (a matrix product of two
  activations) -- and names the layer, in a second, before any graph walk.
- **Concatenations, exactly and once.** The channel sizes of every ``torch.cat`` are recorded
  during the trace (Torch-Pruning infers them by walking the graph, recursively, and again
  for every group: quadratic on DenseNet, and wrong on DPN's dual path); the index mapping
  is computed once per graph instead of once per group.
- **Splits by their edges.** A ``torch.split``/``chunk`` output is matched to the chunk it
  carries by the autograd edge's output number (Torch-Pruning assumes one consumer per chunk,
  in order; CSP and Res2Net blocks break that).
- **A budget.** Growing a group stops with a one-line refusal instead of running forever
  (ReXNet's partial residuals).
- **One-pass surgery.** A whole plan is applied layer by layer from the group maps computed on
  the unpruned model, each layer pruned once -- no graph rebuilt per group -- and extra
  per-channel parameters of a layer (a weight-standardised conv's gain) shrink with it.
- **No timm unless the model needs it.** Torch-Pruning imports timm only to hook timm's
  attention layers in its own FLOP counter, which the studio does not use (fvcore counts);
  importing timm decorates its models with ``torch.compiler.disable`` and so loads
  ``torch._dynamo``: 1.6 s of the first open of any model. Its import of timm is answered
  "not installed" (``_NoTimmForTorchPruning``); a timm model still loads timm itself.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from studio.core.errors import UnsupportedModel
from studio.core.structure.blocks import trace_only

log = logging.getLogger(__name__)


class _NoTimmForTorchPruning:
    """A meta-path finder: ``import timm`` run by Torch-Pruning's op counter module, and only
    there, fails as if timm were absent (it catches that and skips its timm hooks). Other
    importers of timm, on any thread, are not affected; if timm is already loaded, Torch-
    Pruning gets it from ``sys.modules`` and this is never asked. When timm is imported
    later in a process whose op counter went without it, the counter gets its timm hooks
    then (``_AfterTimm``), so its counts are what they would have been."""

    COUNTER = "torch_pruning.utils.op_counter"

    def __init__(self):
        self._asking = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "timm" or getattr(self._asking, "on", False):
            return None
        f = sys._getframe(1)
        while f is not None:
            if f.f_code.co_name == "<module>" and f.f_globals.get("__name__") == self.COUNTER:
                raise ModuleNotFoundError("timm is not imported for Torch-Pruning", name="timm")
            f = f.f_back
        counter = sys.modules.get(self.COUNTER)
        if counter is None or getattr(counter, "has_timm", True):
            return None
        self._asking.on = True
        try:
            spec = importlib.util.find_spec("timm")
        finally:
            self._asking.on = False
        if spec is not None and spec.loader is not None:
            spec.loader = _AfterTimm(spec.loader)
        return spec


class _AfterTimm:
    """timm's own loader, then the op counter's timm hooks (what Torch-Pruning registers
    when it imports timm itself)."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        counter = sys.modules.get(_NoTimmForTorchPruning.COUNTER)
        if counter is None or getattr(counter, "has_timm", True):
            return
        try:
            hook = counter.timm_multihead_attention_counter_hook
            counter.MODULES_MAPPING.update(
                {
                    module.models.vision_transformer.Attention: hook,
                    module.models.swin_transformer.WindowAttention: hook,
                }
            )
        except AttributeError:  # another Torch-Pruning or timm: counts as before
            log.debug("timm hooks not added to Torch-Pruning's op counter", exc_info=True)
            return
        counter.timm, counter.has_timm = module, True


if not any(isinstance(f, _NoTimmForTorchPruning) for f in sys.meta_path):
    sys.meta_path.insert(0, _NoTimmForTorchPruning())

GROUP_BUDGET_S = 60.0  # all groups of a model; far above any real CNN (ResNet-50: 0.1 s)
_STEPS_PER_NODE = 64  # propagation steps per graph node before a group is called divergent


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
    fixed: str = ""  # why its channel count cannot change (a split of fixed sizes ...)
    # root channels that must go together (one set id per channel), or None when each can
    # go alone: a layer that receives the same channel twice (Ghost modules, via a concat
    # and an add) couples them
    orbit: np.ndarray | None = None


# -- watching one forward pass ---------------------------------------------------------------
class _Watch(TorchFunctionMode):
    """Records concatenations' channel sizes and the ops the graph cannot follow, with the
    module that ran them."""

    def __init__(self, where: list[str], modules: dict | None = None):
        super().__init__()
        self.where = where
        self.modules = modules or {}  # name -> module, for what runs where
        self.fixed_ops: dict = {}  # grad_fn of a convolution with fixed (buffer) weights
        self.cat_sizes: dict = {}
        self.op_where: dict = {}  # grad_fn of a split / slice -> the module that ran it
        self.moves: dict = {}  # grad_fn of a reshape that turns channels into another axis
        self.problems: list[tuple[str, str]] = []

    def _flag(self, what: str) -> None:
        layer = self.where[-1] if self.where else "(the model's forward)"
        if not any(p[0] == layer for p in self.problems):
            self.problems.append((layer or "(the model's forward)", what))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        try:
            self._inspect(func, name, args, kwargs, out)
        except Exception:  # noqa: BLE001 - watching must never break the forward
            pass
        return out

    def _inspect(self, func, name, args, kwargs, out) -> None:
        if func in (torch.cat, torch.concat, torch.concatenate):
            self._cat(args, kwargs, out)
        elif name in _SPLITS:
            outs = out if isinstance(out, (tuple, list)) else [out]
            for o in outs:
                if isinstance(o, torch.Tensor) and o.grad_fn is not None:
                    self.op_where.setdefault(o.grad_fn, self._here())
        elif name in ("view", "reshape", "unflatten", "flatten") and args:
            self._reshape(args[0], out)
        elif name in ("conv1d", "conv2d", "conv3d"):
            self._conv(args, kwargs, out)
        elif name in ("transpose", "swapaxes", "swapdims", "permute") and args:
            if _is_shuffle(name, args, kwargs):
                self._flag("a channel shuffle (channels transposed between groups)")
        elif name in _REFUSED:
            self._flag(_REFUSED[name])
        elif name in ("matmul", "bmm", "__matmul__", "einsum") and _two_activations(args):
            self._flag(
                "a product of two activations (self-attention, or attention pooling as in a "
                "global-context block)"
            )

    def _here(self) -> str:
        return self.where[-1] if self.where else ""

    def _cat(self, args, kwargs, out) -> None:
        tensors = args[0] if args else kwargs.get("tensors")
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        if (
            isinstance(out, torch.Tensor)
            and out.dim() >= 2
            and dim in (1, 1 - out.dim())
            and out.grad_fn is not None
        ):
            self.cat_sizes[out.grad_fn] = [int(t.shape[1]) for t in tensors]

    def _conv(self, args, kwargs, out) -> None:
        """A convolution outside a conv layer, with weights that are no parameter (a blur
        filter kept as a buffer): its channel count is fixed."""
        weight = args[1] if len(args) > 1 else kwargs.get("weight")
        here = self.modules.get(self._here())
        if (
            isinstance(out, torch.Tensor)
            and out.grad_fn is not None
            and not isinstance(weight, nn.Parameter)
            and not isinstance(here, nn.modules.conv._ConvNd)
        ):
            self.fixed_ops[out.grad_fn] = self._here()

    def _reshape(self, x, out) -> None:
        """Reshapes that carry the whole channel axis to another axis (an ECA layer's 1-D
        conv across channels: (B, C) -> (B, 1, C) and back) keep no channel identity the
        graph could follow, but adapt to any channel count: the graph is cut there.
        Reshapes that spread channels over several axes ((B, rC) -> (B, r, C), split
        attention) are left to the probe (``studio.core.plan.probe``): some code adapts to
        a new count, some does not."""
        if not (isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor)):
            return
        if x.dim() < 2 or out.dim() < 2 or out.grad_fn is None or x.shape[1] == out.shape[1]:
            return
        where = self.where[-1] if self.where else ""
        flat_in, flat_out = int(np.prod(x.shape[1:])), int(np.prod(out.shape[1:]))
        if (out.dim() == 2 and out.shape[1] == flat_in) or (
            x.dim() == 2 and x.shape[1] == flat_out and out.shape[1] > 1
        ):
            return  # flatten before a classifier and back: Torch-Pruning maps these
        a, b = _single_axis(x), _single_axis(out)
        if a is not None and b is not None and a[1] == b[1] and a[0] != b[0]:
            self.moves[out.grad_fn] = where


def _single_axis(t: torch.Tensor) -> tuple[int, int] | None:
    """(axis, size) when exactly one non-batch axis is longer than 1."""
    dims = [(i, int(s)) for i, s in enumerate(t.shape[1:], 1) if s > 1]
    return dims[0] if len(dims) == 1 else None


_SPLITS = ("split", "chunk", "tensor_split", "split_with_sizes", "__getitem__", "narrow", "unbind")
_REFUSED = {
    "channel_shuffle": "a channel shuffle",
    "native_channel_shuffle": "a channel shuffle",
    "pixel_shuffle": "a pixel shuffle (channels moved into space)",
    "pixel_unshuffle": "a pixel shuffle (channels moved into space)",
    "scaled_dot_product_attention": "self-attention (the model is a transformer or a hybrid)",
}


def _is_shuffle(name, args, kwargs) -> bool:
    """A transpose or permute that swaps the two axes a channel split made: (B, g, C/g, ...)
    -> (B, C/g, g, ...) -- ShuffleNet's channel shuffle."""
    x = args[0]
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        return False
    if name == "permute":
        perm = args[1:] if len(args) > 2 else (args[1] if len(args) > 1 else kwargs.get("dims"))
        return [p % 5 for p in perm][1:3] == [2, 1]
    dims = list(args[1:3]) or [kwargs.get("dim0"), kwargs.get("dim1")]
    return {d % 5 for d in dims} == {1, 2}


def _two_activations(args) -> bool:
    ts = [a for a in args if isinstance(a, torch.Tensor)]
    if any(isinstance(a, (list, tuple)) for a in args):  # einsum(eq, [a, b])
        ts += [
            a
            for seq in args
            if isinstance(seq, (list, tuple))
            for a in seq
            if isinstance(a, torch.Tensor)
        ]
    acts = [t for t in ts if not isinstance(t, nn.Parameter) and t.dim() >= 3]
    return len(acts) >= 2


def _watched(model: nn.Module, run, ref: list | None = None):
    """``run()`` under the watch, with the name of the innermost running module known
    (``ref`` receives the watch before ``run`` starts)."""
    where: list[str] = []
    names = {m: n for n, m in model.named_modules()}

    def enter(mod, _args) -> None:
        where.append(names[mod])

    def leave(_mod, _args, _out) -> None:  # returns None: the output stays
        if where:
            where.pop()

    handles = []
    for m in names:
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    watch = _Watch(where, {n: m for m, n in names.items()})
    if ref is not None:
        ref.append(watch)
    try:
        with watch:
            run()
    finally:
        for h in handles:
            h.remove()
    return watch


def _module_refusal(model: nn.Module) -> tuple[str, str] | None:
    for name, m in model.named_modules():
        if isinstance(m, torch.jit.ScriptModule):
            return name or "the model", "TorchScript (compiled code the studio cannot trace)"
        if isinstance(m, nn.ChannelShuffle):
            return name, "a channel shuffle"
        if isinstance(m, (nn.PixelShuffle, nn.PixelUnshuffle)):
            return name, "a pixel shuffle (channels moved into space)"
        if isinstance(m, nn.MultiheadAttention):
            return name, "self-attention (nn.MultiheadAttention)"
    return None


def _refusal(found: tuple[str, str]) -> UnsupportedModel:
    layer, what = found
    return UnsupportedModel(
        f"'{layer}' holds {what}: the channel dependency graph cannot "
        f"follow channels across it, so this model cannot be pruned "
        f"structurally"
    )


# -- Torch-Pruning, fixed where it goes wrong -----------------------------------------------
_INSTALLED = False


def _install_fixes() -> None:
    """Replace Torch-Pruning's concat and split index mappings with exact ones (see the
    module docstring) and compute a graph's mapping once, not once per group."""
    global _INSTALLED
    if _INSTALLED:
        return
    import torch_pruning.dependency.index_mapping as im

    update, concat, split = (
        im.update_index_mapping,
        im.update_concat_index_mapping,
        im.update_split_index_mapping,
    )

    def update_once(graph):
        # Only the adapter's own graphs (never pruned in place) keep their mapping; graphs
        # Torch-Pruning's pruners build and prune group by group recompute it as before.
        if getattr(graph, "_studio_mapped", False):
            return
        update(graph)
        if hasattr(graph, "_studio_cat_sizes"):
            graph._studio_mapped = True

    def concat_exact(graph, node):
        sizes = getattr(graph, "_studio_cat_sizes", {}).get(node.grad_fn)
        if sizes is not None:
            node.module.concat_sizes = sizes
        return concat(graph, node)

    im.update_index_mapping = update_once
    _fast_mappings(im)
    im.update_concat_index_mapping = concat_exact
    im.update_split_index_mapping = lambda graph, node: (
        (hasattr(graph, "_studio_cat_sizes") and _split_by_edges(im, node)) or split(graph, node)
    )
    _INSTALLED = True


def _fast_mappings(im) -> None:
    """Torch-Pruning's concat and flatten index mappings, same results (same order), with
    hybrid indices built as plain tuples instead of by keyword. DenseNet-201 calls
    the concat one 56,000 times while its groups grow; AlexNet's flatten expands 256
    channels into 9,216 features."""
    from torch_pruning._helpers import _HybridIndex as H

    new = tuple.__new__

    def concat(self, idxs):
        lo = self.offset[0]
        if self.reverse:
            hi = self.offset[1]
            return [new(H, (i[0] - lo, i[1])) for i in idxs if lo <= i[0] < hi]
        return [new(H, (i[0] + lo, i[1])) for i in idxs]

    def flatten(self, idxs):
        s = self._stride
        if self.reverse:
            return list(set([new(H, (i[0] // s, i[1])) for i in idxs]))
        return [new(H, (k, i[1])) for i in idxs for k in range(i[0] * s, (i[0] + 1) * s)]

    im._ConcatIndexMapping.__call__ = concat
    im._FlattenIndexMapping.__call__ = flatten


def _split_by_edges(im, node) -> bool:
    """Map each consumer of a split to the chunk its autograd edge carries. Returns False
    (leave it to Torch-Pruning) when the split is not along channels."""
    g = node.grad_fn
    sizes_in = getattr(g, "_saved_self_sym_sizes", None)
    dim = getattr(g, "_saved_dim", None)
    if sizes_in is None or dim is None or dim % len(sizes_in) != 1:
        return False
    total = int(sizes_in[1])
    if hasattr(g, "_saved_split_sizes"):
        sizes = [int(s) for s in g._saved_split_sizes]
    else:
        size = int(g._saved_split_size)
        sizes = [min(size, total - k) for k in range(0, total, size)]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    node.module.split_sizes, node.module.offsets = sizes, offsets
    for out in node.outputs:
        chunks = {k for f, k in getattr(out.grad_fn, "next_functions", ()) if f is g}
        if len(chunks) != 1:
            continue  # consumes several chunks at once: Torch-Pruning's own rule stays
        k = chunks.pop()
        rng = offsets[k : k + 2]
        for dep in node.dependencies:
            if dep.target == out:
                dep.index_mapping[0] = im._SplitIndexMapping(offset=rng, reverse=False)
        for dep in out.dependencies:
            if dep.target == node:
                dep.index_mapping[0] = im._SplitIndexMapping(offset=rng, reverse=True)
    return True


def build_graph(model: nn.Module, example_input: torch.Tensor, watch_ref: list | None = None):
    """Torch-Pruning's dependency graph of ``model``, with the adapter's fixes. Its one
    forward pass runs under the watch (``watch_ref`` receives it, also when tracing fails)
    and under autograd, so other observers' hooks can share it."""
    import torch_pruning as tp

    _install_fixes()
    dg = tp.DependencyGraph()
    dg._studio_cat_sizes = {}  # filled while tracing; read by the concat mapping

    def build():
        dg._studio_cat_sizes = watch_ref[0].cat_sizes
        # A tuple: given a bare tensor, Torch-Pruning first tries model(*x) -- an unbatched
        # forward that fails half-way on most CNNs -- and only then model(x).
        dg.build_dependency(model, example_inputs=(example_input,), verbose=False)

    watch_ref = [] if watch_ref is None else watch_ref
    with warnings.catch_warnings():
        # Torch-Pruning warns about every loose nn.Parameter (e.g. ConvNeXt's layer scale);
        # its default, pruning the parameter's channel dim, is what we want.
        warnings.simplefilter("ignore")
        with torch.enable_grad(), trace_only():
            dg._studio_watch = _watched(model, build, watch_ref)
    _cut_at_moves(dg)
    return dg


class _NoChannels:
    """An index mapping that carries no channel across (see ``_Watch._reshape``)."""

    def __call__(self, idxs):
        return []


def _cut_at_moves(dg) -> None:
    moves = dg._studio_watch.moves
    cut = {node for node in dg.module2node.values() if node.grad_fn in moves}
    for node in dg.module2node.values():
        for dep in node.dependencies:
            if node in cut or dep.target in cut:
                dep.index_mapping = [_NoChannels(), None]


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
    return (
        isinstance(m, nn.modules.conv._ConvNd)
        and m.groups > 1
        and not (m.groups == m.in_channels == m.out_channels)
    )


def _group_of(dg, module, names, deadline: float):
    """Torch-Pruning's ``get_pruning_group`` for all channels of ``module``, grown with a
    step budget (its own loop never ends on some wiring)."""
    from torch_pruning import _helpers
    from torch_pruning.dependency.dependency import Dependency
    from torch_pruning.dependency.group import Group

    pruner = dg.get_pruner_of_module(module)
    fn = pruner.prune_out_channels
    if isinstance(module, nn.modules.conv._ConvNd) and module.groups == module.out_channels > 1:
        from torch_pruning.pruner import function

        fn = function.prune_depthwise_conv_out_channels
    n = pruner.get_out_channels(module)
    idxs = [_helpers._HybridIndex(idx=i, root_idx=i) for i in range(n)]
    import torch_pruning.dependency.index_mapping as im

    im.update_index_mapping(dg)
    group = Group()
    group._DG = dg
    root = dg.module2node[module]
    group.add_dep(Dependency(fn, fn, source=root, target=root), idxs)
    visited, stack = set(), [(group[0].dep, idxs)]
    budget = _STEPS_PER_NODE * max(len(dg.module2node), 1)
    while stack:
        budget -= 1
        if budget < 0 or time.perf_counter() > deadline:
            raise UnsupportedModel(
                f"the channels of '{names.get(id(module), module)}' couple with ever more "
                f"layers (the dependency graph does not close: a partial residual or a "
                f"reshuffle of channels?), so this model cannot be pruned structurally"
            )
        dep, idxs = stack.pop()
        node, handler = dep.target, dep.handler
        visited.add(node)
        for new in node.dependencies:
            if not new.is_triggered_by(handler):
                continue
            new_idxs = idxs
            for mapping in new.index_mapping:
                if mapping is not None:
                    new_idxs = mapping(new_idxs)
            if not new_idxs or (new.target in visited and group.has_pruning_op(new, new_idxs)):
                continue
            group.add_dep(new, new_idxs)
            stack.append((new, new_idxs))
    orbit = _coupled_channels(dg, group, n)
    merged = Group()
    merged._DG = dg
    merged._studio_orbit = orbit
    for dep, idxs in group.items:
        merged.add_and_merge(dep, idxs)
    for i in range(len(merged)):  # hybrid indices -> plain ones, with their root indices
        hybrid = merged[i].idxs
        merged[i] = _helpers.GroupItem(merged[i].dep, _helpers.to_plain_idxs(hybrid))
        merged[i].root_idxs = _helpers.to_root_idxs(hybrid)
    return merged


def _coupled_channels(dg, group, n: int) -> np.ndarray | None:
    """Union the root channels that reach the same channel of the same layer by different
    paths (Torch-Pruning's merge keeps only the first path's root). Returns a set id per
    root channel, or None when every root channel stands alone."""
    sides: dict[tuple, int] = {}
    keys, idx, root = [], [], []
    for dep, idxs in group.items:
        if not idxs:
            continue
        mod = dep.target.module
        depthwise = isinstance(mod, nn.modules.conv._ConvNd) and mod.groups == mod.out_channels > 1
        side = "dw" if depthwise else dg.is_out_channel_pruning_fn(dep.handler)
        keys.append(np.full(len(idxs), sides.setdefault((id(dep.target), side), len(sides))))
        try:  # (idx, root_idx) tuples, flattened in C
            pairs = np.fromiter(chain.from_iterable(idxs), np.int64, 2 * len(idxs))
            pairs = pairs.reshape(len(idxs), 2)
        except (TypeError, ValueError):  # a root index of None
            pairs = np.array([(h.idx, -1 if h.root_idx is None else h.root_idx) for h in idxs])
        idx.append(pairs[:, 0])
        root.append(pairs[:, 1])
    if not keys:
        return None
    key, idx, root = np.concatenate(keys), np.concatenate(idx), np.concatenate(root)
    ok = (root >= 0) & (root < n)
    key, idx, root = key[ok], idx[ok], root[ok]
    # The same channel of the same layer side, reached from several root channels: those
    # root channels are one set. Join each with the first that reached it.
    code = key * (int(idx.max(initial=0)) + 1) + idx
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    partner = root[first][inverse]
    pairs = {(int(a), int(b)) for a, b in zip(root[partner != root], partner[partner != root])}
    if not pairs:
        return None
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n)])
    if len(np.unique(roots)) == n:
        return None
    return np.unique(roots, return_inverse=True)[1]


def trace_groups(
    model: nn.Module, example_input: torch.Tensor, ignored, observers=()
) -> tuple[list[RawGroup], dict[str, int], list[str]]:
    """Every coupled channel group of ``model``, from one forward pass.

    ``observers`` are context managers (forward hooks: the cost table, the residual
    blocks) entered around that pass. Groups whose output channels include an ``ignored``
    layer (the classifier; a list, or a function called after the pass) are left out.
    Wiring the graph cannot follow is refused, naming the layer, before any graph walk.
    Returns the groups, the loose parameters with their pruned dim, and notes.
    """
    import contextlib

    found = _module_refusal(model)
    if found is not None:
        raise _refusal(found)
    watch_ref: list = []
    with contextlib.ExitStack() as stack:
        for o in observers:
            stack.enter_context(o)
        try:
            dg = build_graph(model, example_input, watch_ref)
        except UnsupportedModel:
            raise
        except Exception:
            if watch_ref and watch_ref[0].problems:  # the graph failed on what it cannot follow
                raise _refusal(watch_ref[0].problems[0]) from None
            raise
    if dg._studio_watch.problems:
        raise _refusal(dg._studio_watch.problems[0])
    ignored = ignored() if callable(ignored) else ignored
    names = _module_names(model, dg)
    ignored_ids = {id(model.get_submodule(n)) for n in ignored}
    ignored_ids |= {id(m) for m in dg.IGNORED_LAYERS_IN_TRACING}
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    deadline = time.perf_counter() + GROUP_BUDGET_S
    visited: set[int] = set()
    groups: list[RawGroup] = []
    for m in list(dg.module2node):
        if id(m) in ignored_ids or id(m) in visited:
            continue
        if not isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            continue
        pruner = dg.get_pruner_of_module(m)
        if pruner is None or pruner.get_out_channels(m) is None:
            continue
        g = _group_of(dg, m, names, deadline)
        prunable = True
        for item in g:
            if dg.is_out_channel_pruning_fn(item.dep.handler):
                visited.add(id(item.dep.target.module))
                if id(item.dep.target.module) in ignored_ids:
                    prunable = False
        if prunable:
            groups.append(_raw_group(g, m, dg, names, order, model))
    cuts = sorted(set(dg._studio_watch.moves.values()))
    notes = (
        [
            f"layers that work across the channel axis ({', '.join(cuts[:3])}"
            f"{' …' if len(cuts) > 3 else ''}) are counted at the unpruned width: their cost "
            f"after pruning is a little lower than predicted"
        ]
        if cuts
        else []
    )
    return groups, _loose_dims(dg), notes


def _raw_group(g, root_mod, dg, names, order, model) -> RawGroup:
    raw = RawGroup(root=names[id(root_mod)], channels=0, orbit=getattr(g, "_studio_orbit", None))
    members: dict[tuple[str, str], GroupMember] = {}
    for item in g:
        dep, idxs = item.dep, item.idxs
        target = dep.target.module
        name = names.get(id(target))
        if name is None:  # an operator node (add, cat, relu ...), not a layer
            raw.fixed = raw.fixed or _fixed_size(dep.target, dg)
            continue
        dim = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
        key = (name, dim)
        idx = np.asarray(idxs, dtype=np.int64)
        ridx = np.asarray(item.root_idxs, dtype=np.int64)
        if key in members:  # reached twice (e.g. a layer reused): merge
            mb = members[key]
            mb.idx = np.concatenate([mb.idx, idx])
            mb.root_idx = np.concatenate([mb.root_idx, ridx])
        else:
            members[key] = GroupMember(name, dim, idx, ridx)
        if _is_grouped_conv(target):
            raw.channel_groups = max(raw.channel_groups, int(target.groups))
    raw.channels = int(dg.get_out_channels(root_mod))
    raw.members = sorted(members.values(), key=lambda m: (order.get(m.name, 1 << 30), m.dim))
    raw.root = _first_producer(raw, model, order) or raw.root
    return raw


def _fixed_size(node, dg) -> str:
    """Why channels cannot change where ``node`` (an operator) takes them: a split into
    chunks of sizes the code fixes, or a slice of fixed bounds along the channels."""
    from torch_pruning import ops

    g = node.grad_fn
    kind = ""
    if (
        isinstance(node.module, ops._SplitOp)
        and getattr(g, "_saved_dim", 1) % max(len(getattr(g, "_saved_self_sym_sizes", (0, 0))), 1)
        == 1
    ):
        kind = "a split into chunks of fixed size"
    elif g in getattr(getattr(dg, "_studio_watch", None), "fixed_ops", {}):
        kind = "a convolution with fixed weights (a buffer, not a layer)"
    elif isinstance(node.module, ops._SliceOp) and node.module.dim == 1:
        size = int(getattr(g, "_saved_self_sym_sizes", (0, 1 << 62))[1])
        if node.module.start != 0 or node.module.end < size or node.module.step != 1:
            kind = "a slice of fixed bounds"
    if not kind:
        return ""
    watch = getattr(dg, "_studio_watch", None)
    layer = None
    if watch is not None:
        layer = watch.op_where.get(g) or watch.fixed_ops.get(g)
    return (
        f"its channels pass through {kind} in '{layer or 'the forward'}': the code fixes "
        f"the sizes, so the channel count cannot change"
    )


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
        if (
            len(m.idx) == raw.channels
            and np.array_equal(np.sort(m.idx), np.arange(raw.channels))
            and np.array_equal(m.idx, m.root_idx)
        ):
            return m.name
    return None


# -- surgery -----------------------------------------------------------------------------
def _resolve(model: nn.Module, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return model.get_parameter(name)


def _shrink_extras(module: nn.Module, old_out: int, keep: list[int]) -> None:
    """Parameters a conv/linear owns besides weight and bias, one per output channel (a
    weight-standardised conv's gain), keep the same channels."""
    for pname, p in list(module.named_parameters(recurse=False)):
        if pname in ("weight", "bias") or p.dim() == 0 or p.shape[0] != old_out:
            continue
        setattr(module, pname, nn.Parameter(p.data[keep].clone(), requires_grad=p.requires_grad))


def prune_layers(
    model: nn.Module, removals: dict[tuple[str, str], list[int]], loose_dims: dict[str, int]
) -> None:
    """Physically remove channels, each layer once: ``removals`` maps (layer or loose
    parameter name, "out"|"in") to the member's own channel indices to remove."""
    import torch_pruning as tp
    from torch_pruning.pruner import function

    dg = tp.DependencyGraph()  # for its registry of pruners only: nothing is traced
    done_depthwise: set[str] = set()
    for (name, dim), idxs in removals.items():
        if not idxs:
            continue
        idxs = sorted(set(int(i) for i in idxs))
        target = _resolve(model, name)
        if isinstance(target, nn.Parameter):
            d = loose_dims.get(name, 0)
            new = function.ParameterPruner(pruning_dim=d).prune_out_channels(target, idxs)
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, new)
            continue
        pruner = dg.get_pruner_of_module(target)
        if pruner is None:
            raise ValueError(f"no pruner for layer {name} ({type(target).__name__})")
        depthwise = (
            isinstance(target, nn.modules.conv._ConvNd) and target.groups == target.out_channels > 1
        )
        if depthwise:  # in and out are the same channels: prune once
            if name in done_depthwise:
                continue
            done_depthwise.add(name)
            other = removals.get((name, "in" if dim == "out" else "out"))
            if other is not None and sorted(set(other)) != idxs:
                raise ValueError(f"depthwise conv {name}: input and output channels differ")
        old_out = pruner.get_out_channels(target)
        if dim == "out" and len(idxs) >= old_out:
            raise ValueError(f"removing {len(idxs)} channels would empty layer {name}")
        fn = pruner.prune_out_channels if dim == "out" else pruner.prune_in_channels
        fn(target, idxs)
        if dim == "out" and isinstance(target, (nn.modules.conv._ConvNd, nn.Linear)):
            removed = set(idxs)
            _shrink_extras(target, old_out, [i for i in range(old_out) if i not in removed])


def library_version() -> str:
    """Torch-Pruning's version: structure maps depend on it (the structure cache's key).
    Read from its metadata: importing it costs half a second a cached open never needs."""
    from importlib import metadata

    try:
        return metadata.version("torch-pruning")
    except metadata.PackageNotFoundError:
        import torch_pruning as tp

        return str(getattr(tp, "__version__", ""))


def tp_count(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """Torch-Pruning's own (MACs, params) counter -- an outside reference for benchmarks."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example_input)
    return int(macs), int(params)


def tp_all_groups(model: nn.Module, example_input: torch.Tensor) -> int:
    """Torch-Pruning alone -- its graph and every group, without the adapter's fixes -- the
    outside reference of the mapping benchmark. Returns the number of groups."""
    import torch_pruning as tp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=(example_input,))
        return sum(1 for _ in dg.get_all_groups())


def tp_default_prune(
    model: nn.Module, example_input: torch.Tensor, ratio: float, ignored: list[str]
) -> nn.Module:
    """Torch-Pruning's default pruner (BasePruner + GroupMagnitudeImportance(p=2), local,
    uniform ratio) on a copy -- the outside reference the benchmarks compare against."""
    import copy

    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.BasePruner(
            m,
            example_input,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=ratio,
            ignored_layers=[m.get_submodule(n) for n in ignored],
        )
        pruner.step()
    return m
