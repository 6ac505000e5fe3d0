"""Find residual blocks by watching autograd: a block is a module whose forward adds a
branch to (something computed from) its own input, ``y = f(x) + g(x)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_ADD_NODES = {"AddBackward0"}


@dataclass
class BlockInfo:
    name: str
    type: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    droppable: bool
    reason: str  # why it can or cannot become identity
    stage: str | None = None


def _is_add(node) -> bool:
    """An add -- also an in-place add into a view (GhostNet's ``x += shortcut`` on a sliced
    tensor), which autograd records as ``CopySlices`` around the add."""
    name = type(node).__name__
    if name == "CopySlices":
        name = type(getattr(node, "_wrapped_node", None)).__name__
    return name in _ADD_NODES


def _reaches(out_fn, target) -> tuple[bool, bool]:
    """Walk the autograd graph from ``out_fn`` back to ``target``. Returns (reached, an add
    node has two operands that both lead to ``target``)."""
    memo: dict = {target: True}
    found_add = False
    stack = [(out_fn, False)]
    while stack:
        node, expanded = stack.pop()
        if node is None or (node in memo and not expanded):
            continue
        children = [c for c, _ in getattr(node, "next_functions", ()) if c is not None]
        if not expanded:
            stack.append((node, True))
            stack.extend((c, False) for c in children if c not in memo)
            continue
        hits = [memo.get(c, False) for c in children]
        memo[node] = any(hits)
        if _is_add(node) and sum(hits) >= 2:
            found_add = True
    return memo.get(out_fn, False), found_add


def trace_only():
    """For a forward whose autograd graph is only walked, never run backward: drop the
    tensors autograd would save for the backward (ResNet-50 at 224x224: ~150 MiB)."""
    return torch.autograd.graph.saved_tensors_hooks(lambda t: None, lambda _: None)


class BlockRecorder:
    """Hooks that find residual blocks during a forward pass under autograd that someone
    else runs (the dependency graph's trace): ``with BlockRecorder(model) as rec: ...``,
    then ``rec.blocks()``."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.found: dict[str, BlockInfo] = {}
        self._names = {m: n for n, m in model.named_modules() if n}
        self._inputs: dict[str, tuple] = {}
        self._handles: list = []

    def _pre(self, mod, args) -> None:
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.grad_fn is not None:
            self._inputs[self._names[mod]] = (x.grad_fn, tuple(x.shape[1:]))

    def _post(self, mod, args, out) -> None:
        name = self._names[mod]
        if name not in self._inputs or not isinstance(out, torch.Tensor) or out.grad_fn is None:
            return
        target, in_shape = self._inputs.pop(name)
        reached, residual = _reaches(out.grad_fn, target)
        if reached and residual and name not in self.found:
            out_shape = tuple(out.shape[1:])
            same = out_shape == in_shape
            reason = (
                "input and output shapes match: can become identity"
                if same
                else f"changes shape {list(in_shape)} -> {list(out_shape)}"
            )
            kind = type(mod).__name__
            self.found[name] = BlockInfo(name, kind, in_shape, out_shape, same, reason)

    def __enter__(self) -> BlockRecorder:
        for m in self._names:
            if len(list(m.children())) > 0:  # only containers can hold a residual add
                self._handles.append(m.register_forward_pre_hook(self._pre))
                self._handles.append(m.register_forward_hook(self._post))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def blocks(self) -> list[BlockInfo]:
        """The innermost blocks, in execution order (a stage -- a Sequential of blocks --
        also "adds to its input")."""
        found = self.found
        return [
            b
            for b in found.values()
            if not any(o != b.name and o.startswith(b.name + ".") for o in found)
        ]


def find_blocks(model: nn.Module, example_input: torch.Tensor) -> list[BlockInfo]:
    """The innermost residual blocks of ``model``, in execution order."""
    was_training = model.training
    model.eval()
    try:
        with BlockRecorder(model) as rec, torch.enable_grad(), trace_only():
            x = example_input.detach().clone().requires_grad_(True) * 1.0
            model(x)
    finally:
        model.train(was_training)
    return rec.blocks()
