"""Least-squares reconstruction of the layers that consume pruned channels (the second
step of He et al. 2017, "Channel Pruning for Accelerating Very Deep Neural Networks"),
usable after any criterion.

For every conv/linear layer whose input lost channels, the pruned layer's weights are
refit so that, on sampled locations of calibration images, its output matches the
*original* layer's output: ``W' = argmin ||Y - X' W'^T||^2 + lambda ||W'||^2``, where ``Y`` is
the original layer's output (bias removed) computed by the original model and ``X'`` the
pruned layer's input patches computed by the *pruned* model -- so each layer also makes up
for the errors of the layers before it. Layers are refit in execution order; each one
needs a forward of the pruned model up to that layer only (the pass stops there).

Every image gives enough sampled locations for ``ROWS_PER_UNKNOWN`` rows per unknown of
the layer (where its output has that many). The rows of one image in five are held out:
the ridge strength is chosen on them, a refit is kept only if it lowers their error, and
the errors reported are theirs (not the fitted rows', which a wide layer can fit exactly).
Layers with more than ``MAX_UNKNOWNS`` inputs per output (Cin x kh x kw) keep their
weights, as do grouped and depthwise convolutions (each output reads only its group's
inputs; a per-group refit is not implemented), 3-d and transposed convolutions, and layers
inside a dropped block. The bias and any BatchNorm after the layer are left as they are.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from studio.core.jobs import CancelToken, Events, progress
from studio.core.plan.plan import Plan
from studio.core.structure.map import StructureMap

IMAGES = 256  # calibration images a refit reads by default
SAMPLES_PER_IMAGE = 16  # output locations sampled per image and layer, at least
ROWS_PER_UNKNOWN = 4  # rows sampled per unknown of a layer (as far as locations allow)
MAX_UNKNOWNS = 4608  # inputs per output (Cin*kh*kw) above which a layer is left alone
HELD_OUT_EVERY = 5  # one image in five: rows for choosing the ridge and for the guard
RIDGES = (1e-6, 1e-4, 1e-2, 1e-1, 1.0)  # relative to the mean diagonal of X'X
UNFOLD_BYTES = 64 * 2**20  # patches unfolded at once, at most


class _Stop(Exception):
    pass


def _refittable(mod) -> bool:
    if isinstance(mod, nn.Linear):
        return mod.in_features <= MAX_UNKNOWNS
    return (
        isinstance(mod, (nn.Conv1d, nn.Conv2d))
        and mod.groups == 1
        and mod.weight[0].numel() <= MAX_UNKNOWNS
    )


def _targets(s: StructureMap, plan: Plan, pruned: nn.Module) -> list[str]:
    """Consumer layers of groups that lost channels, which the refit applies to."""
    names = []
    for gid, removed in plan.groups.items():
        if not removed:
            continue
        for m in s.group_index[gid].members:
            if m.dim != "in" or s.table.rows[m.row].kind not in ("conv", "linear"):
                continue
            try:
                mod = pruned.get_submodule(m.layer)
            except AttributeError:
                continue  # inside a dropped block
            if _refittable(mod):
                names.append(m.layer)
    return sorted(set(names))


def _rows(mod: nn.Module, x: torch.Tensor, loc: torch.Tensor | None) -> torch.Tensor:
    """The layer's input as regression rows: the patches at the sampled output locations,
    [n * k, Cin * kh * kw] (a linear layer: its input rows). Padding as the layer pads
    (zeros, reflect, replicate, circular, 'same'), unfolded a few images at a time."""
    if isinstance(mod, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    mode = "constant" if mod.padding_mode == "zeros" else mod.padding_mode
    xp = F.pad(x, mod._reversed_padding_repeated_twice, mode=mode)
    kernel, dil, stride = mod.kernel_size, mod.dilation, mod.stride
    if xp.dim() == 3:  # Conv1d: unfold as a 2-d input of height 1
        xp = xp[:, :, None]
        kernel, dil, stride = (1, *kernel), (1, *dil), (1, *stride)
    per = max(1, UNFOLD_BYTES // max(4 * mod.weight[0].numel() * xp[0, 0].numel(), 1))
    out = []
    for i in range(0, len(xp), per):
        cols = F.unfold(xp[i : i + per], kernel, dil, 0, stride)  # [n, D, L]
        li = loc[i : i + per, None, :].expand(-1, cols.shape[1], -1)
        out.append(torch.gather(cols, 2, li).permute(0, 2, 1).reshape(-1, cols.shape[1]))
    return torch.cat(out)


def _out_rows(mod: nn.Module, y: torch.Tensor, loc: torch.Tensor | None) -> torch.Tensor:
    if isinstance(mod, nn.Linear):
        y = y.reshape(-1, y.shape[-1])
    else:
        flat = y.flatten(2)
        y = torch.gather(flat, 2, loc[:, None, :].expand(-1, flat.shape[1], -1))
        y = y.permute(0, 2, 1).reshape(-1, flat.shape[1])
    b = getattr(mod, "bias", None)
    return y - b.detach() if b is not None else y


def _kept_out(s: StructureMap, plan: Plan, name: str, n_out: int) -> torch.Tensor:
    """Indices of the layer's output channels the plan keeps."""
    gone: set[int] = set()
    for gid, removed in plan.groups.items():
        rm = set(removed)
        for m in s.group_index[gid].members:
            if m.layer == name and m.dim == "out":
                gone |= {int(i) for i, r in zip(m.idx, m.root_idx) if int(r) in rm}
    return torch.tensor([c for c in range(n_out) if c not in gone], dtype=torch.long)


def _original_outputs(original, names, passes, g, total_images):
    """Per pass: the original layers' outputs at sampled locations (bias removed), the
    locations, and the layers' execution order."""
    order: list[str] = []
    loc: dict[tuple[str, int], torch.Tensor | None] = {}
    target: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for p, xp in enumerate(passes):
        handles = []
        for n in names:

            def hook(mod, _args, out, n=n, p=p):
                if p == 0:
                    order.append(n)
                lc = None
                if not isinstance(mod, nn.Linear):
                    length = out.flatten(2).shape[2]
                    want = math.ceil(ROWS_PER_UNKNOWN * mod.weight[0].numel() / total_images)
                    k = min(max(SAMPLES_PER_IMAGE, want), length)
                    lc = torch.rand(out.shape[0], length, generator=g).argsort(1)[:, :k]
                    lc = lc.to(out.device)
                loc[(n, p)] = lc
                target[n].append(_out_rows(mod, out.detach(), lc).double())

            handles.append(original.get_submodule(n).register_forward_hook(hook))
        try:
            with torch.no_grad():
                original(xp)
        finally:
            for h in handles:
                h.remove()
    return order, loc, target


def _pruned_rows(pruned, mod, xp, lc) -> torch.Tensor | None:
    """The pruned layer's input rows on one pass (the forward stops at the layer)."""
    rows: list[torch.Tensor] = []

    def pre(m, args):
        rows.append(_rows(m, args[0].detach(), lc).double())
        raise _Stop

    h = mod.register_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            pruned(xp)
    except _Stop:
        pass
    finally:
        h.remove()
    return rows[0] if rows else None


class _Normal:
    """X'X, X'Y, |Y|^2 and the unrefit layer's error, accumulated over rows."""

    def __init__(self):
        self.xtx = self.xty = None
        self.ysq = self.base = 0.0

    def add(self, x, y, w_old):
        self.xtx = x.T @ x if self.xtx is None else self.xtx + x.T @ x
        self.xty = x.T @ y if self.xty is None else self.xty + x.T @ y
        self.ysq += float((y**2).sum())
        self.base += float(((x @ w_old.T - y) ** 2).sum())

    def error(self, w) -> float:
        """|Y - X W'|^2 from the accumulated products."""
        return self.ysq - 2 * float((w * self.xty.T).sum()) + float(((w @ self.xtx) * w).sum())


def _solve(fit: _Normal, lam: float) -> torch.Tensor:
    eye = torch.eye(len(fit.xtx), dtype=fit.xtx.dtype, device=fit.xtx.device)
    return torch.linalg.solve(fit.xtx + lam * eye, fit.xty).T


def _refit_layer(pruned, mod, passes, loc_of, targets, keep, offsets) -> tuple | None:
    """Refit one layer; returns (held-out error before, after), relative, or None."""
    w_old = mod.weight.detach().double().reshape(mod.weight.shape[0], -1)
    if len(keep) != len(w_old):
        return None  # the plan and the model disagree: leave the layer alone
    fit, held = _Normal(), _Normal()
    for p, xp in enumerate(passes):
        x = _pruned_rows(pruned, mod, xp, loc_of(p))
        if x is None:
            return None  # the layer did not run on this input
        y = targets[p][:, keep]
        per_image = len(x) // len(xp)
        image = offsets[p] + torch.arange(len(x), device=x.device) // max(per_image, 1)
        out = image % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
        fit.add(x[~out], y[~out], w_old)
        held.add(x[out], y[out], w_old)
    scale = float(torch.diagonal(fit.xtx).mean()) or 1.0
    best, best_err = None, held.base
    for r in RIDGES:
        w = _solve(fit, r * scale)
        err = held.error(w)
        if err < best_err:
            best, best_err = r, err
    if best is None:  # no refit beats the plainly pruned layer on the held-out rows
        after = held.base
    else:
        both = _Normal()
        both.xtx, both.xty = fit.xtx + held.xtx, fit.xty + held.xty
        w = _solve(both, best * scale)
        with torch.no_grad():
            mod.weight.copy_(w.reshape(mod.weight.shape).to(mod.weight.dtype))
        after = best_err
    ysq = max(held.ysq, 1e-30)
    return held.base / ysq, max(after, 0.0) / ysq


def reconstruct(
    original: nn.Module,
    pruned: nn.Module,
    s: StructureMap,
    plan: Plan,
    images: torch.Tensor,
    *,
    pass_images: int = 64,
    seed: int = 0,
    cancel: CancelToken | None = None,
) -> Events:
    """Refit ``pruned``'s consumer layers in place on ``images`` (calibration images, never
    the validation split), on the device ``original`` is on. Yields progress per layer;
    returns ``{"layers": n, "error": {layer: (held-out relative error before, after)}}``."""
    original, pruned = original.eval(), pruned.eval()
    device = next(original.parameters()).device
    pruned.to(device)
    names = _targets(s, plan, pruned)
    if not names:
        return {"layers": 0, "error": {}}
    passes = [x.to(device) for x in images.split(pass_images)]
    offsets = [p * pass_images for p in range(len(passes))]
    gen = torch.Generator().manual_seed(seed)
    order, loc, target = _original_outputs(original, names, passes, gen, len(images))
    errors = {}
    for i, n in enumerate(order):
        if cancel is not None:
            cancel.check()
        mod = pruned.get_submodule(n)
        keep = _kept_out(s, plan, n, target[n][0].shape[1]).to(device)
        res = _refit_layer(
            pruned, mod, passes, lambda p, n=n: loc[(n, p)], target[n], keep, offsets
        )
        if res is not None:
            errors[n] = res
        yield progress(i + 1, len(order), f"reconstructing {n}")
    return {"layers": len(errors), "error": errors}
