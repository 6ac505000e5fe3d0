"""Physical pruning over a matrix of architectures, and its exactness properties."""

import copy

import numpy as np
import pytest
import torch

from studio.core import Plan, SurgeryError, apply_plan, load_model, map_structure, predict
from studio.core.structure.counting import count_model

ARCHS = [
    ("resnet18", 64),
    ("resnet50", 64),
    ("mobilenet_v2", 64),
    ("mobilenet_v3_small", 64),
    ("vgg11_bn", 32),
    ("efficientnet_b0", 64),
    ("regnet_x_400mf", 64),
    ("resnext50_32x4d", 32),
    ("densenet121", 64),
    ("convnext_tiny", 64),
    ("googlenet", 64),
    ("mnasnet0_5", 64),
    ("squeezenet1_0", 64),
    ("alexnet", 64),
    ("inception_v3", 96),
    ("wide_resnet50_2", 32),
    ("regnet_y_400mf", 64),
]


def random_plan(s, rng, fraction=0.3, drop=1) -> Plan:
    p = Plan.empty(s)
    for g in s.groups:
        if not g.prunable:
            continue
        units = g.channels // g.channel_groups
        k = int(units * fraction)
        if k:
            p.set_removed(g.id, s.orbit_closure(g.id, rng.choice(units, k, replace=False)))
    p.drop_blocks = [b.name for b in s.blocks if b.droppable][:drop]
    return p


@pytest.mark.parametrize("arch,size", ARCHS)
def test_surgery_matrix(arch, size):
    lm = load_model(arch, input_size=(3, size, size))
    s = map_structure(lm)
    plan = random_plan(s, np.random.default_rng(0))
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    pruned = apply_plan(lm.model, s, plan)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert pruned.eval()(x).shape == lm.model.eval()(x).shape
    got, want = count_model(pruned, s.input_size), predict(plan, s)
    assert got == want and got.flops < s.original.flops
    assert sum(p.numel() for p in pruned.parameters()) == want.params
    # the original is untouched
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, before[k])


def test_reapplying_a_plan_gives_identical_weights(demo, demo_map):
    plan = random_plan(demo_map, np.random.default_rng(1), 0.4, drop=2)
    a = apply_plan(demo.model, demo_map, plan).state_dict()
    b = apply_plan(copy.deepcopy(demo.model), demo_map, plan).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tensors_really_shrink(demo, demo_map):
    p = Plan.empty(demo_map)
    p.set_removed("layer1.0.conv1", [0, 5])
    p.set_removed("conv1", [3])  # the first stage: every block's in and out
    pruned = apply_plan(demo.model, demo_map, p)
    assert pruned.layer1[0].conv1.weight.shape == (14, 15, 3, 3)
    assert pruned.layer1[0].conv2.weight.shape == (15, 14, 3, 3)
    assert pruned.layer1[2].conv2.weight.shape == (15, 16, 3, 3)
    assert pruned.layer2[0].downsample[0].weight.shape == (32, 15, 1, 1)
    assert pruned.bn1.running_mean.shape == (15,)


def test_dropped_blocks_become_identity(demo, demo_map):
    p = Plan.empty(demo_map)
    p.drop_blocks = ["layer2.1", "layer3.2"]
    pruned = apply_plan(demo.model, demo_map, p)
    assert isinstance(pruned.layer2[1], torch.nn.Identity)
    assert isinstance(pruned.layer3[2], torch.nn.Identity)


def _zero_channels(model, s, gid, idxs):
    """Zero what produces channels ``idxs`` of group ``gid``: filters, biases, norm affine."""
    g = s.group_index[gid]
    sel = set(int(i) for i in idxs)
    with torch.no_grad():
        for m in g.members:
            if m.dim != "out":
                continue
            mod = model.get_submodule(m.layer)
            rows = [int(i) for i, r in zip(m.idx, m.root_idx) if int(r) in sel]
            for name in ("weight", "bias"):
                t = getattr(mod, name, None)
                if t is not None:
                    t[rows] = 0


@pytest.mark.parametrize(
    "arch,size", [("demo", None), ("resnet18", 32), ("mobilenet_v2", 32), ("densenet121", 32)]
)
def test_zero_channels_can_be_removed_without_changing_the_output(arch, size):
    """Channels whose producing weights and BN gamma/beta are zero carry nothing: removing
    them (stage groups included) leaves the output unchanged."""
    lm = load_model(arch, input_size=None if size is None else (3, size, size))
    s = map_structure(lm)
    rng = np.random.default_rng(0)
    model = copy.deepcopy(lm.model).eval()
    plan = Plan.empty(s)
    for g in s.groups:
        if g.prunable and g.channel_groups == 1:
            idxs = rng.choice(g.channels, max(1, g.channels // 4), replace=False)
            _zero_channels(model, s, g.id, idxs)
            plan.set_removed(g.id, idxs)
    assert any(g.is_stage for g in s.groups if g.id in plan.groups) or arch == "densenet121"
    x = torch.randn(4, *s.input_size)
    with torch.no_grad():
        ref = model(x)
        out = apply_plan(model, s, plan).eval()(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_surgery_error_when_the_model_changes_under_a_plan(demo, demo_map):
    p = Plan.empty(demo_map)
    p.set_removed("layer1.0.conv1", [0])
    other = copy.deepcopy(demo.model)
    other.layer1[0].conv1 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)  # same shape
    apply_plan(other, demo_map, p)  # same structure: fine
    other.fc = torch.nn.Linear(64, 3)
    with pytest.raises(SurgeryError):
        apply_plan(other, demo_map, p)


class _ChannelScale(torch.nn.Module):
    """A hand-written per-channel scale and shift, as user code has them."""

    def __init__(self, c):
        super().__init__()
        self.gamma = torch.nn.Parameter(torch.rand(1, c, 1, 1) + 0.5)
        self.beta = torch.nn.Parameter(torch.rand(c))

    def forward(self, x):
        return x * self.gamma + self.beta.view(1, -1, 1, 1)


class _ScaledNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.s1 = torch.nn.Conv2d(3, 32, 3, 2, 1), _ChannelScale(32)
        self.c2, self.n2 = torch.nn.Conv2d(32, 64, 3, 2, 1), torch.nn.BatchNorm2d(64)
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.s1(self.c1(x)))
        return self.fc(torch.relu(self.n2(self.c2(x))).mean((2, 3)))


def test_loose_per_channel_parameters_are_counted_as_they_are_pruned():
    """Parameters of a leaf the graph prunes along their own dim (here dim 1 of a
    (1, C, 1, 1) scale) shrink in the prediction exactly as in the surgery; the channels the
    plan removes are the scale's own."""
    from studio.core import auto_plan

    lm = load_model(_ScaledNet(), input_size=(3, 32, 32))
    s = map_structure(lm)
    plan = auto_plan(lm, s, "l1", flops_target=0.5)
    pruned = apply_plan(lm.model, s, plan)  # checks counted == predicted
    removed = plan.groups["c1"]
    kept = [i for i in range(32) if i not in set(removed)]
    assert pruned.s1.gamma.shape == (1, len(kept), 1, 1)
    assert torch.equal(pruned.s1.gamma[0, :, 0, 0], lm.model.s1.gamma[0, kept, 0, 0])
    assert count_model(pruned, (3, 32, 32)) == predict(plan, s)
