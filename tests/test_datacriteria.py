"""Data-driven criteria: a planted dead channel goes first; statistics by hand."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from studio.core import criteria, load_model, map_structure
from studio.core.criteria import DATA_CRITERIA
from studio.core.criteria.activations import score_data, thinet_order
from studio.core.jobs import Cancelled, CancelToken, run
from studio.core.train.data import load_data, loader

DEAD = 11


@pytest.fixture(scope="module")
def planted():
    lm = load_model("demo")
    s = map_structure(lm)
    model = copy.deepcopy(lm.model)
    with torch.no_grad():  # channel 11 of layer2.1's inner group: zero after the ReLU
        model.layer2[1].conv1.weight[DEAD] = 0
        model.layer2[1].bn1.weight[DEAD] = 0
        model.layer2[1].bn1.bias[DEAD] = 0
    return model, s


@pytest.mark.parametrize("criterion", DATA_CRITERIA)
def test_dead_channel_ranks_last(planted, criterion):
    model, s = planted
    sc = run(criteria.score(model, s, criterion, load_data("demo"), batches=4))
    sc = sc["layer2.1.conv1"]
    assert sc.group[DEAD] == sc.group.min()
    assert (sc.group == sc.group.min()).sum() == 1, "the dead channel must be alone at the bottom"
    # scored where it is consumed (KL: where it is produced, the structure it removes)
    assert set(sc.members) == ({"layer2.1.conv1"} if criterion == "kl" else {"layer2.1.conv2"})


class TwoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 1, bias=False)
        self.b = nn.Conv2d(4, 3, 1, bias=False)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))).mean((2, 3))


def test_apoz_and_mean_activation_by_hand():
    torch.manual_seed(0)
    m = TwoConv().eval()
    lm = type("LM", (), {})()
    from studio.core.structure.map import StructureMap

    s = StructureMap(m, (2, 5, 5), "twoconv")
    x = torch.randn(8, 2, 5, 5)
    dl = DataLoader(TensorDataset(x, torch.zeros(8).long()), batch_size=4)
    act = torch.relu(m.a(x)).detach()
    apoz = (act == 0).float().mean((0, 2, 3)).numpy()
    mean = act.abs().mean((0, 2, 3)).numpy()
    got_apoz = run(score_data(m, s, "apoz", dl, batches=2))["a"].group
    got_mean = run(score_data(m, s, "mean_activation", dl, batches=2))["a"].group
    np.testing.assert_allclose(got_apoz, 1 - apoz, rtol=1e-6)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-5)
    del lm


def test_thinet_greedy_on_a_known_case():
    # channel 2 contributes nothing, 0 and 1 cancel each other, 3 is large
    z = torch.tensor([[1.0, -1.0, 0.0, 5.0], [2.0, -2.0, 0.0, 5.0]], dtype=torch.float64)
    order = thinet_order(z)
    assert order[0] == 2 and order[-1] == 3 and set(order[1:3]) == {0, 1}


def test_pfa_suggests_a_width(planted):
    model, s = planted
    dl = loader(load_data("demo", augment=False).train, 64)
    sc = run(score_data(model, s, "pfa", dl, batches=4))
    w = sc["layer2.1.conv1"].extra["pfa_width"]
    assert 1 <= w < 32


def test_scoring_is_cancellable(planted):
    model, s = planted
    tok = CancelToken()
    dl = loader(load_data("demo", augment=False).train, 16)
    gen = score_data(model, s, "taylor", dl, batches=50, cancel=tok)
    next(gen)
    tok.cancel()
    with pytest.raises(Cancelled):
        next(gen)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("criterion", ["apoz", "mean_activation", "hrank", "taylor", "pfa"])
def test_passes_add_up_to_the_whole_batch(planted, criterion):
    """Scoring a batch in passes of a few images (to bound memory) gives the same scores."""
    model, s = planted
    dl = loader(load_data("demo", augment=False).train, 64)
    whole = run(score_data(copy.deepcopy(model), s, criterion, dl, batches=2))
    parts = run(score_data(copy.deepcopy(model), s, criterion, dl, batches=2, pass_images=5))
    for gid, sc in whole.items():
        np.testing.assert_allclose(parts[gid].group, sc.group, rtol=1e-4, atol=1e-6)


def test_pass_size_bounds_activation_memory():
    from studio.core.criteria.activations import SCORING_MEMORY, pass_size

    s = map_structure(load_model("resnet50"))
    biggest = max(int(np.prod(r.out_shape)) for r in s.table.rows if r.out_shape)
    n = pass_size(s, "apoz")
    assert 1 <= n < 64 and n * 16 * biggest <= SCORING_MEMORY
    assert pass_size(s, "apoz", "cuda") == 64  # a GPU gets large passes
    assert pass_size(s, "taylor") < n  # the backward keeps every activation
    assert pass_size(map_structure(load_model("demo")), "apoz") == 64
