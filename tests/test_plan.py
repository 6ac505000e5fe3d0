"""Plan JSON, validation messages, and prediction without touching the model."""

import copy

import pytest
import torch

from studio.core import Plan, PlanError, load_model, map_structure, predict, validate


def _plan(s, **groups):
    p = Plan.empty(s)
    for k, v in groups.items():
        p.set_removed(k.replace("__", "."), v)
    return p


def test_json_round_trip(tmp_path, demo_map):
    p = _plan(demo_map, layer1__0__conv1=[3, 1, 2])
    p.drop_blocks = ["layer3.2"]
    p.meta["criterion"] = "l1"
    p.save(tmp_path / "p.json")
    q = Plan.load(tmp_path / "p.json")
    assert q.to_dict() == p.to_dict()
    assert q.groups == {"layer1.0.conv1": [1, 2, 3]}


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda p: p.groups.update({"nope": [1]}), "unknown channel group 'nope'"),
        (lambda p: p.groups.update({"conv1": [16]}), "channel 16 is out of range"),
        (lambda p: p.groups.update({"conv1": list(range(16))}), "removes every channel"),
        (lambda p: p.drop_blocks.append("layer9.9"), "unknown residual block"),
        (lambda p: p.drop_blocks.append("layer3.0"), "cannot be dropped"),
        (lambda p: setattr(p, "fingerprint", "0123"), "different architecture"),
    ],
)
def test_validation_messages(demo_map, mutate, message):
    p = Plan.empty(demo_map)
    mutate(p)
    with pytest.raises(PlanError, match=message) as e:
        validate(p, demo_map)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "text,message",
    [
        ("{", "not valid JSON"),
        ('{"format": "x"}', "not a pruning plan"),
        ('{"format": "pruning-studio/plan", "version": 9}', "version 9"),
    ],
)
def test_bad_plan_files(tmp_path, text, message):
    f = tmp_path / "p.json"
    f.write_text(text)
    with pytest.raises(PlanError, match=message):
        Plan.load(f)


def test_plan_for_other_architecture_is_refused(demo_map):
    s34 = map_structure(load_model("resnet34", input_size=(3, 32, 32)))
    with pytest.raises(PlanError, match="made for a different architecture"):
        validate(Plan.empty(demo_map), s34)


def test_grouped_conv_needs_whole_positions():
    s = map_structure(load_model("resnext50_32x4d", input_size=(3, 32, 32)))
    p = Plan.empty(s)
    p.set_removed("layer1.0.conv1", [0])
    with pytest.raises(PlanError, match="grouped conv"):
        validate(p, s)
    p.set_removed("layer1.0.conv1", s.orbit_closure("layer1.0.conv1", [0]))
    validate(p, s)


def test_prediction_does_not_touch_the_model(demo, demo_map):
    before = copy.deepcopy(demo.model.state_dict())
    p = _plan(demo_map, conv1=[0, 1, 2, 3])
    p.drop_blocks = ["layer2.2"]
    t = predict(p, demo_map)
    assert t.flops < demo_map.original.flops and t.params < demo_map.original.params
    for k, v in demo.model.state_dict().items():
        assert torch.equal(v, before[k])


def test_prediction_by_hand_for_an_inner_group(demo_map):
    """Removing k channels of layer1.0.conv1 shrinks conv1's filters, bn1 and conv2's input."""
    s = demo_map
    k = 4
    t = predict(_plan(s, layer1__0__conv1=list(range(k))), s)
    hw = 8 * 8
    d_params = k * 16 * 9 + 2 * k + 16 * k * 9
    d_macs = hw * (16 * 9 * k) + hw * k + hw * (k * 9 * 16)
    assert s.original.params - t.params == d_params
    assert s.original.macs - t.macs == d_macs
