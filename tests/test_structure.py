"""Known groups, stages and droppable blocks of real architectures."""

import pytest
import torch

from studio.core import load_model, map_structure


def test_demo_structure(demo_map):
    s = demo_map
    assert s.classifier == "fc"
    assert [st.name for st in s.stages] == ["layer1", "layer2", "layer3"]
    assert [st.channels for st in s.stages] == [16, 32, 64]
    assert all(len(st.blocks) == 3 for st in s.stages)
    droppable = [b.name for b in s.blocks if b.droppable]
    assert droppable == [
        "layer1.0",
        "layer1.1",
        "layer1.2",
        "layer2.1",
        "layer2.2",
        "layer3.1",
        "layer3.2",
    ]
    assert "changes shape" in s.block_index["layer2.0"].reason
    # one filter group inside each of the 9 blocks + 3 stage groups
    assert sum(not g.is_stage for g in s.groups) == 9 and len(s.groups) == 12
    g = s.group_index["layer1.0.conv1"]
    assert {(m.layer, m.dim) for m in g.members} == {
        ("layer1.0.conv1", "out"),
        ("layer1.0.bn1", "out"),
        ("layer1.0.conv2", "in"),
    }
    assert g.block == "layer1.0"
    stage1 = s.group_index["conv1"]  # the stem feeds the first stage's residual stream
    layers = set(stage1.layers)
    assert {
        "conv1",
        "layer1.0.conv2",
        "layer1.2.conv2",
        "layer1.1.conv1",
        "layer2.0.downsample.0",
        "layer2.0.conv1",
    } <= layers


def test_resnet18_structure(r18):
    lm, s = r18
    assert len(s.groups) == 12  # 4 stages + one inner group per 8 blocks
    assert [(st.name, st.channels) for st in s.stages] == [
        ("layer1", 64),
        ("layer2", 128),
        ("layer3", 256),
        ("layer4", 512),
    ]
    assert [b.name for b in s.blocks if b.droppable] == [
        "layer1.0",
        "layer1.1",
        "layer2.1",
        "layer3.1",
        "layer4.1",
    ]
    assert "fc" not in {m.layer for g in s.groups for m in g.members if m.dim == "out"}
    # the classifier's input follows the last stage
    assert ("fc", "in") in {(m.layer, m.dim) for m in s.group_index[s.stages[-1].id].members}
    assert s.original.params == sum(p.numel() for p in lm.model.parameters())


def test_mobilenet_v2_structure():
    lm = load_model("mobilenet_v2", input_size=(3, 64, 64))
    s = map_structure(lm)
    assert s.classifier == "classifier.1"
    blocks = [b.name for b in s.blocks]
    # inverted residuals with a skip connection: 10 of the 17 blocks
    assert blocks == [
        "features.3",
        "features.5",
        "features.6",
        "features.8",
        "features.9",
        "features.10",
        "features.12",
        "features.13",
        "features.15",
        "features.16",
    ]
    assert all(b.droppable for b in s.blocks)
    assert [st.channels for st in s.stages] == [24, 32, 64, 96, 160]
    # an expansion group carries its depthwise conv along
    g = s.group_index["features.2.conv.0.0"]
    assert ("features.2.conv.1.0", "out") in {(m.layer, m.dim) for m in g.members}


def test_squeezenet_conv_classifier_is_protected():
    s = map_structure(load_model("squeezenet1_0", input_size=(3, 64, 64)))
    assert s.classifier == "classifier.1"
    assert s.group_of_layer("classifier.1") is None


def test_grouped_conv_groups_know_their_channel_groups():
    s = map_structure(load_model("resnext50_32x4d", input_size=(3, 32, 32)))
    g = s.group_index["layer1.0.conv1"]
    assert g.channel_groups == 32 and g.channels == 128
    closed = s.orbit_closure(g.id, [0])
    assert list(closed) == [4 * k for k in range(32)]


@pytest.mark.parametrize("arch", ["demo", "resnet18", "resnet50"])
def test_layer_table_is_json_ready(arch):
    import json

    lm = load_model(arch, input_size=None if arch == "demo" else (3, 32, 32))
    d = map_structure(lm).as_dict()
    json.dumps(d)
    assert {"params", "flops", "macs", "layers", "groups", "stages", "blocks"} <= set(d)
    assert d["flops"] >= 2 * d["macs"]


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "mobilenet_v3_small"])
def test_one_forward_maps_like_separate_passes(arch):
    """The map records its cost table, blocks and classifier during the dependency graph's
    trace; each equals what its own forward pass finds."""
    import torch

    from studio.core.structure.blocks import find_blocks
    from studio.core.structure.counting import build_cost_table
    from studio.core.structure.map import StructureMap

    lm = load_model(arch, input_size=(3, 64, 64))
    s = StructureMap(lm.model, lm.input_size, arch)
    x = torch.zeros(1, *lm.input_size)
    table = build_cost_table(lm.model, x, s.loose_dims)
    assert [r.__dict__ for r in s.table.rows] == [r.__dict__ for r in table.rows]
    unstaged = lambda bs: [dict(b.__dict__, stage=None) for b in bs]  # noqa: E731
    assert unstaged(s.blocks) == unstaged(find_blocks(lm.model, x))
    assert bool(s.blocks) == (arch != "densenet121")  # DenseNet concatenates, never adds
    weighted = [n for n in table.executed_order if table.rows[table.index[n]].kind != "norm"]
    assert s.classifier == [n for n in weighted if n in dict(lm.model.named_modules())][-1]
    assert s.original == table.totals()


def test_a_residual_added_in_place_into_a_view_is_a_block():
    """GhostNet: ``x = cat(...)[:, :c]; x += shortcut`` -- autograd records the add inside a
    CopySlices node."""
    from torch import nn

    from studio.core.structure.blocks import find_blocks

    class Ghostish(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = self.a(x)
            y = torch.cat([y, self.b(y)], 1)[:, :8]
            y += x
            return y

    net = nn.Sequential(nn.Conv2d(3, 8, 1), Ghostish(), nn.Conv2d(8, 2, 1))
    blocks = find_blocks(net, torch.rand(1, 3, 8, 8))
    assert [b.name for b in blocks] == ["1"] and blocks[0].droppable
