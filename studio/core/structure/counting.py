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
_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


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

    def __init__(self, rows: list[Row]):
        self.names = [r.name for r in rows]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.rows = rows
        col = lambda k, dt=np.int64: np.array([getattr(r, k) for r in rows], dtype=dt)  # noqa: E731
        self.code = col("code", np.int8)
        self.cin, self.cout, self.groups = col("cin"), col("cout"), col("groups")
        self.k, self.pos, self.bias = col("k"), col("pos"), col("bias")
        self.dw = col("dw", bool)
        self.per_ch, self.fixed = col("per_ch"), col("fixed")
        self.executed_order = [r.name for r in sorted(rows, key=lambda r: r.order) if r.order >= 0]

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
        params = np.select(
            [code == CONV, code == FIXED],
            [conv_params + self.per_ch * cout + self.fixed, self.fixed],
            self.per_ch * c,
        )
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
            out.append(
                LayerRow(
                    r.name,
                    r.type,
                    r.kind,
                    int(r.cin),
                    int(r.cout),
                    r.kernel,
                    r.stride,
                    int(r.groups),
                    r.out_shape,
                    int(p[i]),
                    int(f[i]),
                    int(m[i]),
                )
            )
        return out


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.modules.conv._ConvNd):
        return "other" if m.transposed else "conv"  # transposed convs: counted as fixed
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, _NORMS):
        return "norm"
    return "other"


@dataclass
class Row:
    """One counted module or loose parameter: the constants its cost is computed from."""

    name: str
    type: str
    kind: str  # conv | linear | norm | param | other
    code: int
    cin: int = 0
    cout: int = 0
    groups: int = 1
    k: int = 1  # kernel elements
    pos: int = 0  # output positions (per sample) the layer computes
    bias: int = 0
    dw: bool = False  # depthwise conv
    per_ch: int = 0  # params per channel (norms, per-channel params, convs' extra ones)
    fixed: int = 0  # params that do not follow channels
    kernel: tuple = ()
    stride: tuple = ()
    out_shape: tuple = ()  # per sample, as seen with the dummy input
    order: int = -1  # execution order (-1: never ran)


def _weighted_row(name: str, m: nn.Module, kind: str, n_params: int) -> Row:
    """A conv or linear layer. Parameters beyond weight and bias (a weight-standardised
    conv's gain) are counted per output channel."""
    bias = int(getattr(m, "bias", None) is not None)
    if kind == "conv":
        dw = m.groups == m.in_channels == m.out_channels and m.groups > 1
        row = Row(
            name,
            type(m).__name__,
            kind,
            CONV,
            m.in_channels,
            m.out_channels,
            m.groups,
            int(np.prod(m.kernel_size)),
            bias=bias,
            dw=dw,
            kernel=tuple(m.kernel_size),
            stride=tuple(m.stride),
        )
    else:
        row = Row(name, type(m).__name__, kind, CONV, m.in_features, m.out_features, bias=bias)
    extra = n_params - m.weight.numel() - bias * row.cout
    if extra > 0 and extra % row.cout == 0:
        row.per_ch = extra // row.cout
    elif extra > 0:
        row.fixed = extra
    return row


def _row_for_module(name: str, m: nn.Module) -> Row | None:
    kind = _kind(m)
    own = list(m.parameters(recurse=False))
    n_params = sum(p.numel() for p in own)
    if kind in ("conv", "linear"):
        return _weighted_row(name, m, kind, n_params)
    if kind == "norm":
        c = (
            m.num_features
            if hasattr(m, "num_features")
            else m.num_channels
            if isinstance(m, nn.GroupNorm)
            else m.normalized_shape[0]
        )
        return Row(name, type(m).__name__, kind, NORM, c, c, per_ch=n_params // c if c else 0)
    if n_params == 0 or list(m.children()):
        return None  # a container: its own parameters are loose ones (below)
    # Other leaf layers with weights (PReLU ...): params scale with their first dim.
    c = own[0].shape[0] if own[0].dim() > 0 else 1
    if all(p.dim() > 0 and p.shape[0] == c for p in own):
        return Row(name, type(m).__name__, kind, PER_CHANNEL, c, c, per_ch=n_params // c)
    return Row(name, type(m).__name__, kind, FIXED, fixed=n_params)


def _loose_rows(name: str, m: nn.Module, loose_dims: dict[str, int]) -> list[Row]:
    """Parameters a container owns directly (ConvNeXt's layer scale): per channel along
    the dim the dependency graph prunes them on, else fixed."""
    rows = []
    for pname, p in m.named_parameters(recurse=False):
        full = f"{name}.{pname}" if name else pname
        d = loose_dims.get(full)
        if d is not None:
            c = p.shape[d]
            rows.append(
                Row(
                    full,
                    "Parameter",
                    "param",
                    PER_CHANNEL,
                    c,
                    c,
                    per_ch=p.numel() // c,
                    out_shape=tuple(p.shape),
                )
            )
        else:
            rows.append(
                Row(full, "Parameter", "param", FIXED, fixed=p.numel(), out_shape=tuple(p.shape))
            )
    return rows


def _is_layer(m: nn.Module) -> bool:
    """A layer is counted whole: conv/linear/norm types (subclasses too, children or not --
    timm's BatchNormAct2d is a BatchNorm2d holding its activation), or a leaf."""
    return _kind(m) != "other" or not list(m.children())


def _owns_loose(name: str, m: nn.Module, loose_dims: dict[str, int]) -> bool:
    """A leaf of no known kind whose parameters the dependency graph prunes along their own
    dims (a hand-written channel scale ``(1, C, 1, 1)``, a LayerNorm2d): counted as loose
    parameters, so their rows shrink with the group as the surgery shrinks them."""
    if not loose_dims or list(m.children()) or _kind(m) != "other":
        return False
    return any(
        (f"{name}.{p}" if name else p) in loose_dims for p, _ in m.named_parameters(recurse=False)
    )


def _static_rows(model: nn.Module, loose_dims: dict[str, int]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for name, m in model.named_modules():
        if _owns_loose(name, m, loose_dims):
            for lr in _loose_rows(name, m, loose_dims):
                rows[lr.name] = lr
            continue
        r = _row_for_module(name, m) if _is_layer(m) else None
        if r is not None:
            rows[name] = r
        elif list(m.children()):
            for lr in _loose_rows(name, m, loose_dims):
                rows[lr.name] = lr
    return rows


class CostRecorder:
    """Forward hooks that measure every layer during a forward pass someone else runs (the
    dependency graph's trace), so mapping a model needs one forward, not one per table.

    ``with CostRecorder(model) as rec: model(x)``, then ``rec.table(loose_dims)``.
    ``last_weighted`` is the last conv/linear layer to finish: the classifier.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.rows = _static_rows(model, {})
        self.last_weighted: str | None = None
        weighted = (nn.Linear, nn.modules.conv._ConvNd)
        self._weighted = {n for n, m in model.named_modules() if isinstance(m, weighted)}
        self._counter = 0
        self._handles: list = []

    def _hook(self, name: str, out) -> None:
        if name in self._weighted:
            self.last_weighted = name
        r = self.rows[name]
        if not isinstance(out, torch.Tensor):
            return
        if r.order < 0:
            r.order = self._counter
            self._counter += 1
            r.out_shape = tuple(out.shape[1:])
        if r.kind == "conv":
            r.pos += int(np.prod(out.shape[2:])) if out.dim() > 2 else 1
        elif r.kind == "linear":
            r.pos += out.numel() // out.shape[0] // max(out.shape[-1], 1)
        elif r.kind == "norm":
            r.pos += out.numel() // out.shape[0] // max(r.cout, 1)

    def __enter__(self) -> CostRecorder:
        modules = dict(self.model.named_modules())
        self._handles = [
            modules[n].register_forward_hook(lambda _m, _a, o, n=n: self._hook(n, o))
            for n in self.rows
            if n in modules
        ]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def table(self, loose_dims: dict[str, int] | None = None) -> CostTable:
        """The measured table; loose parameters (which run no hook) along their dims."""
        if not loose_dims:
            return CostTable(list(self.rows.values()))
        rows = _static_rows(self.model, loose_dims)
        return CostTable([self.rows.get(n, r) if r.kind != "param" else r for n, r in rows.items()])


def build_cost_table(
    model: nn.Module, example_input: torch.Tensor, loose_dims: dict[str, int] | None = None
) -> CostTable:
    """Measure every layer once: output shape for the dummy input, channels, kernel.

    ``loose_dims`` names parameters that belong to no layer (ConvNeXt's layer scale) with
    the dim along which they follow channel removals.
    """
    was_training = model.training
    model.eval()
    try:
        with CostRecorder(model) as rec, torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
    return rec.table(loose_dims)


def count_model(model: nn.Module, input_size, loose_dims=None) -> Totals:
    """Params, FLOPs and MACs of a real model (one forward pass with a dummy input)."""
    x = torch.zeros(1, *input_size)
    return build_cost_table(model, x, loose_dims).totals()
