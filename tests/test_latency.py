"""Latency-aware selection: the measured look-up table and the greedy allocation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from studio.core import auto_plan, load_model, map_structure
from studio.core.errors import PlanError, StudioError
from studio.core.jobs import Cancelled, CancelToken, run
from studio.core.plan import latency as L
from studio.core.plan.plan import Plan, predict, predicted_widths, validate
from studio.core.plan.surgery import apply_plan
from studio.core.plan.target import Target
from studio.core.structure.counting import count_model


class FakeTable(L.LatencyTable):
    """A table whose 'measurements' are a formula of the layer and its widths."""

    def __init__(self, formula, batch=1):
        super().__init__(batch, False, path=None)
        self.formula = formula

    def _measure(self, layer, cin, cout):
        return float(self.formula(layer, cin, cout))


@pytest.fixture(scope="module")
def r18m():
    lm = load_model("resnet18", input_size=(3, 64, 64))
    s = map_structure(lm)
    from studio.core import verbs

    return lm, s, L.layers_of(lm.model, s), run(verbs.score(lm.model, s, "l1"))


def _flops_formula(s):
    """Time proportional to the FLOPs (what a FLOPs count assumes)."""

    def f(layer, cin, cout):
        geo = layer.weight_shape(cin, cout)
        return np.prod(geo) * s.table.rows[layer.row].pos * 1e-6

    return f


def _kept(plan, s, gid):
    return s.group_index[gid].channels - len(plan.removed(gid))


def test_allocation_cuts_where_time_is_and_meets_the_flops_target(r18m):
    lm, s, layers, scores = r18m
    base = _flops_formula(s)

    # layer2's inner groups' layers are made ten times slower than their FLOPs say
    def slow_layer2(layer, cin, cout):
        name = s.table.names[layer.row]
        return base(layer, cin, cout) * (10 if name.startswith("layer2.") else 1)

    plan = run(L.allocate(s, scores, layers, FakeTable(slow_layer2), flops_target=0.6, step=8))
    validate(plan, s)
    # the last move lands on the target, not past it (the smallest step that reaches it)
    assert 0.58 * s.original.flops <= predict(plan, s).flops <= 0.6 * s.original.flops
    # no group loses more than half (the default cap) and widths are multiples of 8
    for gid, idxs in plan.groups.items():
        g = s.group_index[gid]
        assert len(idxs) <= g.channels // 2
        assert (g.channels - len(idxs)) % 8 == 0
    # layer2's inner groups go to the cap before layer4's do
    assert _kept(plan, s, "layer2.0.conv1") == 64
    assert _kept(plan, s, "layer2.1.conv1") == 64
    assert plan.meta["scope"] == "latency" and plan.meta["latency"]["layers_timed"] == len(layers)
    assert plan.meta["latency"]["predicted_ms"] < plan.meta["latency"]["dense_ms"]
    # what the allocation predicted is what the plan's widths give
    w = predicted_widths(plan, s)
    t = FakeTable(slow_layer2)
    again = sum(t.ms(layers[r], *w[s.table.names[r]]) for r in layers)
    assert again == pytest.approx(plan.meta["latency"]["predicted_ms"], rel=1e-3)


def test_lookahead_jumps_past_a_width_slower_than_the_full_one(r18m):
    lm, s, layers, scores = r18m
    base = _flops_formula(s)
    shape = layers[s.table.index["layer1.0.conv1"]].key(0, 0)

    # layer1's 3x3 convs (one shape: the table keys by shape) are slower with 56, 48 or
    # 40 output channels than with 64, and cheap with 32
    def cliff(layer, cin, cout):
        t = base(layer, cin, cout)
        if layer.key(0, 0) == shape:
            return {64: 1.0, 56: 1.5, 48: 1.5, 40: 1.4}.get(cout, 0.01) * 50 * t
        return t

    plan = run(
        L.allocate(s, scores, layers, FakeTable(cliff), flops_target=0.7, step=8, max_ratio=0.5)
    )
    assert _kept(plan, s, "layer1.0.conv1") == 32
    assert _kept(plan, s, "layer1.1.conv1") == 32


def test_latency_target_is_met_and_protected_layers_keep_their_channels(r18m):
    lm, s, layers, scores = r18m
    t = FakeTable(_flops_formula(s))
    plan = run(
        L.allocate(s, scores, layers, t, latency_target=0.7, step=8, protect=["layer3.0.conv1"])
    )
    lat = plan.meta["latency"]
    assert lat["predicted_ms"] <= 0.7 * lat["dense_ms"] + 1e-9
    assert plan.meta["latency_target"] == 0.7
    assert not plan.removed("layer3.0.conv1")


def test_out_of_reach_and_bad_arguments_are_one_line(r18m):
    lm, s, layers, scores = r18m
    t = FakeTable(_flops_formula(s))
    with pytest.raises(PlanError, match="out of reach: .* keeps at least 0.[0-9]+ of its FLOPs"):
        run(L.allocate(s, scores, layers, t, flops_target=0.05, step=8))
    with pytest.raises(PlanError, match="FLOPs target or a latency target"):
        run(L.allocate(s, scores, layers, t, flops_target=0.5, latency_target=0.5))
    with pytest.raises(PlanError, match="strictly between 0 and 1"):
        run(L.allocate(s, scores, layers, t, flops_target=1.5))
    with pytest.raises(PlanError, match="unknown layer 'nope'"):
        run(L.allocate(s, scores, layers, t, flops_target=0.5, protect=["nope"]))
    with pytest.raises(PlanError, match="must lie in"):
        run(L.allocate(s, scores, layers, t, flops_target=0.5, max_ratio=0))


def test_a_cancelled_selection_raises_cancelled(r18m):
    lm, s, layers, scores = r18m
    tok = CancelToken()
    gen = L.allocate(s, scores, layers, FakeTable(_flops_formula(s)), flops_target=0.5, cancel=tok)
    next(gen)
    tok.cancel()
    with pytest.raises(Cancelled):
        for _ in gen:
            pass


@pytest.fixture()
def steady(monkeypatch):
    """Tables are kept whatever the probe says (a shared test machine's speed drifts)."""
    monkeypatch.setattr(L, "PROBE_DRIFT", 1e9)


def test_the_measured_table_is_saved_reread_and_a_damaged_one_is_remeasured(r18m, tmp_path, steady):
    lm, s, layers, scores = r18m
    path = tmp_path / "latency-x.json"
    kw = dict(batch=2, channels_last="off", table_file=path, flops_target=0.7)
    plan = run(L.latency_plan(lm.model, s, scores, check_uniform=False, **kw))
    first = plan.meta["latency"]
    assert first["measured"] > 0 and first["batch"] == 2 and not first["channels_last"]
    assert all(v > 0 for v in json.loads(path.read_text())["entries"].values())
    # the same selection again: nothing measured, the same plan
    again = run(L.latency_plan(lm.model, s, scores, check_uniform=False, **kw))
    assert again.meta["latency"]["measured"] == 0
    assert again.groups == plan.groups
    # a damaged table is a miss, not an error
    path.write_text('{"machine": 3, "entries": {"a": "b"}')
    third = run(L.latency_plan(lm.model, s, scores, **kw))
    assert third.meta["latency"]["measured"] > 0

    # the model it was given is untouched (no hooks left, mode kept)
    assert lm.model.training is lm.model.training
    assert not any(m._forward_pre_hooks for m in lm.model.modules())


def test_the_plan_prunes_physically_to_its_predicted_cost(r18m, tmp_path):
    lm, s, layers, scores = r18m
    plan = run(
        L.latency_plan(
            lm.model,
            s,
            scores,
            batch=1,
            channels_last="off",
            table_file=tmp_path / "t.json",
            flops_target=0.6,
        )
    )
    m = apply_plan(lm.model, s, plan)
    assert count_model(m, s.input_size).flops == predict(plan, s).flops
    assert m(torch.randn(2, *s.input_size)).shape == (2, lm.num_classes)


def test_depthwise_grouped_and_linear_layers_are_timed_at_pruned_widths():
    lm = load_model("mobilenet_v2", input_size=(3, 64, 64))
    s = map_structure(lm)
    layers = L.layers_of(lm.model, s)
    kinds = {(lay.dw, lay.conv is None) for lay in layers.values()}
    assert {(True, False), (False, False), (False, True)} <= kinds
    t = L.LatencyTable(1, True, path=None)
    for lay in list(layers.values())[:6] + [layers[max(layers)]]:
        cin, cout = (
            s.table.cin[lay.row] // 2 if not lay.dw else s.table.cout[lay.row] // 2,
            s.table.cout[lay.row] // 2,
        )
        assert t.ms(lay, int(cin), int(cout)) > 0
    assert t.measured == 7


def test_target_checks_the_latency_scope():
    assert Target(flops=0.5, scope="latency").round_to == 16
    assert Target(flops=0.5, scope="latency", round_to=32).round_to == 32
    assert Target(flops=0.5).round_to == 1
    for bad, msg in (
        (dict(latency=0.5), "needs scope 'latency'"),
        (dict(ratio=0.5, scope="latency"), "not a ratio"),
        (dict(flops=0.5, scope="latency", round_to=4), "give 8 or more"),
        (dict(flops=0.5, latency=0.5, scope="latency"), "not both flops and latency"),
        (dict(flops=0.5, latency_batch=16), "latency_batch needs scope 'latency'"),
    ):
        with pytest.raises(ValidationError, match=msg):
            Target(**bad)


def _whole_times(latency_ms, uniform_ms):
    """A stand-in for timing two plans whole: which one wins is this test's choice."""

    def compare(original, pruned, size, ratio, batch_sizes, cancel=None):
        b = str(batch_sizes[0])
        return {
            "original": {"batch": {b: {"median_ms": uniform_ms}}},
            "pruned": {"batch": {b: {"median_ms": latency_ms}}},
            "speedup": {b: uniform_ms / latency_ms},
        }

    return compare


def test_auto_plan_latency_scope_and_max_ratio_for_global(r18m, tmp_path, monkeypatch, steady):
    lm, s, layers, scores = r18m
    import studio.core.train.evaluate as ev

    monkeypatch.setenv("PRUNING_STUDIO_CACHE", str(tmp_path))
    # the table is measured for real; the whole check is not what this test is about
    # (on a shared machine either plan can win it)
    monkeypatch.setattr(ev, "compare_latency", _whole_times(1.0, 1.25))
    plan = auto_plan(lm, s, "l1", flops_target=0.6, scope="latency", round_to=8)
    assert plan.meta["scope"] == "latency" and plan.meta["max_ratio"] == 0.5
    assert list(tmp_path.glob("latency-*.json"))
    with pytest.raises(StudioError, match="not a ratio"):
        auto_plan(lm, s, "l1", ratio=0.5, scope="latency", round_to=8)
    with pytest.raises(StudioError, match="needs the latency-aware scope"):
        auto_plan(lm, s, "l1", latency_target=0.5)
    # the global ranking with a cap: no group loses more than a quarter
    capped = auto_plan(lm, s, "l1", flops_target=0.6, max_ratio=0.25)
    assert capped.meta["max_ratio"] == 0.25
    assert all(len(v) <= s.group_index[g].channels // 4 for g, v in capped.groups.items())
    assert predict(capped, s).flops <= 0.6 * s.original.flops
    assert isinstance(Plan.from_dict(plan.to_dict()), Plan)


def test_the_uniform_plan_is_kept_when_it_runs_faster_whole(r18m, tmp_path, monkeypatch):
    lm, s, layers, scores = r18m
    import studio.core.train.evaluate as ev

    monkeypatch.setattr(ev, "compare_latency", _whole_times(1.25, 1.0))
    # a table by formula: this test is about the choice, not the machine
    monkeypatch.setattr(
        L.LatencyTable,
        "_measure",
        lambda self, layer, cin, cout, batch=None: 1e-6 * np.prod(layer.weight_shape(cin, cout)),
    )
    kw = dict(batch=1, channels_last="off", table_file=tmp_path / "t.json", flops_target=0.8)
    plan = run(L.latency_plan(lm.model, s, scores, **kw))
    uniform = auto_plan(
        lm, s, "l1", flops_target=0.8, scope="uniform", round_to=16, scores=scores, max_ratio=0.5
    )
    assert plan.groups == uniform.groups
    assert plan.meta["scope"] == "uniform" and plan.meta["chosen_by"].startswith("latency")
    assert plan.meta["latency"]["whole"] == {
        "latency_ms": 1.25,
        "uniform_ms": 1.0,
        "kept": "uniform",
    }
    # a latency target is not checked against a FLOPs-target plan
    lt = run(
        L.latency_plan(lm.model, s, scores, **{**kw, "flops_target": None}, latency_target=0.6)
    )
    assert "whole" not in lt.meta["latency"]


def test_a_layer_that_cannot_be_timed_is_one_line(r18m, monkeypatch):
    lm, s, layers, scores = r18m
    t = L.LatencyTable(1, False, path=None)

    def boom(layer, cin, cout):
        raise RuntimeError(
            "DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB\nmore"
        )

    monkeypatch.setattr(t, "_measure", boom)
    with pytest.raises(
        PlanError,
        match=r"^timing a Conv2d with 3 -> 64 channels at batch 1 failed: "
        r"DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB$",
    ):
        run(L.allocate(s, scores, layers, t, flops_target=0.5))


def test_dropped_blocks_cost_nothing_and_are_not_timed(r18m):
    lm, s, layers, scores = r18m
    drop = ["layer3.1", "layer4.1"]
    t = FakeTable(_flops_formula(s))
    plan = run(L.allocate(s, scores, layers, t, flops_target=0.7, step=8, drop_blocks=drop))
    assert plan.drop_blocks == sorted(drop)
    got = predict(plan, s).flops / s.original.flops
    assert 0.6 < got <= 0.7  # the drop counts toward the target, not on top of it
    timed = plan.meta["latency"]["layers_timed"]
    assert timed == len(layers) - sum(s.table.names[r].startswith(tuple(drop)) for r in layers)


def test_a_table_measured_at_another_speed_or_too_deep_is_measured_again(
    r18m, tmp_path, monkeypatch
):
    lm, s, layers, scores = r18m
    monkeypatch.setattr(L, "PROBE_DRIFT", 100.0)
    path = tmp_path / "t.json"
    kw = dict(batch=1, channels_last="off", table_file=path, flops_target=0.7)
    run(L.latency_plan(lm.model, s, scores, check_uniform=False, **kw))
    d = json.loads(path.read_text())
    assert d["probe_ms"] > 0
    again = run(L.latency_plan(lm.model, s, scores, check_uniform=False, **kw))
    assert again.meta["latency"]["measured"] == 0
    d["probe_ms"] *= 1000  # measured while something else ran
    path.write_text(json.dumps(d))
    assert run(L.latency_plan(lm.model, s, scores, check_uniform=False, **kw)).meta["latency"][
        "measured"
    ]
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert run(L.latency_plan(lm.model, s, scores, check_uniform=False, **kw)).meta["latency"][
        "measured"
    ]


def test_a_ratio_above_the_cap_is_refused(r18m):
    lm, s, layers, scores = r18m
    with pytest.raises(StudioError, match="removes more than the 0.25 any one group may lose"):
        auto_plan(lm, s, "l1", ratio=0.8, scope="uniform", max_ratio=0.25)


def test_out_of_reach_is_said_before_timing_and_names_the_limits(r18m):
    lm, s, layers, scores = r18m
    t = FakeTable(_flops_formula(s))
    with pytest.raises(PlanError, match="with steps of 8 channels, no group losing more than 0.5"):
        run(L.allocate(s, scores, layers, t, flops_target=0.05, step=8))
    assert t.measured == 0


def test_a_read_only_cache_costs_a_remeasure_not_the_run(r18m, tmp_path, monkeypatch, steady):
    from studio.core.errors import OutputError

    lm, s, layers, scores = r18m

    def refuse(path, text):
        raise OutputError(f"cannot write {path}: permission denied")

    monkeypatch.setattr(L, "atomic_write_text", refuse)
    kw = dict(batch=1, channels_last="off", table_file=tmp_path / "t.json", flops_target=0.7)
    plan = run(L.latency_plan(lm.model, s, scores, check_uniform=False, **kw))
    assert plan.groups and not (tmp_path / "t.json").exists()


def test_a_uniform_plan_far_below_the_target_is_not_a_fair_comparison(demo, demo_map, monkeypatch):
    import studio.core.train.evaluate as ev
    from studio.core import verbs

    s = demo_map
    scores = run(verbs.score(demo.model, s, "l1"))
    called = []
    monkeypatch.setattr(ev, "compare_latency", lambda *a, **k: called.append(1))
    monkeypatch.setattr(
        L.LatencyTable,
        "_measure",
        lambda self, layer, cin, cout, batch=None: 1e-6 * np.prod(layer.weight_shape(cin, cout)),
    )
    # demo's groups are 16, 32 and 64 wide: uniform steps of 9 land far below 0.7
    kw = dict(batch=1, channels_last="off", table_file=None, flops_target=0.7, step=9)
    plan = run(L.latency_plan(demo.model, s, scores, max_ratio=1.0, **kw))
    assert plan.meta["scope"] == "latency" and "whole" not in plan.meta["latency"]
    assert not called
    assert predict(plan, s).flops >= 0.6 * s.original.flops
