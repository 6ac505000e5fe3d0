"""One counting function for the whole studio: params, FLOPs and MACs per layer.

Conventions (``docs/counting.md``): one multiply-accumulate (MAC) = 2 FLOPs; bias adds are
counted as FLOPs. Conv: MACs = H*W*Cin*k^2*Cout/groups, params = k^2*Cin*Cout/groups (+Cout).
Linear: MACs = positions*in*out. Norm layers: 1 MAC = 2 FLOPs per output element (scale and
shift), params = their affine weights. Activations, pooling and adds are not counted.

``CostTable`` is measured once with forward hooks; after that the cost of any set of channel
removals is plain numpy arithmetic on its arrays (no model, no copy) -- the GUI re-counts a
plan on every click.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

CONV, NORM, PER_CHANNEL, FIXED = 0, 1, 2, 3
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
          nn.modules.instancenorm._InstanceNorm)


@dataclass
class Totals:
    params: int
    flops: int
    macs: int

    def as_dict(self) -> dict:
        return {"params": self.params, "flops": self.flops, "macs": self.macs}


@dataclass
class LayerRow:
    """One counted layer: what ``inspect`` prints and the GUI's structure view shows."""

    name: str
    type: str
    kind: str  # conv | linear | norm | param | other
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    groups: int
    out_shape: tuple[int, ...]  # per sample, as seen with the dummy input
    params: int
    flops: int
    macs: int

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("kernel", "stride", "out_shape"):
            d[k] = list(d[k])
        return d


class CostTable:
    """Per-layer constants from which the cost of any channel removal is computed."""

    def __init__(self, rows: list[dict]):
        self.names = [r["name"] for r in rows]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.rows = rows
        col = lambda k, dt=np.int64: np.array([r[k] for r in rows], dtype=dt)  # noqa: E731
        self.code = col("code", np.int8)
        self.cin, self.cout, self.groups = col("cin"), col("cout"), col("groups")
        self.k, self.pos, self.bias = col("k"), col("pos"), col("bias")
        self.dw = col("dw", bool)
        self.per_ch, self.fixed = col("per_ch"), col("fixed")
        self.executed_order = [r["name"] for r in sorted(rows, key=lambda r: r["order"])
                               if r["order"] >= 0]

    def __len__(self):
        return len(self.names)

    def zeros(self) -> np.ndarray:
        return np.zeros(len(self.names), dtype=np.int64)

    def evaluate(self, rm_in=None, rm_out=None, dropped=None):
        """Per-layer (cin, cout, params, flops, macs) after removing ``rm_in``/``rm_out``
        channels per layer; layers marked in ``dropped`` cost nothing."""
        rm_in = self.zeros() if rm_in is None else rm_in
        rm_out = self.zeros() if rm_out is None else rm_out
        cin, cout = self.cin - rm_in, self.cout - rm_out
        # Depthwise convs, norms and per-channel params have one channel dim.
        single = self.dw | (self.code == NORM) | (self.code == PER_CHANNEL)
        c = self.cout - rm_in - rm_out
        cin = np.where(single, c, cin)
        cout = np.where(single, c, cout)
        groups = np.where(self.dw, c, self.groups)
        cig = np.where(self.dw, 1, cin // np.maximum(groups, 1))
        conv_macs = self.pos * cig * self.k * cout
        conv_params = cig * self.k * cout + self.bias * cout
        conv_flops = 2 * conv_macs + self.bias * self.pos * cout
        code = self.code
        params = np.select([code == CONV, code == FIXED], [conv_params, self.fixed],
                           self.per_ch * c)
        macs = np.select([code == CONV, code == NORM], [conv_macs, self.pos * c], 0)
        flops = np.select([code == CONV, code == NORM], [conv_flops, 2 * self.pos * c], 0)
        if dropped is not None:
            params, flops, macs = (np.where(dropped, 0, a) for a in (params, flops, macs))
        return cin, cout, params, flops, macs

    def totals(self, rm_in=None, rm_out=None, dropped=None) -> Totals:
        _, _, p, f, m = self.evaluate(rm_in, rm_out, dropped)
        return Totals(int(p.sum()), int(f.sum()), int(m.sum()))

    def layer_rows(self) -> list[LayerRow]:
        _, _, p, f, m = self.evaluate()
        out = []
        for i, r in enumerate(self.rows):
            out.append(LayerRow(r["name"], r["type"], r["kind"], int(r["cin"]), int(r["cout"]),
                                r["kernel"], r["stride"], int(r["groups"]), r["out_shape"],
                                int(p[i]), int(f[i]), int(m[i])))
        return out


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, _NORMS):
        return "norm"
    return "other"


def _row_for_module(name: str, m: nn.Module, loose_dims: dict[str, int]) -> dict | None:
    kind = _kind(m)
    own = list(m.parameters(recurse=False))
    n_params = sum(p.numel() for p in own)
    row = dict(name=name, type=type(m).__name__, kind=kind, kernel=(), stride=(), groups=1,
               k=1, pos=0, bias=0, dw=False, per_ch=0, fixed=0, out_shape=(), order=-1)
    if kind == "conv":
        if m.transposed:
            kind = row["kind"] = "other"  # transposed convs: counted as fixed
        else:
            dw = m.groups == m.in_channels == m.out_channels and m.groups > 1
            row.update(code=CONV, cin=m.in_channels, cout=m.out_channels, groups=m.groups,
                       k=int(np.prod(m.kernel_size)), bias=int(m.bias is not None), dw=dw,
                       kernel=tuple(m.kernel_size), stride=tuple(m.stride))
            return row
    if kind == "linear":
        row.update(code=CONV, cin=m.in_features, cout=m.out_features,
                   bias=int(m.bias is not None))
        return row
    if kind == "norm":
        c = m.num_features if hasattr(m, "num_features") else (
            m.num_channels if isinstance(m, nn.GroupNorm) else m.normalized_shape[0])
        row.update(code=NORM, cin=c, cout=c, per_ch=n_params // c if c else 0)
        return row
    if n_params == 0:
        return None
    # Other leaf layers with weights (PReLU ...): params scale with their first dim.
    c = own[0].shape[0] if own[0].dim() > 0 else 1
    if all(p.dim() > 0 and p.shape[0] == c for p in own):
        row.update(code=PER_CHANNEL, cin=c, cout=c, per_ch=n_params // c)
    else:
        row.update(code=FIXED, cin=0, cout=0, fixed=n_params)
    return row


def build_cost_table(model: nn.Module, example_input: torch.Tensor,
                     loose_dims: dict[str, int] | None = None) -> CostTable:
    """Measure every layer once: output shape for the dummy input, channels, kernel.

    ``loose_dims`` names parameters that belong to no layer (ConvNeXt's layer scale) with
    the dim along which they follow channel removals.
    """
    loose_dims = loose_dims or {}
    rows: dict[str, dict] = {}
    for name, m in model.named_modules():
        r = _row_for_module(name, m, loose_dims) if not list(m.children()) else None
        if r is not None:
            rows[name] = r
        if list(m.children()):  # parameters owned directly by a container
            for pname, p in m.named_parameters(recurse=False):
                full = f"{name}.{pname}" if name else pname
                d = loose_dims.get(full)
                if d is not None:
                    c = p.shape[d]
                    rows[full] = dict(name=full, type="Parameter", kind="param",
                                      code=PER_CHANNEL, cin=c, cout=c, per_ch=p.numel() // c,
                                      fixed=0, kernel=(), stride=(), groups=1, k=1, pos=0,
                                      bias=0, dw=False, out_shape=tuple(p.shape), order=-1)
                else:
                    rows[full] = dict(name=full, type="Parameter", kind="param", code=FIXED,
                                      cin=0, cout=0, per_ch=0, fixed=p.numel(), kernel=(),
                                      stride=(), groups=1, k=1, pos=0, bias=0, dw=False,
                                      out_shape=tuple(p.shape), order=-1)
    counter = [0]
    handles = []

    def hook(mod, args, out, name):
        r = rows[name]
        if not isinstance(out, torch.Tensor):
            return
        if r["order"] < 0:
            r["order"] = counter[0]
            counter[0] += 1
            r["out_shape"] = tuple(out.shape[1:])
        if r["kind"] == "conv":
            r["pos"] += int(np.prod(out.shape[2:])) if out.dim() > 2 else 1
        elif r["kind"] == "linear":
            r["pos"] += out.numel() // out.shape[0] // max(out.shape[-1], 1)
        elif r["kind"] == "norm":
            r["pos"] += out.numel() // out.shape[0] // max(r["cout"], 1)

    modules = dict(model.named_modules())
    for name in rows:
        if name in modules:
            handles.append(modules[name].register_forward_hook(
                lambda mod, a, o, n=name: hook(mod, a, o, n)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return CostTable(list(rows.values()))


def count_model(model: nn.Module, input_size, loose_dims=None) -> Totals:
    """Params, FLOPs and MACs of a real model (one forward pass with a dummy input)."""
    x = torch.zeros(1, *input_size)
    return build_cost_table(model, x, loose_dims).totals()
