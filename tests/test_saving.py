"""Saved pruned models reload without unpickling, writes are atomic, inputs stay intact."""

import json

import pytest
import torch

from studio.core import (
    LoadError,
    OutputError,
    StudioError,
    auto_plan,
    load_model,
    map_structure,
    prune,
    save_pruned,
)


@pytest.fixture()
def pruned_demo(demo, demo_map, tmp_path):
    plan = auto_plan(demo, demo_map, "l1", flops_target=0.5, drop_blocks=["layer1.2"])
    model, report = prune(demo, demo_map, plan)
    out = save_pruned(tmp_path / "out", demo, model, plan, report)
    return out, model, report


def test_round_trip(pruned_demo):
    out, model, report = pruned_demo
    assert {p.name for p in out.iterdir()} == {"model.json", "weights.pt", "plan.json",
                                               "report.json"}
    lm = load_model(str(out))
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x), model.eval()(x))
    rep = json.loads((out / "report.json").read_text())
    assert rep["after"]["flops"] == report["after"]["flops"] <= 0.5 * rep["before"]["flops"]
    assert {"params", "flops", "macs"} <= set(rep["before"]) and rep["layers"]


def test_prune_again_chains_plans(pruned_demo, tmp_path):
    out, _, _ = pruned_demo
    lm = load_model(str(out))
    s = map_structure(lm)
    plan = auto_plan(lm, s, "l2", flops_target=0.5)
    model, report = prune(lm, s, plan)
    out2 = save_pruned(tmp_path / "again", lm, model, plan, report)
    assert len(json.loads((out2 / "model.json").read_text())["plans"]) == 2
    lm2 = load_model(str(out2))
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(lm2.model(x), model.eval()(x))


def test_input_is_never_overwritten(pruned_demo):
    out, model, report = pruned_demo
    lm = load_model(str(out))
    with pytest.raises(StudioError, match="is the input model"):
        save_pruned(out, lm, model, None, report)


def test_corrupt_weights_are_detected(pruned_demo):
    out, _, _ = pruned_demo
    w = out / "weights.pt"
    w.write_bytes(w.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(LoadError, match="corrupt or was modified"):
        load_model(str(out))


def test_not_a_studio_folder(tmp_path):
    with pytest.raises(LoadError, match="no model.json"):
        load_model(str(tmp_path))


def test_failed_save_leaves_the_old_folder(pruned_demo, monkeypatch):
    out, model, report = pruned_demo
    before = (out / "weights.pt").read_bytes()
    lm = load_model("demo")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("studio.core.model.saving.atomic_write_text", boom)
    with pytest.raises(OutputError, match="disk full"):
        save_pruned(out, lm, model, None, report)
    assert (out / "weights.pt").read_bytes() == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]
