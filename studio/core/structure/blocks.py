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
        if type(node).__name__ in _ADD_NODES and sum(hits) >= 2:
            found_add = True
    return memo.get(out_fn, False), found_add


def trace_only():
    """For a forward whose autograd graph is only walked, never run backward: drop the
    tensors autograd would save for the backward (ResNet-50 at 224x224: ~150 MiB)."""
    return torch.autograd.graph.saved_tensors_hooks(lambda t: None, lambda _: None)


def find_blocks(model: nn.Module, example_input: torch.Tensor) -> list[BlockInfo]:
    """The innermost residual blocks of ``model``, in execution order."""
    found: dict[str, BlockInfo] = {}
    names = {m: n for n, m in model.named_modules() if n}
    inputs: dict[str, tuple] = {}
    handles = []

    def pre(mod, args):
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.grad_fn is not None:
            inputs[names[mod]] = (x.grad_fn, tuple(x.shape[1:]))

    def post(mod, args, out):
        name = names[mod]
        if name not in inputs or not isinstance(out, torch.Tensor) or out.grad_fn is None:
            return
        target, in_shape = inputs.pop(name)
        reached, residual = _reaches(out.grad_fn, target)
        if reached and residual and name not in found:
            out_shape = tuple(out.shape[1:])
            same = out_shape == in_shape
            reason = (
                "input and output shapes match: can become identity"
                if same
                else f"changes shape {list(in_shape)} -> {list(out_shape)}"
            )
            found[name] = BlockInfo(name, type(mod).__name__, in_shape, out_shape, same, reason)

    for m in names:
        if len(list(m.children())) > 0:  # only containers can hold a residual add
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), trace_only():
            x = example_input.detach().clone().requires_grad_(True) * 1.0
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # Keep the innermost: a stage (Sequential of blocks) also "adds to its input".
    blocks = [
        b
        for b in found.values()
        if not any(o != b.name and o.startswith(b.name + ".") for o in found)
    ]
    return blocks
