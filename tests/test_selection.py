"""Parameter-driven criteria and automatic selection."""

import numpy as np
import pytest
import torch

from studio.core import WEIGHT_CRITERIA, PlanError, auto_plan, predict, score, select, validate


@pytest.mark.parametrize("criterion", WEIGHT_CRITERIA)
@pytest.mark.parametrize("target", [0.5, 0.25])
def test_flops_target_is_met_and_no_group_emptied(demo, demo_map, criterion, target):
    plan = auto_plan(demo, demo_map, criterion, flops_target=target)
    validate(plan, demo_map)
    got = predict(plan, demo_map).flops / demo_map.original.flops
    assert target - 0.03 < got <= target
    for gid, idxs in plan.groups.items():
        assert len(idxs) < demo_map.group_index[gid].channels


def test_scores_cover_every_group_and_member(demo, demo_map):
    sc = score(demo.model, demo_map, "l1")
    for g in demo_map.groups:
        assert sc[g.id].group.shape == (g.channels,)
        assert set(sc[g.id].members) == set(g.layers)


def test_l1_is_the_filter_norm_summed_over_producers(demo, demo_map):
    sc = score(demo.model, demo_map, "l1")["layer1.0.conv1"]
    w = demo.model.layer1[0].conv1.weight.detach()
    np.testing.assert_allclose(sc.group, w.abs().sum((1, 2, 3)).numpy(), rtol=1e-5)
    stage = score(demo.model, demo_map, "l1")["conv1"].group
    prods = [demo.model.conv1] + [b.conv2 for b in demo.model.layer1]
    expect = sum(m.weight.detach().abs().sum((1, 2, 3)) for m in prods)
    np.testing.assert_allclose(stage, expect.numpy(), rtol=1e-5)


def test_bn_scale_and_fpgm_rank_a_planted_weak_channel_last(demo, demo_map):
    import copy

    model = copy.deepcopy(demo.model)
    with torch.no_grad():
        model.layer2[1].bn1.weight[7] = 1e-4
        model.layer2[1].conv1.weight[5] = model.layer2[1].conv1.weight[5:].mean(0)
    assert np.argmin(score(model, demo_map, "bn_scale")["layer2.1.conv1"].group) == 7
    # filter 5 sits at the mean of the others: nearest the geometric median, FPGM's weakest
    assert np.argmin(score(model, demo_map, "fpgm")["layer2.1.conv1"].group) == 5


def test_uniform_ratio_removes_the_same_share_everywhere(demo, demo_map):
    plan = auto_plan(demo, demo_map, "l2", ratio=0.25, scope="uniform")
    for g in demo_map.groups:
        assert len(plan.removed(g.id)) == g.channels // 4


def test_round_to_keeps_multiples(r18):
    lm, s = r18
    plan = auto_plan(lm, s, "l1", flops_target=0.5, round_to=8)
    for g in s.groups:
        assert (g.channels - len(plan.removed(g.id))) % 8 == 0
    assert predict(plan, s).flops <= 0.5 * s.original.flops


def test_protected_layers_keep_their_channels(demo, demo_map):
    plan = auto_plan(
        demo, demo_map, "l1", flops_target=0.5, protect=["layer3.1.conv2", "layer2.2.conv1"]
    )
    assert "layer3.0.conv2" not in plan.groups and "layer2.2.conv1" not in plan.groups
    stage3 = demo_map.group_index["layer3.0.conv2"]
    assert stage3.is_stage and plan.removed(stage3.id) == []


def test_dropped_blocks_join_the_plan(demo, demo_map):
    plan = auto_plan(demo, demo_map, "l1", flops_target=0.5, drop_blocks=["layer3.2"])
    assert plan.drop_blocks == ["layer3.2"] and "layer3.2.conv1" not in plan.groups
    assert predict(plan, demo_map).flops <= 0.5 * demo_map.original.flops


def test_impossible_targets_are_explained(demo, demo_map):
    sc = score(demo.model, demo_map, "l1")
    with pytest.raises(PlanError, match="out of reach"):
        select(demo_map, sc, flops_target=0.001)
    with pytest.raises(PlanError, match="strictly between 0 and 1"):
        select(demo_map, sc, ratio=1.0)
    with pytest.raises(PlanError, match="unknown layer"):
        select(demo_map, sc, ratio=0.5, protect=["nope"])


def test_random_is_seeded(demo, demo_map):
    a = auto_plan(demo, demo_map, "random", ratio=0.3, seed=3)
    b = auto_plan(demo, demo_map, "random", ratio=0.3, seed=3)
    c = auto_plan(demo, demo_map, "random", ratio=0.3, seed=4)
    assert a.groups == b.groups and a.groups != c.groups


def test_grouped_conv_selection_removes_whole_positions():
    from studio.core import load_model, map_structure

    lm = load_model("resnext50_32x4d", input_size=(3, 32, 32))
    s = map_structure(lm)
    plan = auto_plan(lm, s, "l1", flops_target=0.6)
    validate(plan, s)
    grouped = [g for g in s.groups if g.channel_groups > 1 and plan.removed(g.id)]
    assert grouped
    for g in grouped:
        assert len(plan.removed(g.id)) % g.channel_groups == 0
