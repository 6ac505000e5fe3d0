"""The command line: --help everywhere, JSON outputs, one-line errors with exit codes."""

import json
import subprocess
import sys

import pytest


def run(*args, check=True):
    r = subprocess.run(
        [sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("cmd", [[], ["inspect"], ["plan"], ["prune"], ["export"], ["archs"]])
def test_help(cmd):
    assert "usage" in run(*cmd, "--help").stdout


def test_inspect_json():
    d = json.loads(run("inspect", "demo", "--json").stdout)
    assert {"params", "flops", "macs", "layers", "groups", "stages", "blocks"} <= set(d)
    assert d["params"] == 272186 and len(d["stages"]) == 3


def test_inspect_table_with_fvcore():
    out = run("inspect", "resnet18", "--input-size", "3,64,64", "--fvcore").stdout
    assert "Channel groups (12" in out and "layer4" in out and "fvcore MACs" in out


def test_plan_then_prune(tmp_path):
    plan = tmp_path / "plan.json"
    run("plan", "demo", "--criterion", "fpgm", "--flops-target", "0.5", "--out", str(plan))
    assert json.loads(plan.read_text())["format"] == "pruning-studio/plan"
    rep = json.loads(
        run("prune", "demo", "--plan", str(plan), "--out", str(tmp_path / "o"), "--json").stdout
    )
    assert rep["after"]["flops"] <= 0.5 * rep["before"]["flops"]
    assert set(rep["before"]) == {"params", "flops", "macs", "bytes"}
    assert rep["after"]["bytes"] < rep["before"]["bytes"]
    d = json.loads(run("inspect", str(tmp_path / "o"), "--json").stdout)
    assert d["flops"] == rep["after"]["flops"]


def test_plan_latency_scope_and_its_refusals(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_STUDIO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "p.json"
    r = run(
        "plan", "demo", "--scope", "latency", "--flops-target", "0.7", "--round-to", "8",
        "--latency-batch", "4", "--out", str(out),
    )  # fmt: skip
    assert "latency-aware at batch 4" in r.stdout and "ms predicted" in r.stdout
    meta = json.loads(out.read_text())["meta"]
    assert meta["latency"]["batch"] == 4
    # the uniform plan is kept when it timed faster whole, and the plan says so
    assert meta["scope"] == "latency" or meta["chosen_by"].startswith("latency")
    for args, msg in (
        (["--latency-target", "0.5"], "--latency-target needs --scope latency"),
        (["--scope", "latency", "--ratio", "0.5"], "not --ratio"),
        (["--scope", "latency", "--flops-target", "0.5", "--round-to", "4"], "give 8 or more"),
        (["--flops-target", "0.5", "--latency-batch", "16"], "--latency-batch needs --scope"),
    ):
        r = run("plan", "demo", *args, "--out", str(tmp_path / "x.json"), check=False)
        assert r.returncode != 0 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_prune_with_blocks_round_to_and_protect(tmp_path):
    out = run(
        "prune",
        "demo",
        "--flops-target",
        "0.4",
        "--round-to",
        "4",
        "--drop-block",
        "layer3.2",
        "--protect",
        "layer1.0.conv1",
        "--out",
        str(tmp_path / "o"),
    ).stdout
    assert "wrote" in out and "FLOPs" in out
    plan = json.loads((tmp_path / "o" / "plan.json").read_text())
    assert plan["drop_blocks"] == ["layer3.2"] and "layer1.0.conv1" not in plan["groups"]


@pytest.mark.parametrize(
    "args,needle,code",
    [
        (["prune", "demo", "--ratio", "1.5", "--out", "x"], "strictly between 0 and 1", 2),
        (["prune", "demo", "--flops-target", "0", "--out", "x"], "strictly between 0 and 1", 2),
        (["inspect", "nonexistent_arch"], "unknown architecture", 2),
        (["prune", "demo", "--drop-block", "layer2.0", "--out", "x"], "cannot be dropped", 2),
        (["prune", "demo", "--out", "x"], "say what to prune", 2),
        (["inspect", "/no/such/file.pt"], "file not found", 2),
    ],
)
def test_errors_are_one_line(tmp_path, args, needle, code):
    r = run(*args, check=False)
    assert r.returncode == code
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error") or "error:" in ln]
    assert len(lines) == 1


def test_debug_shows_the_traceback():
    r = run("--debug", "inspect", "nonexistent_arch", check=False)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_evaluate_json_with_latency_and_baseline(tmp_path):
    run("prune", "demo", "--flops-target", "0.5", "--out", str(tmp_path / "p"))
    d = json.loads(
        run(
            "evaluate",
            str(tmp_path / "p"),
            "--data",
            "demo",
            "--latency",
            "--latency-batch",
            "4",
            "--threads",
            "1",
            "--json",
        ).stdout
    )
    assert {"top1", "top5", "loss"} <= set(d)
    assert d["baseline"]["top1"] > 0.97 and d["change"]["flops_ratio"] <= 0.5
    assert set(d["latency"]["speedup"]) == {"1", "4"}


def test_score_with_a_data_criterion(tmp_path):
    out = tmp_path / "s.json"
    run(
        "score",
        "demo",
        "--criterion",
        "apoz",
        "--data",
        "demo",
        "--batches",
        "2",
        "--out",
        str(out),
    )
    d = json.loads(out.read_text())
    assert d["criterion"] == "apoz" and len(d["groups"]) == 12
    assert len(d["groups"]["layer1.0.conv1"]["group"]) == 16


def test_data_criterion_needs_data(tmp_path):
    r = run(
        "prune",
        "demo",
        "--criterion",
        "taylor",
        "--flops-target",
        "0.5",
        "--out",
        str(tmp_path / "x"),
        check=False,
    )
    assert r.returncode == 2 and "give --data" in r.stderr


def test_prune_with_data_then_finetune(tmp_path):
    run(
        "prune",
        "demo",
        "--criterion",
        "hrank",
        "--data",
        "demo",
        "--batches",
        "2",
        "--flops-target",
        "0.5",
        "--out",
        str(tmp_path / "p"),
    )
    rep = json.loads(
        run(
            "finetune",
            str(tmp_path / "p"),
            "--data",
            "demo",
            "--epochs",
            "1",
            "--teacher",
            "demo",
            "--out",
            str(tmp_path / "f"),
            "--json",
        ).stdout
    )
    assert rep["after"]["top1"] > rep["before"]["top1"]
    d = json.loads(run("inspect", str(tmp_path / "f"), "--json").stdout)
    assert d["flops"] <= 0.5 * 5091082


def test_export_onnx_and_report(tmp_path):
    odd, even = tmp_path / "odd", tmp_path / "even"
    run("prune", "demo", "--flops-target", "0.5", "--scope", "uniform", "--out", str(odd))
    run(
        "prune",
        "demo",
        "--flops-target",
        "0.5",
        "--scope",
        "uniform",
        "--round-to",
        "8",
        "--out",
        str(even),
    )
    out = run(
        "export",
        str(odd),
        "--onnx",
        str(tmp_path / "odd.onnx"),
        "--report",
        str(tmp_path / "r.html"),
    ).stdout
    assert (tmp_path / "odd.onnx").stat().st_size > 1000
    assert "note:" in out and "--round-to 8" in out  # odd widths: the onnxruntime hint
    page = (tmp_path / "r.html").read_text()
    assert "Pruning report" in page and "layer1.0.conv1" in page
    out = run("export", str(even), "--onnx", str(tmp_path / "even.onnx")).stdout
    assert "wrote" in out and "note:" not in out
    r = run("export", "demo", "--report", str(tmp_path / "x.html"), check=False)
    assert r.returncode == 2 and "folder written by 'prune'" in r.stderr
    assert not (tmp_path / "x.html").exists()


def test_report_measures_the_original_and_the_model_with_data(tmp_path):
    """export --report --data: top-1 against the original, measured side by side, and
    latency of both with --latency; --latency alone is refused in one line."""
    run("prune", "demo", "--flops-target", "0.5", "--out", str(tmp_path / "half"))
    run(
        "export",
        str(tmp_path / "half"),
        "--report",
        str(tmp_path / "r.html"),
        "--data",
        "demo:64",
        "--latency",
        "--threads",
        "1",
    )
    page = (tmp_path / "r.html").read_text()
    assert "Top-1 accuracy (vs the original)" in page and "latency, batch 1" in page
    assert "measured for this report" in page
    r = run("export", str(tmp_path / "half"), "--report", "y.html", "--latency", check=False)
    assert r.returncode == 2 and "needs --data" in r.stderr
    # the same, both models in onnxruntime; the runtime without --latency is refused
    args = ["export", str(tmp_path / "half"), "--report", str(tmp_path / "o.html")]
    run(*args, "--data", "demo:64", "--latency", "--runtime", "onnxruntime", "--threads", "1")
    assert "onnxruntime (BatchNorm folded" in (tmp_path / "o.html").read_text()
    r = run(*args, "--runtime", "deploy", check=False)
    assert r.returncode == 2 and "--runtime is for --latency" in r.stderr
    r = run("evaluate", "demo", "--data", "demo:64", "--runtime", "deploy", check=False)
    assert r.returncode == 2 and "give --latency too" in r.stderr
    r = run("evaluate", "demo", "--data", "demo:64", "--latency", "--runtime", "deploy")
    assert "latency in PyTorch under the deploy treatment; BatchNorm folded, channels-l" in (
        r.stdout
    )
    # the memory format can be fixed, for --runtime deploy only
    deploy = ["evaluate", "demo", "--data", "demo:64", "--latency", "--runtime", "deploy"]
    r = run(*deploy, "--channels-last", "off")
    assert "BatchNorm folded, channels-last off" in r.stdout
    r = run(
        "evaluate", "demo", "--data", "demo:64", "--latency", "--channels-last", "on", check=False
    )
    assert r.returncode == 2 and "--channels-last is for --runtime deploy" in r.stderr
