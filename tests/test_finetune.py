"""Fine-tuning: learns, distils, cancels within a batch, keeps the best weights; DDP."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from studio.core import auto_plan, prune
from studio.core.jobs import CancelToken, run
from studio.core.train.data import load_data, loader
from studio.core.train.evaluate import evaluate
from studio.core.train.finetune import FinetuneConfig, finetune, recalibrate_bn


@pytest.fixture()
def pruned(demo, demo_map):
    model, _ = prune(demo, demo_map, auto_plan(demo, demo_map, "l1", flops_target=0.4))
    return model


def _val_loss(model):
    return run(evaluate(model, loader(load_data("demo").val, 256)))["loss"]


def test_one_short_epoch_lowers_the_loss(pruned):
    before = _val_loss(pruned)
    res = run(finetune(pruned, load_data("demo"), FinetuneConfig(epochs=1, lr=0.05)))
    assert res["history"][0]["val_loss"] < before
    assert _val_loss(pruned) < before  # the model keeps the (best) trained weights
    assert res["history"][0]["images_per_s"] > 0


def test_knowledge_distillation_runs(pruned, demo):
    events = []
    cfg = FinetuneConfig(epochs=1, max_steps=6, kd_weight=0.7, kd_temperature=3.0, log_every=1)
    res = run(finetune(pruned, load_data("demo"), cfg, teacher=demo.model), events.append)
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == 6 and all(torch.isfinite(torch.tensor(e["loss"])) for e in steps)
    assert res["config"]["kd_weight"] == 0.7


def test_cancel_stops_within_one_batch_and_leaves_a_usable_model(pruned):
    tok = CancelToken()
    seen = []

    def on(ev):
        if ev["type"] == "step":
            seen.append(ev["step"])
            if ev["step"] == 3:
                tok.cancel()

    res = run(
        finetune(pruned, load_data("demo"), FinetuneConfig(epochs=5, log_every=1), cancel=tok), on
    )
    assert res["cancelled"] and res["steps"] == 3 and seen[-1] == 3
    with torch.no_grad():
        assert pruned(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_sgd_and_adamw_and_seeds(pruned):
    a, b = copy.deepcopy(pruned), copy.deepcopy(pruned)
    cfg = FinetuneConfig(epochs=1, max_steps=5, optimizer="adamw", lr=1e-3, seed=7)
    run(finetune(a, load_data("demo"), cfg))
    run(finetune(b, load_data("demo"), cfg))
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_bn_recalibration_resets_running_stats(demo):
    model = copy.deepcopy(demo.model)
    with torch.no_grad():
        model.bn1.running_mean.fill_(100.0)
    recalibrate_bn(model, loader(load_data("demo", augment=False).train, 64), batches=5)
    assert model.bn1.running_mean.abs().max() < 50
    assert not model.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_step(pruned):
    res = run(
        finetune(pruned, load_data("demo"), FinetuneConfig(epochs=1, max_steps=3, device="cuda"))
    )
    assert res["device"].startswith("cuda")


def test_torchrun_two_processes_rank0_writes(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cli = shutil.which("pruning-studio", path=str(Path(sys.executable).parent))
    if not torchrun.exists() or cli is None:
        pytest.skip("torchrun / pruning-studio not installed in this environment")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "--no-python",
            cli,
            "finetune",
            "demo",
            "--data",
            "demo",
            "--epochs",
            "1",
            "--max-steps",
            "6",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.jsonl",
        "model.json",
        "report.json",
        "weights.pt",
    ]
    rep = json.loads((out / "report.json").read_text())
    assert rep["world_size"] == 2
    epochs = [
        json.loads(ln)
        for ln in (out / "metrics.jsonl").read_text().splitlines()
        if '"epoch"' in ln and '"type": "epoch"' in ln
    ]
    assert len(epochs) == 1  # one writer: no duplicated lines from rank 1
    assert r.stdout.count("wrote") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ddp")]


def test_a_diverging_run_stops_with_a_clear_error(pruned):
    """A loss that is no longer finite stops training (a NaN model is never kept)."""
    from studio.core.errors import StudioError

    broken = copy.deepcopy(pruned)
    with torch.no_grad():
        broken.fc.bias.fill_(float("inf"))
    with pytest.raises(StudioError, match="diverged at step 1"):
        run(finetune(broken, load_data("demo"), FinetuneConfig(epochs=1, log_every=1)))
