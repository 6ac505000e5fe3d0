"""MetaPruning (Liu et al. 2019, "MetaPruning: Meta Learning for Automatic Neural Network
Channel Pruning"): a PruningNet generates the weights of any width configuration; an
evolutionary search then compares configurations by their *generated* weights.

- PruningNet: for every conv/linear layer, two fully connected layers map the layer's
  encoding -- (keep share of its output group, keep share of its input group) -- to the
  layer's whole weight tensor, cropped to the kept channels. The last layer starts at zero
  weights with the trained model's weights as its bias, so training starts from the given
  network instead of from scratch (the paper trains from scratch; on a CPU there is no
  budget for that).
- training: ``meta_epochs`` passes over the training split less the cheap evaluator's
  held-out part, on the fine-tuning device, a random configuration (a keep share per group
  in [``min_keep``, 1]) per batch; the channels a configuration drops are
  zeroed at their producers (what removing them computes) and the criterion decides which
  ones, as in every other pipeline.
- search: the evolution of ``search`` (``candidates`` per generation, ``generations``),
  each candidate cut from the weights the PruningNet generates for its configuration,
  BatchNorm re-estimated, scored on held-out training data. The best is fine-tuned with
  the whole budget, starting from its generated weights.

The PruningNet holds ``meta_hidden`` times the parameters of the network's conv and linear
layers; a network for which that exceeds ``MAX_GENERATOR`` parameters is refused in one
line (lower ``meta_hidden``).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from studio.core.errors import StudioError
from studio.core.jobs import Events, progress
from studio.core.pipelines.candidates import Tracker, evolve, searched, setup
from studio.core.pipelines.common import plan_from_keep
from studio.core.pipelines.config import PipelineConfig
from studio.core.plan.plan import Plan
from studio.core.train.data import loader
from studio.core.train.evaluate import pick_device

MAX_GENERATOR = 200_000_000


class PruningNet(nn.Module):
    def __init__(self, model: nn.Module, s, groups: list[str], hidden: int):
        super().__init__()
        prunable = set(groups)
        self.out_group, self.in_group = {}, {}
        for g in s.groups:
            if g.id not in prunable:
                continue
            for m in g.members:
                if s.table.rows[m.row].kind in ("conv", "linear"):
                    (self.out_group if m.dim == "out" else self.in_group)[m.layer] = g.id
        self.names = sorted(
            n
            for n, mod in model.named_modules()
            if isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear))
            and (n in self.out_group or n in self.in_group)
        )
        total = sum(model.get_submodule(n).weight.numel() for n in self.names) * (hidden + 1)
        if total > MAX_GENERATOR:
            raise StudioError(
                f"MetaPruning's PruningNet would hold {total / 1e6:.0f} M parameters for this "
                f"model (limit {MAX_GENERATOR / 1e6:.0f} M): lower meta_hidden"
            )
        self.shapes = {n: model.get_submodule(n).weight.shape for n in self.names}
        self.gens = nn.ModuleList()
        for n in self.names:
            w = model.get_submodule(n).weight.detach()
            last = nn.Linear(hidden, w.numel())
            nn.init.zeros_(last.weight)
            with torch.no_grad():
                last.bias.copy_(w.flatten())
            self.gens.append(nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), last))

    def weights(self, keep: dict[str, float]) -> dict[str, torch.Tensor]:
        """``{layer.weight: generated weight}`` for the configuration ``keep``."""
        out = {}
        for n, gen in zip(self.names, self.gens):
            code = torch.tensor(
                [keep.get(self.out_group.get(n), 1.0), keep.get(self.in_group.get(n), 1.0)],
                device=gen[0].weight.device,
            )
            out[f"{n}.weight"] = gen(code).reshape(self.shapes[n])
        return out


class _Masks:
    """Multiply a group's dropped channels by zero at its producers (differentiable)."""

    def __init__(self, model, s, groups):
        self.model, self.s, self.groups = model, s, groups
        self.current: dict[str, torch.Tensor] = {}
        self.handles = []
        for gid in groups:
            for m in s.group_index[gid].members:
                if m.dim == "out" and isinstance(model.get_submodule(m.layer), nn.Module):
                    mod = model.get_submodule(m.layer)
                    self.handles.append(mod.register_forward_hook(self._hook(m)))

    def set(self, plan: Plan) -> None:
        self.current = {}
        for gid in self.groups:
            removed = set(plan.removed(gid))
            if not removed:
                continue
            for m in self.s.group_index[gid].members:
                if m.dim == "out":
                    idx = [int(i) for i, r in zip(m.idx, m.root_idx) if int(r) in removed]
                    self.current[(gid, m.layer)] = torch.as_tensor(idx, dtype=torch.long)

    def _hook(self, m):
        def hook(_mod, _args, out, key=None):
            drop = [t for (gid, layer), t in self.current.items() if layer == m.layer]
            if not drop:
                return None
            mask = torch.ones(out.shape[1], dtype=out.dtype, device=out.device)
            for t in drop:
                mask[t.to(out.device)] = 0
            return out * mask.reshape((1, -1) + (1,) * (out.dim() - 2))

        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def _keep_of(s, plan: Plan, groups) -> dict[str, float]:
    return {g: 1.0 - len(plan.removed(g)) / max(s.group_index[g].channels, 1) for g in groups}


def train_pruningnet(lm, s, scores, groups, data, cfg: PipelineConfig, rng, cancel) -> Events:
    """Train a PruningNet for ``lm`` on the fine-tuning device (``cfg.finetune.device``),
    on the training images the cheap evaluator does *not* hold out (candidates are ranked
    on images the generated weights never saw); returns it on the CPU, in eval mode."""
    device = pick_device(cfg.finetune.device)
    model = copy.deepcopy(lm.model).to(device).train()
    net = PruningNet(model, s, groups, cfg.meta_hidden).to(device)
    masks = _Masks(model, s, groups)
    fit, _held = data.holdout(cfg.holdout_fraction, seed=cfg.seed)
    dl = loader(fit, 64, shuffle=True, seed=cfg.seed)
    steps = max(1, cfg.meta_epochs * len(dl))
    opt = torch.optim.SGD(net.parameters(), lr=cfg.meta_lr, momentum=0.9)
    k = 0
    try:
        for _epoch in range(cfg.meta_epochs):
            for x, y in dl:
                if cancel is not None:
                    cancel.check()
                shape = {g: float(rng.uniform(cfg.min_keep, 1.0)) for g in groups}
                plan = plan_from_keep(s, scores, shape, Plan.empty(s))
                masks.set(plan)
                w = net.weights(_keep_of(s, plan, groups))
                x, y = x.to(device), y.to(device)
                loss = F.cross_entropy(functional_call(model, w, (x,), strict=False), y)
                for pg in opt.param_groups:
                    pg["lr"] = cfg.meta_lr * 0.5 * (1 + math.cos(math.pi * k / steps))
                opt.zero_grad()
                loss.backward()
                opt.step()
                k += 1
                if k % 10 == 0 or k == steps:
                    yield progress(k, steps, f"training the PruningNet (loss {loss.item():.3f})")
    finally:
        masks.close()
    return net.cpu().eval()


def metapruning(lm, data, cfg: PipelineConfig, cancel) -> Events:
    s, scores, ev, rng, groups = yield from setup(lm, data, cfg, cancel)
    net = yield from train_pruningnet(lm, s, scores, groups, data, cfg, rng, cancel)

    def generated(plan: Plan) -> nn.Module:
        m = copy.deepcopy(lm.model)
        with torch.no_grad():
            for name, w in net.weights(_keep_of(s, plan, groups)).items():
                p = m.get_parameter(name)
                p.copy_(w.to(p.device))
        return m

    total = cfg.candidates * cfg.generations
    track = Tracker(lm, s, scores, cfg, ev, groups, total, "MetaPruning search", generated)
    return (
        yield from searched(
            lm, data, cfg, s, track, "metapruning", evolve(track, cfg, rng, cancel), cancel
        )
    )
