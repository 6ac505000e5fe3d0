"""Pipelines, sensitivity and recipes."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from studio.core import load_model, map_structure
from studio.core.errors import InputError
from studio.core.jobs import CancelToken, run
from studio.core.pipelines import PIPELINES, PipelineConfig, run_pipeline
from studio.core.pipelines.common import Evaluator
from studio.core.pipelines.sensitivity import sensitivity, suggest_ratios
from studio.core.recipe import Recipe, RecipeError, make_recipe, run_recipe
from studio.core.structure.counting import count_model
from studio.core.train.data import load_data
from studio.core.train.finetune import FinetuneConfig

FAST = dict(
    candidates=3,
    generations=2,
    bn_batches=2,
    rounds=2,
    score_batches=2,
    ratios=(0.3, 0.7),
    eval_batches=1,
    episodes=3,
    meta_epochs=1,
    meta_hidden=2,
)


class Forbidden(Dataset):
    """The validation split: any read fails the test."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        raise AssertionError("the validation split was read")


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_pipeline_meets_the_flops_target(demo, pipeline):
    data = load_data("demo")
    cfg = PipelineConfig(
        pipeline=pipeline, flops_target=0.4, finetune=FinetuneConfig(epochs=1, max_steps=3), **FAST
    )
    res = run(run_pipeline(demo, data, cfg))
    got = count_model(res["model"].model, demo.input_size).flops
    assert got <= 0.4 * map_structure(demo).original.flops
    assert res["history"]["pipeline"] == pipeline
    json.dumps(res["history"], default=float)  # the history is JSON-ready


@pytest.mark.parametrize(
    "pipeline", ["sampling", "search", "sensitivity", "abc", "amc", "metapruning"]
)
def test_selection_never_reads_the_validation_split(demo, pipeline):
    data = load_data("demo")
    data.val = Forbidden(data.val)
    cfg = PipelineConfig(
        pipeline=pipeline, flops_target=0.5, finetune=FinetuneConfig(epochs=0), **FAST
    )
    res = run(run_pipeline(demo, data, cfg))
    assert res["model"] is not None


def test_heldout_is_part_of_the_training_split():
    data = load_data("demo")
    ev = Evaluator(data, PipelineConfig())
    d = __import__("studio.core.model.demo", fromlist=["x"]).load_digits()
    assert len(ev.held_indices) > 100
    assert max(ev.held_indices) < len(d["train_idx"])  # indices into the training set


def test_cancel_mid_pipeline_keeps_the_best_so_far(demo):
    data = load_data("demo")
    tok = CancelToken()
    cfg = PipelineConfig(
        pipeline="iterative",
        flops_target=0.3,
        rounds=3,
        score_batches=2,
        finetune=FinetuneConfig(epochs=3, max_steps=2),
    )

    def on(ev):
        if ev.get("type") == "round" and ev["round"] == 1:
            tok.cancel()

    res = run(run_pipeline(demo, data, cfg, cancel=tok), on)
    h = res["history"]
    assert h["cancelled"] and len(h["rounds"]) == 1
    with torch.no_grad():
        assert res["model"].model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert len(res["model"].plans) == 1


def test_sensitivity_finds_a_planted_useless_group(demo):
    lm = copy.deepcopy(demo)
    s = map_structure(lm)
    with torch.no_grad():  # layer3.1's inner channels carry almost nothing
        lm.model.layer3[1].conv2.weight.mul_(1e-4)
    data = load_data("demo")
    cfg = PipelineConfig(ratios=(0.3, 0.6, 0.9), bn_batches=3, score_batches=2)
    sens = run(sensitivity(lm, data, cfg))
    curves = sens["curves"]
    drop = {g: sens["base_top1"] - c[-1] for g, c in curves.items()}
    assert drop["layer3.1.conv1"] == min(drop.values())
    from studio.core.criteria import weights as criteria

    plan = suggest_ratios(s, criteria.score(lm.model, s, "l1"), sens, 0.85)
    assert plan.meta["ratios"].get("layer3.1.conv1") == max(plan.meta["ratios"].values())


def test_recipe_round_trip_from_the_window_format(tmp_path, demo, demo_map):
    from studio.core import auto_plan

    plan = auto_plan(demo, demo_map, "fpgm", flops_target=0.5, drop_blocks=["layer3.2"])
    rec = make_recipe(demo.request.record(), [{"plan": plan.to_dict()}], data=None)
    rec.save(tmp_path / "r.json")
    report = run(run_recipe(Recipe.load(tmp_path / "r.json"), out_dir=tmp_path / "out"))
    saved = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert saved["groups"] == plan.to_dict()["groups"]
    assert saved["drop_blocks"] == ["layer3.2"]
    assert report["after"]["flops"] <= 0.5 * report["before"]["flops"]


@pytest.mark.parametrize(
    "text,msg",
    [
        ('{"format": "x"}', "not a recipe"),
        (
            '{"format": "pruning-studio/recipe", "version": 1, "model": {"spec": "demo"}, '
            '"pipeline": {"pipeline": "search"}}',
            "need a data source",
        ),
        (
            '{"format": "pruning-studio/recipe", "version": 1, "model": {"spec": "demo"}, '
            '"bogus": 1}',
            "bogus: unknown field",
        ),
        (
            '{"format": "pruning-studio/recipe", "version": 1, "model": {"spec": "demo"}, '
            '"target": {"flops": 1.5}}',
            "target.flops: Input should be less than 1",
        ),
    ],
)
def test_bad_recipes(tmp_path, text, msg):
    f = tmp_path / "r.json"
    f.write_text(text)
    with pytest.raises(RecipeError, match=msg):
        Recipe.load(f)


def test_example_recipes_are_valid():
    root = Path(__file__).resolve().parents[1] / "examples"
    files = sorted(root.glob("*.json")) + sorted(root.glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        Recipe.load(f)


def test_run_recipe_cli_with_a_pipeline(tmp_path):
    rec = {
        "format": "pruning-studio/recipe",
        "version": 1,
        "model": {"spec": "demo"},
        "data": "demo",
        "target": {"flops": 0.5},
        "pipeline": {"pipeline": "sampling", **{k: v for k, v in FAST.items() if k != "ratios"}},
        "finetune": {"epochs": 1, "max_steps": 3},
    }
    (tmp_path / "r.json").write_text(json.dumps(rec))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "run",
            "--recipe",
            str(tmp_path / "r.json"),
            "--out",
            str(tmp_path / "o"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["after"]["flops"] <= 0.5 * rep["before"]["flops"]
    hist = json.loads((tmp_path / "o" / "pipeline.json").read_text())
    assert len(hist["candidates"]) == 3 and "chosen" in hist
    metrics = (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()
    assert any(json.loads(m)["type"] == "epoch" for m in metrics)


def test_sensitivity_cli(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "sensitivity",
            "demo",
            "--data",
            "demo",
            "--ratios",
            "0.3,0.7",
            "--flops-target",
            "0.6",
            "--plan-out",
            str(tmp_path / "p.json"),
            "--out",
            str(tmp_path / "s.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path / "s.json").read_text())
    assert len(d["curves"]) == 12 and d["ratios"] == [0.3, 0.7]
    from studio.core import Plan, predict

    s = map_structure(load_model("demo"))
    assert predict(Plan.load(tmp_path / "p.json"), s).flops <= 0.6 * s.original.flops


def test_recipe_under_torchrun(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cli = shutil.which("pruning-studio", path=str(Path(sys.executable).parent))
    if not torchrun.exists() or cli is None:
        pytest.skip("torchrun / pruning-studio not installed in this environment")
    rec = {
        "format": "pruning-studio/recipe",
        "version": 1,
        "model": {"spec": "demo"},
        "data": "demo",
        "target": {"flops": 0.5},
        "finetune": {"epochs": 1, "max_steps": 4},
    }
    (tmp_path / "r.json").write_text(json.dumps(rec))
    r = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "--no-python",
            cli,
            "run",
            "--recipe",
            str(tmp_path / "r.json"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "o" / "report.json").read_text())["world_size"] == 2
    assert r.stdout.count("wrote") == 1


def test_unknown_pipeline_setting():
    with pytest.raises(InputError, match="populaton: unknown field"):
        PipelineConfig.from_dict({"pipeline": "search", "populaton": 3})
    assert np.isclose(PipelineConfig.from_dict({"ratios": [0.5]}).ratios[0], 0.5)


def test_iterative_schedules():
    from pydantic import ValidationError

    from studio.core.pipelines.iterative import round_targets

    geo = round_targets(PipelineConfig(flops_target=0.25, rounds=2))
    assert np.allclose(geo, [0.5, 0.25])
    lin = round_targets(PipelineConfig(flops_target=0.4, rounds=3, schedule="linear"))
    assert np.allclose(lin, [0.8, 0.6, 0.4])
    assert round_targets(PipelineConfig(schedule=[0.7, 0.3])) == [0.7, 0.3]
    with pytest.raises(ValidationError, match="decreasing"):
        PipelineConfig(schedule=[0.3, 0.7])


def test_iterative_with_an_explicit_schedule(demo):
    cfg = PipelineConfig(
        pipeline="iterative",
        schedule=[0.7, 0.45],
        flops_target=0.45,
        score_batches=2,
        finetune=FinetuneConfig(epochs=2, max_steps=2),
    )
    res = run(run_pipeline(demo, load_data("demo"), cfg))
    shares = [r["flops"] / r["base_flops"] for r in res["history"]["rounds"]]
    assert len(shares) == 2 and shares[0] <= 0.7 and shares[1] <= 0.45
