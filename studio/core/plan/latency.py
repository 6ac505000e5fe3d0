"""Latency-aware selection (after HALP, Shen et al. 2022): remove channels where they buy the
most *measured* time per unit of importance lost, on this machine, at a chosen batch.

Two parts:

- ``LatencyTable``: the time of one convolution or linear layer with given input and output
  widths, measured alone under the deploy treatment (BatchNorm folded into a biased conv;
  channels-last when chosen) and remembered per machine in a JSON file beside the structure
  cache. FLOPs say a conv's time falls with the product of its widths; measured, a
  bandwidth-bound one falls with its output width, and some widths are slower than larger
  ones (kernel blocking, caches). The table is what a plan's latency is predicted from.
- ``allocate``: a greedy allocation. From the full model, every group offers to lose its next
  one to four steps of ``step`` channels (its lowest-scored ones). To a FLOPs target the
  offer taken saves the most predicted time per FLOP removed, over the mean (per-group
  normalised) importance of the channels it removes; to a latency target, the most time per
  importance lost (HALP's knapsack, greedily). Looking up to four steps ahead lets it see
  past a width that is slower than the one above it. No group loses more than
  ``max_ratio`` of its channels.

Only convolutions and linear layers are timed, each alone: element-wise work (activations,
additions, pooling) is not in the prediction. So ``latency_plan`` times a FLOPs-target plan
whole against the uniform plan of the same target and keeps the faster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from studio.core.criteria.weights import GroupScores
from studio.core.errors import PlanError, StudioError
from studio.core.io import atomic_write_text, read_text
from studio.core.jobs import CancelToken, Events, check, progress
from studio.core.plan.plan import Plan, add_removal, dropped_rows, predict
from studio.core.plan.selection import _normalize, _Unit, _units, check_max_ratio, keep_layers
from studio.core.structure.counting import CONV
from studio.core.structure.map import StructureMap

log = logging.getLogger(__name__)

LOOKAHEAD = 4  # steps a group may lose in one move
MAX_TABLE_ENTRIES = 200_000
COLD_BYTES = 64 * 2**20  # more than a CPU's last-level cache
MAX_COPIES = 512
ROUNDS = 5  # a layer's time is the least of this many rounds
FAIR_SHARE = 0.02  # the uniform plan is compared if it keeps at most this much less FLOPs
_TIMED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


# -- geometry -------------------------------------------------------------------------------
class Layer:
    """What it takes to rebuild one timed layer at other widths."""

    def __init__(self, row: int, m: nn.Module, in_shape: tuple[int, ...], dw: bool):
        self.row = row
        self.cls = type(m)
        self.in_shape = tuple(int(v) for v in in_shape)  # per sample, channels excluded
        self.dw = dw
        self.padding_mode = getattr(m, "padding_mode", "zeros")  # timed as zeros
        if isinstance(m, nn.Linear):
            self.conv = None
        else:
            self.conv = dict(
                kernel_size=m.kernel_size,
                stride=m.stride,
                padding=m.padding,
                dilation=m.dilation,
                groups=m.groups,
            )

    def key(self, cin: int, cout: int) -> str:
        geo = ""
        if self.conv is not None:  # a depthwise conv's groups follow its width
            c = dict(self.conv, groups=None if self.dw else self.conv["groups"])
            geo = json.dumps({**c, "padding_mode": self.padding_mode}, sort_keys=True, default=str)
        return f"{self.cls.__name__}|{geo}|{self.dw}|{self.in_shape}|{cin}|{cout}"

    def weight_shape(self, cin: int, cout: int) -> tuple[int, ...]:
        if self.conv is None:
            return (cout, cin)
        groups = cout if self.dw else self.conv["groups"]
        return (cout, cin // groups, *self.conv["kernel_size"])

    def input_shape(self, cin: int) -> tuple[int, ...]:
        """The input's shape without the batch."""
        return (*self.in_shape, cin) if self.conv is None else (cin, *self.in_shape)

    def __call__(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.linear(x, w, b)
        c = self.conv
        fn = (F.conv1d, F.conv2d, F.conv3d)[len(c["kernel_size"]) - 1]
        groups = w.shape[0] if self.dw else c["groups"]
        return fn(x, w, b, c["stride"], c["padding"], c["dilation"], groups)


def layers_of(model: nn.Module, s: StructureMap) -> dict[int, Layer]:
    """Cost-table row -> ``Layer`` for every executed conv and linear layer (one forward at
    batch 1 records their input shapes)."""
    t = s.table
    named = dict(model.named_modules())
    shapes: dict[str, tuple] = {}
    hooks = []
    for i, name in enumerate(t.names):
        m = named.get(name)
        if t.code[i] != CONV or not isinstance(m, _TIMED):
            continue

        def hook(mod, args, name=name):
            if args and isinstance(args[0], torch.Tensor) and name not in shapes:
                shp = tuple(args[0].shape[1:])
                shapes[name] = shp[:-1] if isinstance(mod, nn.Linear) else shp[1:]

        hooks.append(m.register_forward_pre_hook(hook))
    was = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, *s.input_size))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return {
        t.index[n]: Layer(t.index[n], named[n], shp, bool(t.dw[t.index[n]]))
        for n, shp in shapes.items()
    }


# -- the table ------------------------------------------------------------------------------
MAX_TABLE_BYTES = 64 * 2**20
PROBE_DRIFT = 1.5  # a table is kept while the probe runs within this factor of its time
_PROBE = Layer(-1, nn.Conv2d(64, 64, 3, padding=1), (56, 56), dw=False)


def _machine() -> str:
    from studio.core.train.evaluate import cpu_name

    return f"{cpu_name()}|{platform.system()}|torch {torch.__version__}"


def table_path(batch: int, channels_last: bool, threads: int) -> Path | None:
    """The JSON file a machine's table lives in (None when the cache is off)."""
    from studio.core.structure.cache import cache_dir

    folder = cache_dir()
    if folder is None:
        return None
    h = hashlib.sha256(f"{_machine()}|{batch}|{channels_last}|{threads}".encode()).hexdigest()
    return folder / f"latency-{h[:32]}.json"


class LatencyTable:
    """Measured milliseconds of a layer at given widths (batch ``batch``, ``threads``
    threads, channels-last or not), read from and saved to ``path``."""

    def __init__(self, batch: int = 1, channels_last: bool = False, path="auto"):
        self.batch = int(batch)
        self.channels_last = bool(channels_last)
        self.threads = torch.get_num_threads()
        self.path = (
            table_path(self.batch, self.channels_last, self.threads) if path == "auto" else path
        )
        self.entries: dict[str, float] = {}
        self.measured = 0
        self.cancel: CancelToken | None = None  # checked before each measurement
        self._pool = torch.empty(0)
        self.probe_ms: float | None = None
        self._read()
        if self.probe_ms is None and self.path is not None:
            self.probe_ms = self.probe()  # the speed the new entries are measured at

    def probe(self) -> float:
        """The time of one fixed convolution (batch 1): the machine's speed right now."""
        return self._measure(_PROBE, 64, 64, batch=1)

    def _read(self) -> None:
        """The saved table, if it is sound and the machine runs the probe as fast as when
        it was measured (a table measured while something else ran is measured again)."""
        if self.path is None or not Path(self.path).is_file():
            return
        try:
            d = json.loads(read_text(self.path, "latency table", MAX_TABLE_BYTES))
            e, then = d["entries"], d["probe_ms"]
            if d.get("machine") != _machine() or not isinstance(e, dict):
                return
            if not (type(then) is float and math.isfinite(then) and then > 0):
                return
            if len(e) > MAX_TABLE_ENTRIES or not all(
                isinstance(k, str) and type(v) is float and math.isfinite(v) and v > 0
                for k, v in e.items()
            ):
                return
        except (StudioError, OSError, ValueError, KeyError, TypeError, RecursionError):
            log.debug("latency table %s unreadable; measuring again", self.path)
            return
        self.probe_ms = self.probe()
        if not 1 / PROBE_DRIFT < self.probe_ms / then < PROBE_DRIFT:
            log.info(
                "latency table %s was measured at another machine speed (probe %.3f ms "
                "then, %.3f now); measuring again",
                self.path,
                then,
                self.probe_ms,
            )
            return
        self.entries = e

    def save(self) -> None:
        """Keep what was measured -- unless the machine's speed changed while it was."""
        if self.path is None or not self.measured:
            return
        if self.probe_ms is None:
            self.probe_ms = self.probe()
        now = self.probe()
        if not 1 / PROBE_DRIFT < now / self.probe_ms < PROBE_DRIFT:
            log.info("latency table not saved: the machine's speed changed while measuring")
            return
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                Path(self.path),
                json.dumps(
                    {"machine": _machine(), "probe_ms": self.probe_ms, "entries": self.entries},
                    indent=0,
                ),
            )
        except (OSError, StudioError) as e:  # a read-only cache costs a re-measure, no more
            log.debug("latency table not saved: %s", e)

    def ms(self, layer: Layer, cin: int, cout: int) -> float:
        if cin < 1 or cout < 1:
            return 0.0
        key = layer.key(cin, cout)
        got = self.entries.get(key)
        if got is None:
            check(self.cancel)
            try:
                got = self._measure(layer, cin, cout)
            except (RuntimeError, MemoryError) as e:  # e.g. no memory for the batch
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                raise PlanError(
                    f"timing a {layer.cls.__name__} with {cin} -> {cout} channels at batch "
                    f"{self.batch} failed: {first}"
                ) from None
            self.entries[key] = got
            self.measured += 1
        return got

    def _measure(self, layer: Layer, cin: int, cout: int, batch: int | None = None) -> float:
        """Least time per call of ROUNDS rounds. The calls cycle through copies of the
        weights (``COLD_BYTES`` in all, at most ``MAX_COPIES`` copies), so each call reads
        them from memory as in the whole model, not from a cache the previous call warmed."""
        shape = layer.weight_shape(cin, cout)
        per = 4 * math.prod(shape)
        copies = max(1, min(MAX_COPIES, math.ceil(COLD_BYTES / per)))
        cl = self.channels_last and len(shape) == 4
        n = math.prod(shape)
        if self._pool.numel() < copies * (n + cout):  # random numbers made once, viewed
            self._pool = torch.randn(copies * (n + cout))
        w = self._pool[: copies * n]
        b = self._pool[copies * n : copies * (n + cout)].view(copies, cout)
        if cl:  # (copies, out, kh, kw, in) seen as (copies, out, in, kh, kw): NHWC weights
            w = w.view(copies, shape[0], *shape[2:], shape[1]).permute(0, 1, 4, 2, 3)
        else:
            w = w.view(copies, *shape)
        x = torch.randn(batch or self.batch, *layer.input_shape(cin))
        if cl:
            x = x.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            t0 = time.perf_counter()
            layer(x, w[0], b[0])
            first = time.perf_counter() - t0
            calls = max(1, min(max(copies, 3), math.ceil(2e-3 / max(first, 1e-7))))
            best, i = math.inf, 0
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                for _ in range(calls):
                    i = (i + 1) % copies
                    layer(x, w[i], b[i])
                best = min(best, (time.perf_counter() - t0) / calls)
        return best * 1e3


# -- allocation -----------------------------------------------------------------------------
class _Offer:
    """A group losing its next ``k - k0`` units: what it saves and what it costs."""

    def __init__(self, u: _Unit, k: int, saved: float, flops_saved: float, lost: float, vec):
        self.u, self.k, self.saved, self.flops_saved, self.lost = u, k, saved, flops_saved, lost
        self.rm_in, self.rm_out, self.cin, self.cout, self.flops = vec


class _Greedy:
    """The allocation's state: removal counts per cost-table row and per group, the
    widths and FLOPs they give, and the predicted time of the timed layers."""

    def __init__(self, s, units, layers, table, step: int, by_flops: bool, drop_blocks=()):
        self.s, self.units, self.table = s, units, table
        self.step, self.by_flops = step, by_flops
        self.dropped = dropped_rows(s, drop_blocks)  # rows that cost nothing, not timed
        if self.dropped is not None:
            layers = {r: lay for r, lay in layers.items() if not self.dropped[r]}
        self.layers = layers
        self.rm_in, self.rm_out = s.table.zeros(), s.table.zeros()
        self.cin, self.cout, self.flops = self.widths(self.rm_in, self.rm_out)
        self.rows = {u.g.id: sorted({m.row for m in u.g.members}) for u in units}
        self.cost = {
            u.g.id: np.concatenate([[0.0], np.cumsum(_normalize(u.score)[u.order])]) for u in units
        }
        self.removed = {u.g.id: 0 for u in units}
        self.flops0 = float(self.flops.sum())
        self.lat0 = self.lat = 0.0

    def widths(self, rm_in, rm_out):
        cin, cout, _, flops, _ = self.s.table.evaluate(rm_in, rm_out, self.dropped)
        return cin, cout, flops

    def latency(self, rows, cin, cout) -> float:
        return sum(
            self.table.ms(self.layers[r], int(cin[r]), int(cout[r]))
            for r in rows
            if r in self.layers
        )

    def now(self) -> float:
        """Where the target is measured: FLOPs, or the predicted time."""
        return float(self.flops.sum()) if self.by_flops else self.lat

    def start(self) -> float:
        return self.flops0 if self.by_flops else self.lat0

    def _unit_step(self, u: _Unit) -> int:
        return self.step if u.g.orbit is None else max(1, round(self.step * u.n / u.g.channels))

    def offers(self, u: _Unit) -> list[_Offer]:
        """The group losing its next 1 .. LOOKAHEAD steps."""
        k0, rows, out = self.removed[u.g.id], self.rows[u.g.id], []
        base = self.latency(rows, self.cin, self.cout)
        seen = k0
        for j in range(1, LOOKAHEAD + 1):
            k = u.allowed(k0 + j * self._unit_step(u))
            if k <= seen:
                break
            seen = k
            a, b = self.rm_in.copy(), self.rm_out.copy()
            add_removal(u.g, u.g.channels_of(u.order[k0:k]), a, b)
            ci, co, fl = self.widths(a, b)
            if (co[rows] < 1).any():
                break
            saved = base - self.latency(rows, ci, co)
            lost = float(self.cost[u.g.id][k] - self.cost[u.g.id][k0])
            fsaved = float(self.flops.sum() - fl.sum())
            out.append(_Offer(u, k, saved, fsaved, lost, (a, b, ci, co, fl)))
        return out

    def key(self, o: _Offer) -> float | None:
        if o.flops_saved <= 0:
            return None
        if self.by_flops:  # time saved per FLOP removed, over the channels' mean importance
            mean_lost = o.lost / max(o.k - self.removed[o.u.g.id], 1)
            rate = (max(o.saved, 1e-12) / max(self.lat0, 1e-12)) / (o.flops_saved / self.flops0)
            return rate / max(mean_lost, 1e-9)
        if o.saved <= 0:  # time saved per importance lost (HALP's knapsack, greedily)
            return None
        return o.saved / max(o.lost, 1e-9)

    def best(self, goal: float) -> _Offer | None:
        """The offer with the best key; when it would reach the goal, the offer among all
        that reach it which lands closest to it (the target, not beyond)."""
        best, best_key, every = None, None, []
        for u in self.units:
            for o in self.offers(u):
                key = self.key(o)
                if key is None:
                    continue
                every.append((o, key))
                if best_key is None or key > best_key:
                    best, best_key = o, key
        if best is None or self.reach(best) > goal:
            return best
        done = [(self.reach(o), key, o) for o, key in every if self.reach(o) <= goal]
        return max(done, key=lambda t: (t[0], t[1]))[2]

    def reach(self, o: _Offer) -> float:
        """Where the target's measure would stand after ``o``."""
        return float(o.flops.sum()) if self.by_flops else self.lat - o.saved

    def take(self, o: _Offer) -> None:
        self.removed[o.u.g.id] = o.k
        self.rm_in, self.rm_out = o.rm_in, o.rm_out
        self.cin, self.cout, self.flops = o.cin, o.cout, o.flops
        self.lat -= o.saved


def allocate(
    s: StructureMap,
    scores: dict[str, GroupScores],
    layers: dict[int, Layer],
    table: LatencyTable,
    *,
    flops_target: float | None = None,
    latency_target: float | None = None,
    step: int = 16,
    max_ratio: float = 0.5,
    protect=(),
    drop_blocks=(),
    meta: dict | None = None,
    cancel: CancelToken | None = None,
) -> Events:
    """Greedy latency-aware selection to a FLOPs share or a predicted-latency share (one of
    the two). Yields progress; returns the plan."""
    if (flops_target is None) == (latency_target is None):
        raise PlanError("latency-aware selection needs a FLOPs target or a latency target")
    target = flops_target if flops_target is not None else latency_target
    if not 0 < target < 1:
        raise PlanError(f"the target must lie strictly between 0 and 1 (got {target})")
    unknown = set(protect) - set(s.table.names) - set(s.group_index)
    if unknown:
        raise PlanError(f"cannot protect unknown layer '{sorted(unknown)[0]}'")
    check_max_ratio(max_ratio)
    units = _units(s, scores, step, set(protect), drop_blocks, max_ratio)
    limits = f"steps of {step} channels, no group losing more than {max_ratio:g} of them"
    if flops_target is not None:  # out of reach? say so before timing anything
        most = Plan.empty(s)
        most.drop_blocks = sorted(drop_blocks)
        for u in units:
            if u.allowed(u.n):
                most.groups[u.g.id] = u.channels(u.allowed(u.n))
        least = predict(keep_layers(most, s, {u.g.id: u for u in units}), s).flops
        if least > flops_target * s.original.flops:
            raise PlanError(
                f"FLOPs target {flops_target:g} is out of reach: with {limits} (and the "
                f"protected layers), the model keeps at least "
                f"{least / s.original.flops:.3f} of its FLOPs"
            )
    gr = _Greedy(s, units, layers, table, step, flops_target is not None, drop_blocks)
    timed = sorted(gr.layers)
    yield progress(0, 1, f"timing {len(timed)} layers at batch {table.batch}")
    gr.lat0 = gr.lat = gr.latency(timed, gr.cin, gr.cout)
    # targets are shares of the whole model's, dropped blocks included (as for select)
    dense = gr.latency(sorted(layers), gr.cin, gr.cout)
    if dense <= 0:
        raise PlanError("no convolution or linear layer of this model could be timed")
    ref = float(s.original.flops) if gr.by_flops else dense
    goal = target * ref
    moves = 0
    while gr.now() > goal:
        check(cancel)
        o = gr.best(goal)
        if o is None:
            what = "FLOPs" if gr.by_flops else "predicted latency"
            raise PlanError(
                f"{what} target {target:g} is out of reach: with {limits}, the model keeps "
                f"at least {gr.now() / ref:.3f} of its {what}"
            )
        gr.take(o)
        moves += 1
        done = (gr.start() - gr.now()) / (gr.start() - goal)
        yield progress(min(999, int(1000 * done)), 1000, f"latency-aware selection ({moves} moves)")
    plan = Plan.empty(s)
    plan.drop_blocks = sorted(drop_blocks)
    for u in units:
        if gr.removed[u.g.id]:
            plan.groups[u.g.id] = u.channels(gr.removed[u.g.id])
    plan = keep_layers(plan, s, {u.g.id: u for u in units})
    plan.meta = dict(
        meta or {},
        scope="latency",
        round_to=step,
        max_ratio=max_ratio,
        protect=sorted(protect),
        latency={
            "batch": table.batch,
            "channels_last": table.channels_last,
            "threads": table.threads,
            "predicted_ms": round(gr.latency(timed, gr.cin, gr.cout), 3),
            "dense_ms": round(dense, 3),
            "layers_timed": len(timed),
            "measured": table.measured,
        },
    )
    plan.meta["flops_target" if gr.by_flops else "latency_target"] = target
    return plan


def measure_setup(model: nn.Module, s: StructureMap, channels_last: str = "auto"):
    """(layers, use channels-last): the deploy treatment's memory-format choice for the
    dense model, and its timed layers. Runs ``model`` (give it a copy of a shared one)."""
    use = channels_last == "on"
    if channels_last == "auto":
        from studio.core.export.deploy import deploy_model

        use = bool(deploy_model(model, s.input_size, channels_last="auto")[1]["channels_last"])
    return layers_of(model, s), use


def latency_plan(
    model: nn.Module,
    s: StructureMap,
    scores: dict[str, GroupScores],
    *,
    batch: int = 1,
    channels_last: str = "auto",
    table_file="auto",
    check_uniform: bool = True,
    cancel: CancelToken | None = None,
    **kw,
) -> Events:
    """Measure (or read) the table for ``model`` at ``batch`` and allocate; returns the
    plan. ``kw`` goes to ``allocate``. To a FLOPs target, the plan is then timed whole
    against the uniform plan of the same target (``check_uniform``), and the faster one is
    kept: the table times layers alone, and what counts is the whole model. ``model`` is
    never run: all of this works on one copy (a window's model is shared with its view)."""
    import copy

    from studio.core.plan.target import MAX_LATENCY_BATCH

    if not 1 <= int(batch) <= MAX_LATENCY_BATCH:
        raise PlanError(f"the latency batch must be 1 to {MAX_LATENCY_BATCH} (got {batch})")
    model = copy.deepcopy(model)
    layers, use = measure_setup(model, s, channels_last)
    table = LatencyTable(batch, use, table_file)
    table.cancel = cancel
    try:
        plan = yield from allocate(s, scores, layers, table, cancel=cancel, **kw)
    finally:
        table.save()  # what was measured is kept, even for a cancelled run
    if check_uniform and kw.get("flops_target") is not None:
        yield progress(0, 1, f"timing the plan whole against the uniform one (batch {batch})")
        plan = _against_uniform(model, s, scores, plan, table, layers, cancel=cancel, **kw)
    return plan


def _against_uniform(model, s, scores, plan: Plan, table, layers, cancel=None, **kw) -> Plan:
    """The faster of ``plan`` and the uniform plan of the same FLOPs target, both timed
    whole under the deploy treatment at the table's batch, interleaved."""
    from studio.core.export.deploy import deploy_model
    from studio.core.plan.plan import predicted_widths
    from studio.core.plan.selection import select
    from studio.core.plan.surgery import apply_plan
    from studio.core.train.evaluate import compare_latency

    try:
        uniform = select(
            s,
            scores,
            flops_target=kw["flops_target"],
            scope="uniform",
            round_to=kw.get("step", 16),
            protect=kw.get("protect", ()),
            drop_blocks=kw.get("drop_blocks", ()),
            max_ratio=kw.get("max_ratio", 0.5),
        )
    except PlanError:  # the uniform plan cannot reach this target: nothing to compare
        return plan
    if predict(uniform, s).flops < predict(plan, s).flops - FAIR_SHARE * s.original.flops:
        return plan  # rounding took it well below: a faster plan, but not the same target
    fmt = "on" if table.channels_last else "off"
    ours, theirs = (
        deploy_model(apply_plan(model, s, p).eval(), s.input_size, channels_last=fmt)[0]
        for p in (plan, uniform)
    )
    res = compare_latency(
        theirs, ours, s.input_size, 1.0, batch_sizes=(table.batch,), cancel=cancel
    )
    b = str(table.batch)
    ms = {k: res[k]["batch"][b]["median_ms"] for k in ("original", "pruned")}
    faster = ms["pruned"] <= ms["original"]  # the medians it reports decide
    record = dict(plan.meta["latency"])
    record["whole"] = {
        "latency_ms": round(ms["pruned"], 3),
        "uniform_ms": round(ms["original"], 3),
        "kept": "latency" if faster else "uniform",
    }
    if faster:
        plan.meta["latency"] = record
        return plan
    # the uniform plan is kept: say so, and predict its time from the same table
    w = predicted_widths(uniform, s)
    names = s.table.names
    record["predicted_ms"] = round(
        sum(table.ms(lay, *w[names[r]]) for r, lay in layers.items() if names[r] in w), 3
    )
    uniform.meta = {
        **plan.meta,
        "scope": "uniform",
        "round_to": uniform.meta["round_to"],
        "chosen_by": "latency: timed whole, faster than the latency-aware plan",
        "latency": record,
    }
    return uniform
