"""The survey's remaining methods: LASSO selection and least-squares reconstruction,
subspace clustering, KL importance, ABCPruner, AMC, MetaPruning, and the harder task."""

import copy

import numpy as np
import pytest
import torch

from studio.core import auto_plan, criteria, load_model, map_structure, prune
from studio.core.criteria.activations import kmeans, lasso_path, lasso_scores, subspace_scores
from studio.core.criteria.kl import score_kl
from studio.core.jobs import Cancelled, CancelToken, run
from studio.core.plan.reconstruct import reconstruct
from studio.core.train.data import load_data, loader
from studio.core.train.evaluate import evaluate


def test_lasso_path_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12))
    y = x[:, :4] @ np.array([3.0, -2.0, 1.0, 0.5]) + 0.1 * rng.normal(size=200)
    n = len(x)
    for alpha in (0.5, 0.1, 0.01):
        ref = sklearn.Lasso(alpha=alpha, fit_intercept=False, tol=1e-10, max_iter=100_000)
        ref.fit(x, y)
        # sklearn minimises 1/(2n)|y - Xb|^2 + alpha |b|_1: the Gram form divided by n
        ours = lasso_path(x.T @ x / n, x.T @ y / n, [alpha], iters=5000)[-1]
        np.testing.assert_allclose(ours, ref.coef_, atol=1e-4)


def test_lasso_ranks_the_contributing_channels_first():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 6)) * np.array([5.0, 0.1, 3.0, 0.0, 1.0, 0.2])
    sc = lasso_scores(z)
    assert sc[3] == 0  # contributes nothing
    assert list(np.argsort(-sc)[:3]) == [0, 2, 4]


def test_subspace_keeps_one_representative_of_copies():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(400, 3))
    # channels 0-2 independent; 3 and 4 copies of 0 (scaled); 5 dead
    f = np.column_stack([base, 2 * base[:, 0], 0.5 * base[:, 0] + 1e-3 * rng.normal(size=400)])
    f = np.column_stack([f, np.zeros(400)])
    sc, k = subspace_scores(f)
    assert sc[5] == 0 and k == 3
    copies = sc[[0, 3, 4]]
    assert (copies > 0.1).sum() == 1, "exactly one of the copies is the representative"
    assert sorted(sc)[1:3] == sorted(c for c in copies if c < 0.1)  # the redundant ones next
    assert (sc[[1, 2]] > 0.5).all()


def test_kmeans_separates_clusters():
    rng = np.random.default_rng(3)
    x = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    labels = kmeans(x, 2)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1
    assert labels[0] != labels[-1]


@pytest.fixture(scope="module")
def demo_setup():
    lm = load_model("demo")
    return lm, map_structure(lm), load_data("demo")


def test_kl_is_zero_for_a_channel_that_changes_nothing(demo_setup):
    lm, s, data = demo_setup
    model = copy.deepcopy(lm.model)
    with torch.no_grad():  # channel 5 of layer3.0's inner group: zero after the ReLU
        model.layer3[0].conv1.weight[5] = 0
        model.layer3[0].bn1.weight[5] = 0
        model.layer3[0].bn1.bias[5] = 0
    x = next(iter(loader(data.calibration, 16)))[0]
    sc = run(score_kl(model, s, x))
    g = sc["layer3.0.conv1"]
    assert g.group[5] == g.group.min() and g.group[5] < 1e-9
    assert (np.delete(g.group, 5) > 1e-6).sum() >= 50  # the others change the outputs
    assert g.extra["structures"] == 64


def test_kl_chunks_large_groups_and_cancels(demo_setup):
    lm, s, data = demo_setup
    x = next(iter(loader(data.calibration, 8)))[0]
    sc = run(score_kl(lm.model, s, x, per_group=4))
    g = sc["layer3.0.conv1"]
    assert g.extra["structures"] == 4
    assert len(np.unique(np.round(g.group, 6))) <= 4 + 1  # chunk values (+ tie-breaks)
    tok = CancelToken()
    gen = score_kl(lm.model, s, x, cancel=tok)
    next(gen)
    tok.cancel()
    with pytest.raises(Cancelled):
        next(gen)


def test_kl_agrees_with_removing_the_channel(demo_setup):
    """The batched zeroing computes what physically removing the channel computes."""
    lm, s, data = demo_setup
    from studio.core.plan.plan import Plan

    x = next(iter(loader(data.calibration, 8)))[0]
    sc = run(score_kl(lm.model, s, x))["layer2.0.conv1"]
    plan = Plan.empty(s)
    plan.set_removed("layer2.0.conv1", [7])
    pruned, _ = prune(lm, s, plan)
    with torch.no_grad():
        p = torch.log_softmax(lm.model(x), 1)
        q = torch.log_softmax(pruned(x), 1)
    kl = float((p.exp() * (p - q)).sum(1).mean())
    assert sc.group[7] == pytest.approx(kl, rel=1e-3, abs=1e-7)


def test_reconstruction_recovers_accuracy_before_finetuning(demo_setup):
    lm, s, data = demo_setup
    plan = auto_plan(lm, s, "l1", flops_target=0.5)
    pruned, _ = prune(lm, s, plan)
    val = loader(data.val, 512)
    before = run(evaluate(pruned, val))["top1"]
    x = next(iter(loader(data.calibration, 256, shuffle=True)))[0]
    res = run(reconstruct(lm.model, pruned, s, plan, x))
    after = run(evaluate(pruned, val))["top1"]
    assert res["layers"] >= 10
    assert all(b <= a + 1e-12 for a, b in res["error"].values())  # never worse
    assert np.mean([b for _, b in res["error"].values()]) < 0.5 * np.mean(
        [a for a, _ in res["error"].values()]
    )
    assert after > before + 0.3, (before, after)


def test_reconstruction_is_exact_when_the_removed_channels_are_dead(demo_setup):
    lm, s, data = demo_setup
    model = copy.deepcopy(lm.model)
    with torch.no_grad():
        for c in (1, 4):
            model.layer1[1].conv1.weight[c] = 0
            model.layer1[1].bn1.weight[c] = 0
            model.layer1[1].bn1.bias[c] = 0
    from studio.core.model.loaded import LoadedModel
    from studio.core.plan.plan import Plan

    lm2 = LoadedModel(model.eval(), lm.source, "planted", lm.arch, lm.input_size)
    plan = Plan.empty(s)
    plan.set_removed("layer1.1.conv1", [1, 4])
    pruned, _ = prune(lm2, s, plan)
    x = next(iter(loader(data.calibration, 64)))[0]
    res = run(reconstruct(model, pruned, s, plan, x))
    assert list(res["error"]) == ["layer1.1.conv2"]
    before, after = res["error"]["layer1.1.conv2"]
    assert before < 1e-10 and after < 1e-10


def test_clutter_task_is_deterministic_and_hard():
    data = load_data("clutter")
    assert data.input_size == (1, 32, 32)
    x1 = data.train[0][0]
    from studio.core.model import clutter

    clutter.split_tensors.cache_clear()
    assert torch.equal(load_data("clutter").train[0][0], x1)
    train_idx, val_idx = clutter.demo.split_indices(0)
    assert len(data.train) == 3 * len(train_idx) and len(data.val) == 3 * len(val_idx)
    lm = load_model("clutter")
    assert lm.arch == "demo_clutter" and lm.input_size == (1, 32, 32)
    top1 = run(evaluate(lm.model, loader(data.val, 512)))["top1"]
    assert top1 > 0.85  # the shipped checkpoint
    s = map_structure(lm)
    pruned, _ = prune(lm, s, auto_plan(lm, s, "l1", flops_target=0.25))
    assert run(evaluate(pruned, loader(data.val, 512)))["top1"] < top1 - 0.3
    with pytest.raises(Exception, match="clutter:1"):
        load_data("clutter:x")


@pytest.mark.parametrize("criterion", ["lasso", "subspace", "kl"])
def test_new_criteria_plan_to_a_target(demo_setup, criterion):
    lm, s, data = demo_setup
    sc = run(criteria.score(lm.model, s, criterion, data, batches=2))
    plan = auto_plan(lm, s, criterion, flops_target=0.5, scores=sc)
    pruned, report = prune(lm, s, plan)
    assert report["after"]["flops"] <= 0.5 * s.original.flops


@pytest.mark.parametrize("pipeline", ["abc", "amc", "metapruning"])
def test_search_pipelines_cancel_to_the_best_so_far(demo_setup, pipeline):
    from studio.core.pipelines import PipelineConfig, run_pipeline
    from studio.core.train.finetune import FinetuneConfig

    lm, s, data = demo_setup
    cfg = PipelineConfig(
        pipeline=pipeline,
        flops_target=0.4,
        candidates=4,
        generations=3,
        episodes=10,
        meta_epochs=1,
        meta_hidden=2,
        bn_batches=1,
        eval_batches=1,
        score_batches=1,
        finetune=FinetuneConfig(epochs=1, max_steps=2),
    )
    tok = CancelToken()
    seen = []

    def on(ev):
        if ev.get("type") == "candidate":
            seen.append(ev)
            if len(seen) == 2:
                tok.cancel()

    res = run(run_pipeline(lm, data, cfg, cancel=tok), on)
    assert res["cancelled"] and len(res["history"]["candidates"]) == 2
    assert res["model"].model is not None
    assert all(c["flops"] <= 0.4 * s.original.flops for c in res["history"]["candidates"])


def test_pruningnet_starts_from_the_trained_weights(demo_setup, monkeypatch):
    from studio.core.errors import StudioError
    from studio.core.pipelines import metapruning

    lm, s, _ = demo_setup
    groups = [g.id for g in s.groups if g.prunable]
    net = metapruning.PruningNet(lm.model, s, groups, 4)
    w = net.weights({g: 0.5 for g in groups})
    assert len(w) == 22  # 19 3x3 convs, 2 shortcut convs and the classifier
    for name, t in w.items():
        assert torch.equal(t, lm.model.get_parameter(name))
    monkeypatch.setattr(metapruning, "MAX_GENERATOR", 1000)
    with pytest.raises(StudioError, match="lower meta_hidden"):
        metapruning.PruningNet(lm.model, s, groups, 4)


def test_cli_prune_reconstruct_reports_both_accuracies(tmp_path):
    import json
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=300
        )

    r = cli("prune", "demo", "--flops-target", "0.4", "--reconstruct", "--out", str(tmp_path / "a"))
    assert r.returncode != 0 and "--reconstruct needs calibration images" in r.stderr
    assert not (tmp_path / "a").exists()  # refused before any work
    r = cli(
        "prune", "demo", "--criterion", "lasso", "--data", "demo", "--flops-target", "0.4",
        "--reconstruct", "--out", str(tmp_path / "b"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "reconstructed" in r.stdout and "with" in r.stdout
    rec = json.loads((tmp_path / "b" / "report.json").read_text())["reconstruction"]
    assert rec["top1_with"] > rec["top1_without"] and rec["error_after"] < rec["error_before"]


def test_recipe_target_with_reconstruction(tmp_path, demo_setup):
    from studio.core.recipe import Recipe, run_recipe

    rec = Recipe.from_dict(
        {
            "format": "pruning-studio/recipe",
            "version": 1,
            "model": {"spec": "demo"},
            "data": "demo",
            "steps": [{"target": {"flops": 0.3, "criterion": "subspace", "reconstruct": True}}],
        }
    )
    assert rec.all_steps()[0].needs_data
    report = run(run_recipe(rec, tmp_path / "out"))
    assert report["after"]["flops"] <= 0.3 * report["before"]["flops"]
    assert report["top1_after"] > 0.8  # refit, not fine-tuned: a plain prune scores ~0.1


@pytest.mark.parametrize("pipeline", ["sampling", "search", "abc", "amc", "metapruning"])
def test_search_pipelines_refuse_a_model_without_prunable_groups(pipeline):
    from studio.core.errors import PlanError
    from studio.core.pipelines import PipelineConfig, run_pipeline
    from studio.core.train.finetune import FinetuneConfig

    lm = load_model(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10)), input_size=(3, 4, 4)
    )
    cfg = PipelineConfig(pipeline=pipeline, finetune=FinetuneConfig(epochs=0))
    with pytest.raises(PlanError, match="no prunable channel group"):
        run(run_pipeline(lm, load_data("synthetic", (3, 4, 4)), cfg))


class _Padded(torch.nn.Module):
    """Consumers padded as users write them: 'same' with reflection, circular."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 3, padding="same", padding_mode="reflect")
        self.c = torch.nn.Conv2d(8, 6, 3, padding=1, padding_mode="circular")
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, x):
        x = torch.relu(self.b(torch.relu(self.a(x))))
        return self.fc(torch.relu(self.c(x)).mean((2, 3)))


def test_reconstruction_follows_the_layers_padding():
    from studio.core.plan.plan import Plan
    from studio.core.plan.reconstruct import _rows

    torch.manual_seed(0)
    lm = load_model(_Padded().eval(), input_size=(3, 10, 10))
    s = map_structure(lm)
    # the rows it builds are exactly what the layer computes
    x = torch.randn(2, 8, 10, 10)
    for name in ("b", "c"):
        mod = lm.model.get_submodule(name)
        loc = torch.arange(100).repeat(2, 1)
        w = mod.weight.reshape(len(mod.weight), -1)
        y = (_rows(mod, x, loc) @ w.T + mod.bias).reshape(2, 100, -1).permute(0, 2, 1)
        torch.testing.assert_close(y.reshape(2, -1, 10, 10), mod(x), rtol=1e-4, atol=1e-5)
    plan = Plan.empty(s)
    plan.set_removed("a", [0, 3])
    pruned, _ = prune(lm, s, plan)
    res = run(reconstruct(lm.model, pruned, s, plan, torch.randn(64, 3, 10, 10)))
    assert "b" in res["error"]
    before, after = res["error"]["b"]
    assert after < before
