"""AMC (He et al. 2018, "AutoML for Model Compression"): a DDPG agent walks the prunable
groups in order and picks each one's keep ratio.

- state of group t: (t/T, channels / the largest group's, the group's share of the FLOPs,
  the FLOPs share removed so far, the share in the groups still to come, the previous
  action) -- the paper's layer embedding for channel groups;
- action: a keep ratio in [``min_keep``, 1] from the actor, plus Gaussian exploration noise
  clipped to that range (sigma 0.5, decayed x0.95 per episode after the warm-up episodes,
  which act at random; the paper truncates the distribution instead);
- reward, the paper's resource-constrained form: the episode's shape is projected onto the
  FLOPs target (so every episode meets it) and rewarded ``-error`` on the cheap evaluator's
  held-out split, minus a moving-average baseline; every step of the episode gets it;
- actor and critic: two-layer MLPs (64 units; the paper uses 300), Adam, soft target
  updates (tau 0.01), a replay buffer, gamma = 1 as in the paper's code.

``episodes`` episodes; the best shape seen is fine-tuned with the whole budget.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from studio.core.jobs import Events
from studio.core.pipelines.candidates import Tracker, searched, setup
from studio.core.pipelines.config import PipelineConfig
from studio.core.pipelines.sensitivity import group_flops

STATE = 6
HIDDEN = 64
TAU = 0.01
BATCH = 64


def _mlp(n_in: int, out_act: nn.Module | None) -> nn.Sequential:
    layers = [nn.Linear(n_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU()]
    layers += [nn.Linear(HIDDEN, 1)] + ([out_act] if out_act is not None else [])
    return nn.Sequential(*layers)


class Agent:
    """DDPG, small: actor s -> a in (0, 1), critic (s, a) -> Q."""

    def __init__(self, seed: int):
        torch.manual_seed(seed)
        self.actor, self.critic = _mlp(STATE, nn.Sigmoid()), _mlp(STATE + 1, None)
        self.actor_t, self.critic_t = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.opt_a = torch.optim.Adam(self.actor.parameters(), lr=1e-4)
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=1e-3)
        self.buffer: list[tuple] = []

    def act(self, state: np.ndarray) -> float:
        with torch.no_grad():
            return float(self.actor(torch.as_tensor(state, dtype=torch.float32)[None])[0, 0])

    def update(self, rng: np.random.Generator) -> None:
        idx = rng.integers(0, len(self.buffer), min(BATCH, len(self.buffer)))
        s, a, r, s2, done = (
            torch.as_tensor(np.array(col), dtype=torch.float32)
            for col in zip(*(self.buffer[i] for i in idx))
        )
        with torch.no_grad():
            q2 = self.critic_t(torch.cat([s2, self.actor_t(s2)], 1))[:, 0]
            y = r + (1 - done) * q2  # gamma = 1
        q = self.critic(torch.cat([s, a[:, None]], 1))[:, 0]
        loss_c = nn.functional.mse_loss(q, y)
        self.opt_c.zero_grad()
        loss_c.backward()
        self.opt_c.step()
        loss_a = -self.critic(torch.cat([s, self.actor(s)], 1)).mean()
        self.opt_a.zero_grad()
        loss_a.backward()
        self.opt_a.step()
        for net, tgt in ((self.actor, self.actor_t), (self.critic, self.critic_t)):
            for p, pt in zip(net.parameters(), tgt.parameters()):
                pt.data.mul_(1 - TAU).add_(TAU * p.data)


def _states(s, groups, actions, flops, widest) -> list[np.ndarray]:
    """The embedding of every step of an episode given its actions so far."""
    total = float(sum(flops.values())) or 1.0
    out, removed, prev = [], 0.0, 1.0
    for t, gid in enumerate(groups):
        rest = sum(flops[g] for g in groups[t + 1 :]) / total
        g = s.group_index[gid]
        out.append(
            np.array(
                [t / len(groups), g.channels / widest, flops[gid] / total, removed, rest, prev],
                np.float32,
            )
        )
        if t < len(actions):
            removed += flops[gid] / total * (1 - actions[t])
            prev = actions[t]
    return out


def amc(lm, data, cfg: PipelineConfig, cancel) -> Events:
    s, scores, ev, rng, groups = yield from setup(lm, data, cfg, cancel)
    track = Tracker(lm, s, scores, cfg, ev, groups, cfg.episodes, "AMC episodes")
    flops = {gid: group_flops(s, s.group_index[gid]) for gid in groups}
    widest = max(s.group_index[g].channels for g in groups)
    agent = Agent(cfg.seed)
    warmup = max(1, cfg.episodes // 4)

    def episodes() -> Events:
        sigma, baseline = 0.5, None
        for ep in range(cfg.episodes):
            actions: list[float] = []
            for t in range(len(groups)):
                state = _states(s, groups, actions, flops, widest)[t]
                if ep < warmup:
                    a = rng.uniform(cfg.min_keep, 1.0)
                else:
                    a = agent.act(state) + rng.normal(0, sigma)
                    a = float(np.clip(a, cfg.min_keep, 1.0))
                actions.append(a)
            acc = yield from track(np.asarray(actions), cancel, episode=ep)
            reward = -(1.0 - acc)
            baseline = reward if baseline is None else 0.95 * baseline + 0.05 * reward
            states = _states(s, groups, actions, flops, widest)
            for t in range(len(groups)):
                last = t == len(groups) - 1
                nxt = states[t] if last else states[t + 1]
                agent.buffer.append((states[t], actions[t], reward - baseline, nxt, float(last)))
            if ep >= warmup:
                sigma *= 0.95
                for _ in range(len(groups)):
                    agent.update(rng)

    return (yield from searched(lm, data, cfg, s, track, "amc", episodes(), cancel))
