"""ABCPruner (Lin et al. 2020, "Channel Pruning via Automatic Structure Search"): an
artificial bee colony over per-group channel counts.

A food source is a structure: every prunable group keeps one of ten shares of its
channels, {10%, 20%, ..., 100%} (never below ``min_keep``). Its fitness is the cheap
evaluator's held-out top-1 once the structure is projected onto the FLOPs target and cut
from the model by the criterion (the paper fine-tunes each candidate briefly instead; the
evaluator re-estimates BatchNorm, which ranks candidates at a fraction of the cost).

- employed bees: each source tries one neighbour, ``v_j = x_j + phi (x_j - x_kj)`` for a
  random dimension j, another source k and phi ~ U(-1, 1); the better of the two stays;
- onlooker bees: as many again, each visiting a source chosen with probability
  proportional to its fitness;
- scout bees: a source not improved in more than ``abc_limit`` trials is abandoned for a
  random one.

``candidates`` food sources, ``generations`` cycles; the best structure found is fine-tuned
with the whole budget.
"""

from __future__ import annotations

import numpy as np

from studio.core.jobs import Events
from studio.core.pipelines.candidates import Tracker, searched, setup
from studio.core.pipelines.config import PipelineConfig

LEVELS = 10  # keep shares k / LEVELS


def abc(lm, data, cfg: PipelineConfig, cancel) -> Events:
    s, scores, ev, rng, groups = yield from setup(lm, data, cfg, cancel)
    lo = max(1, int(np.ceil(cfg.min_keep * LEVELS)))
    n, dims = cfg.candidates, len(groups)
    per_cycle = 2 * n  # employed + onlookers (+ scouts, counted when they happen)
    track = Tracker(lm, s, scores, cfg, ev, groups, n + cfg.generations * per_cycle, "bee colony")

    def random_source():
        return rng.integers(lo, LEVELS + 1, dims)

    def fitness(x, cycle, phase) -> Events:
        return (yield from track(x / LEVELS, cancel, generation=cycle, phase=phase))

    def neighbour(i, food):
        k = rng.choice([j for j in range(n) if j != i]) if n > 1 else i
        j = rng.integers(dims)
        v = food[i].copy()
        v[j] = int(np.clip(np.rint(v[j] + rng.uniform(-1, 1) * (v[j] - food[k][j])), lo, LEVELS))
        if (v == food[i]).all():  # no move: try a random level of that dimension
            v[j] = rng.integers(lo, LEVELS + 1)
        return v

    def colony() -> Events:
        food = [random_source() for _ in range(n)]
        fit = []
        for x in food:
            fit.append((yield from fitness(x, 0, "initial")))
        trials = np.zeros(n, int)
        for cycle in range(1, cfg.generations + 1):
            for phase in ("employed", "onlooker"):
                if phase == "employed":
                    visits = list(range(n))
                else:
                    p = np.asarray(fit) + 1e-9
                    visits = list(rng.choice(n, n, p=p / p.sum()))
                for i in visits:
                    v = neighbour(i, food)
                    f = yield from fitness(v, cycle, phase)
                    if f > fit[i]:
                        food[i], fit[i], trials[i] = v, f, 0
                    else:
                        trials[i] += 1
            for i in np.flatnonzero(trials > cfg.abc_limit):  # scouts
                food[i] = random_source()
                track.total += 1
                fit[i] = yield from fitness(food[i], cycle, "scout")
                trials[i] = 0

    return (yield from searched(lm, data, cfg, s, track, "abc", colony(), cancel))
