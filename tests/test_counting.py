"""Counting by hand on a tiny model, and against fvcore on torchvision models."""

import pytest
import torch
from torch import nn

from studio.core.structure.counting import build_cost_table, count_model
from studio.core.structure.fvcore_count import fvcore_by_operator, fvcore_macs


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)  # bias
        self.bn1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.conv2 = nn.Conv2d(8, 4, 1, stride=2, bias=False)
        self.fc = nn.Linear(4 * 5 * 5, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.conv2(self.dw(x))
        return self.fc(x.flatten(1))


def test_counts_by_hand():
    t = count_model(Tiny(), (3, 10, 10))
    hw = 10 * 10
    conv1 = dict(macs=hw * 3 * 9 * 8, params=3 * 9 * 8 + 8)
    conv1_flops = 2 * conv1["macs"] + hw * 8  # bias adds
    bn = dict(macs=hw * 8, flops=2 * hw * 8, params=16)
    dw = dict(macs=hw * 9 * 8, params=9 * 8)
    conv2 = dict(macs=25 * 8 * 4, params=8 * 4)
    fc = dict(macs=100 * 10, params=100 * 10 + 10)
    assert (
        t.params == conv1["params"] + bn["params"] + dw["params"] + conv2["params"] + fc["params"]
    )
    assert t.params == sum(p.numel() for p in Tiny().parameters())
    assert t.macs == conv1["macs"] + bn["macs"] + dw["macs"] + conv2["macs"] + fc["macs"]
    assert (
        t.flops
        == conv1_flops + bn["flops"] + 2 * (dw["macs"] + conv2["macs"]) + 2 * fc["macs"] + 10
    )


def test_theory_example_halving_c2_halves_cost():
    """pruning-background.md: [C2,1,3] then [3,C2,3] cost 9*C2*(1+3) params."""

    def two(c2):
        return nn.Sequential(
            nn.Conv2d(1, c2, 3, padding=1, bias=False), nn.Conv2d(c2, 3, 3, padding=1, bias=False)
        )

    full, half = count_model(two(16), (1, 6, 6)), count_model(two(8), (1, 6, 6))
    assert full.params == 9 * 16 * (1 + 3)
    assert full.flops == 18 * 36 * 16 * (1 + 3)
    assert half.params * 2 == full.params and half.flops * 2 == full.flops


@pytest.mark.parametrize(
    "arch,size", [("resnet18", 64), ("mobilenet_v2", 64), ("convnext_tiny", 64), ("vgg11_bn", 32)]
)
def test_macs_agree_with_fvcore(arch, size):
    """Conv and linear MACs are identical to fvcore's. The only other terms are norm layers:
    the studio counts 1 MAC per element (scale and shift), fvcore 2 for BatchNorm and 5 for
    LayerNorm -- docs/counting.md. Totals agree within 2% where BN is a small part."""
    import torchvision

    model = torchvision.models.get_model(arch, weights=None).eval()
    table = build_cost_table(model, torch.zeros(1, 3, size, size))
    _, _, _, _, macs = table.evaluate()
    kinds = [r.kind for r in table.rows]
    conv_linear = sum(int(m) for m, k in zip(macs, kinds) if k in ("conv", "linear"))
    norms = sum(int(m) for m, k in zip(macs, kinds) if k == "norm")
    fv = fvcore_by_operator(model, (3, size, size))
    assert conv_linear == fv.get("conv", 0) + fv.get("linear", 0)
    assert conv_linear == fvcore_macs(model, (3, size, size), conv_linear_only=True)
    assert norms == fv.get("batch_norm", 0) // 2 + fv.get("layer_norm", 0) // 5
    assert table.totals().params == sum(p.numel() for p in model.parameters())
    if arch in ("resnet18", "vgg11_bn", "convnext_tiny"):
        total = fvcore_macs(model, (3, size, size))
        assert abs(total - table.totals().macs) / total < 0.02
