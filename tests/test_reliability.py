"""The bad-input corpus (tests/reliability/corpus.yaml): every case is refused with one
specific line, runs no code and leaves the user's files alone (docs/reliability.md)."""

import os

import pytest

from tests.reliability.runner import cases, run_case

CASES = cases()


def test_the_corpus_is_large_and_covers_every_family():
    fams = {c["family"] for c in CASES}
    assert len(CASES) >= 200
    assert fams == {"model_files", "folders", "plans", "recipes", "flags", "outputs"}
    assert len({(c["family"], c["id"]) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['family']}-{c['id']}" for c in CASES])
def test_bad_input_is_refused_specifically(case, tmp_path):
    r = run_case(case, tmp_path / "case")
    assert r["outcome"] == "refused", (r["outcome"], r["code"], r["message"], r["lost"])


def test_the_runner_sees_silent_successes_code_runs_and_lost_files(tmp_path, monkeypatch):
    """The harness itself can fail: a wrong success, code that ran, a file that went."""
    ok = run_case(
        {"id": "x", "family": "t", "argv": ["inspect", "demo"], "expect": "x"}, tmp_path / "a"
    )
    assert ok["outcome"] == "silent"
    ran = run_case(
        {
            "id": "x",
            "family": "t",
            "files": {"m.pt": "evil_pickle"},
            "argv": ["inspect", "{tmp}/m.pt", "--trust"],
            "expect": "x",
        },
        tmp_path / "b",
    )
    assert ran["outcome"] == "code_run"
    import studio.core.outputs as outputs

    monkeypatch.setattr(outputs, "check_folder", lambda *a, **k: None)  # the old behaviour
    monkeypatch.setattr(outputs, "studio_files", lambda folder: {"model.json"})
    lost = run_case(
        {
            "id": "x",
            "family": "t",
            "expect": "x",
            "argv": ["prune", "demo", "--flops-target", "0.5", "--out", "{tmp}/victim"],
        },
        tmp_path / "c",
    )
    assert lost["outcome"] == "data_lost" and "victim/notes.txt" in lost["lost"]


KILLS = int(os.environ.get("STUDIO_KILLS", "3"))


@pytest.mark.parametrize("command", ["prune", "finetune", "run"])
def test_kill_9_at_random_moments_never_loses_the_result(command, tmp_path):
    from tests.reliability.kill_drill import drill

    records = drill(command, KILLS, tmp_path, seed=KILLS)
    for r in records:
        assert r["loads"] and not r["leftovers"], r
