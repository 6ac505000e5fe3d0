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
    assert {p.name for p in out.iterdir()} == {
        "model.json",
        "weights.pt",
        "plan.json",
        "report.json",
    }
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


def test_a_crash_between_the_two_renames_is_repaired(pruned_demo, tmp_path):
    """The swap renames out -> .out.old, then the new folder -> out. A crash between the two
    leaves only .out.old: the next read or write puts it back; a crash after both leaves a
    stale .out.old beside the complete new folder: it is removed."""
    import shutil

    from studio.core.model.checkpoint import sha256_of

    out, model, report = pruned_demo
    before = sha256_of(out / "weights.pt")
    old = out.with_name(f".{out.name}.old-1234")
    out.rename(old)  # the crash came here
    lm = load_model(str(out))
    assert lm is not None and sha256_of(out / "weights.pt") == before and not old.exists()
    shutil.copytree(out, old)  # both renames done, the old one not yet removed
    (old / "mine.txt").write_text("not the studio's")  # ... and it is not only ours
    save_pruned(out, load_model("demo"), model, None, report)
    assert (old / "mine.txt").exists()  # never removed: a foreign file
    assert not (old / "weights.pt").exists()  # the studio's own files went
    assert not [
        p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.old-") and p != old
    ]


def test_stale_partial_folders_of_dead_processes_are_removed(pruned_demo):
    out, model, report = pruned_demo
    stale = out.with_name(f".{out.name}.partial-999999999-abcd")
    stale.mkdir()
    (stale / ".pruning-studio-partial").touch()
    (stale / "weights.pt").write_bytes(b"half")
    mine = out.with_name(f".{out.name}.partial-notapid-x")  # not ours: no marker, no pid
    mine.mkdir()
    load_model(str(out))
    assert not stale.exists() and mine.exists()


def test_saved_files_follow_the_umask(demo, demo_map, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        plan = auto_plan(demo, demo_map, "l1", flops_target=0.5)
        model, report = prune(demo, demo_map, plan)
        out = save_pruned(tmp_path / "u", demo, model, plan, report)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "weights.pt").stat().st_mode) == 0o644
