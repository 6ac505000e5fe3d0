"""The deploy treatment and export: BatchNorm folded, channels-last chosen by timing, a
torch.export program that runs without the studio, and the output rules kept."""

import json
import subprocess
import sys
import zipfile

import pytest
import torch
from torch import nn

from studio.core import load_model
from studio.core.errors import OutputError, StudioError
from studio.core.export.deploy import (
    INFO,
    deploy_model,
    export_deploy,
    fold_batchnorm,
    run_input,
    written_by_studio,
)


@pytest.fixture(scope="module")
def r18():
    return load_model("resnet18", input_size=(3, 32, 32))


def test_batchnorm_is_folded_and_outputs_are_kept(r18):
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in r18.model.modules())
    for mode, want in (("on", True), ("off", False)):
        treated, info = deploy_model(r18.model, r18.input_size, channels_last=mode)
        assert info["batchnorm_folded"] == n_bn == 20
        assert not any(isinstance(m, nn.BatchNorm2d) for m in treated.modules())
        assert info["channels_last"] is want
        x = torch.randn(4, 3, 32, 32)
        with torch.inference_mode():
            assert torch.allclose(treated(run_input(info, x)), r18.model(x), atol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in r18.model.modules())  # untouched
    _, info = deploy_model(r18.model, r18.input_size)  # auto: both timed, the faster kept
    t = info["batch1_ms"]
    assert info["channels_last"] == (t["channels_last"] < t["contiguous"])


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2)

    def forward(self, x):
        y = self.bn(self.conv(x))
        if y.mean() > 1e9:  # data-dependent control flow: torch.fx cannot trace it
            y = -y
        return self.fc(y.mean((2, 3)))


def test_a_model_fx_cannot_trace_keeps_its_batchnorm_and_says_why():
    m, folded, note = fold_batchnorm(Untraceable().eval())
    assert folded == 0 and "does not trace" in note
    assert isinstance(m.bn, nn.BatchNorm2d)


def test_the_program_runs_without_the_studio_at_any_batch(r18, tmp_path):
    out = tmp_path / "r18.pt2"
    res = export_deploy(r18.model, r18.input_size, out)
    assert res["batchnorm_folded"] == 20 and written_by_studio(out)
    with zipfile.ZipFile(out) as z:
        (name,) = [n for n in z.namelist() if n.endswith(INFO)]
        assert json.loads(z.read(name))["input_size"] == [3, 32, 32]
    code = (
        "import sys, torch; m = torch.export.load(sys.argv[1]).module(); "
        "print([tuple(m(torch.randn(b, 3, 32, 32)).shape) for b in (1, 7)])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-400:]
    assert done.stdout.strip() == "[(1, 1000), (7, 1000)]"
    export_deploy(r18.model, r18.input_size, out)  # its own file: replaced


def test_foreign_files_and_wrong_names_are_refused(r18, tmp_path):
    foreign = tmp_path / "theirs.pt2"
    foreign.write_bytes(b"PK not ours")
    with pytest.raises(OutputError, match="not written by pruning-studio"):
        export_deploy(r18.model, r18.input_size, foreign)
    assert foreign.read_bytes() == b"PK not ours"
    with pytest.raises(StudioError, match=r"\*\.pt2"):
        export_deploy(r18.model, r18.input_size, tmp_path / "model.onnx")
    with pytest.raises(StudioError, match="auto, on or off"):
        deploy_model(r18.model, r18.input_size, channels_last="maybe")


def test_cli_export_deploy_and_folded_onnx(tmp_path):
    pruned = tmp_path / "pruned"
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "studio", *a], capture_output=True, text=True, cwd=tmp_path
    )
    assert run("prune", "demo", "--flops", "0.5", "--out", str(pruned)).returncode == 0
    done = run("export", str(pruned), "--deploy", "d.pt2", "--onnx", "d.onnx")
    assert done.returncode == 0, done.stderr
    assert "BatchNorm folded" in done.stdout and "torch.export.load" in done.stdout
    assert (tmp_path / "d.pt2").is_file() and (tmp_path / "d.onnx").is_file()
    bad = run("export", str(pruned), "--deploy", "d.onnx")
    assert bad.returncode != 0 and "name it *.pt2" in bad.stderr
    assert "Traceback" not in bad.stderr


class Flat(nn.Module):
    """.view() after a conv: fails on a channels-last tensor."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = (
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.Linear(512, 2),
        )

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).view(x.shape[0], -1))


class Dict(Flat):
    def forward(self, x):
        return {"logits": super().forward(x)}


def test_channels_last_that_breaks_the_model_is_left_off_or_refused():
    treated, info = deploy_model(Flat().eval(), (3, 8, 8), channels_last="auto")
    assert info["channels_last"] is False and "channels-last left off" in info["note"]
    with pytest.raises(StudioError, match="does not run channels-last"):
        deploy_model(Flat().eval(), (3, 8, 8), channels_last="on")


def test_a_model_that_returns_a_dict_is_refused_in_one_line():
    with pytest.raises(StudioError, match="returns a dict, not one tensor"):
        deploy_model(Dict().eval(), (3, 8, 8))
    m = Flat().train()
    deploy_model(m, (3, 8, 8), channels_last="off")
    assert m.training  # the caller's model keeps its mode


def test_cli_refuses_clashing_or_misplaced_options_before_any_work(tmp_path):
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "studio", *a], capture_output=True, text=True, cwd=tmp_path
    )
    same = run("export", "demo", "--deploy", "x.pt2", "--onnx", "x.pt2")
    assert same.returncode != 0 and "same file" in same.stderr
    alone = run("export", "demo", "--onnx", "x.onnx", "--channels-last", "on")
    assert alone.returncode != 0 and "--channels-last is for --deploy" in alone.stderr
    late = run("export", "demo", "--onnx", "x.onnx", "--deploy", "x.bin")
    assert late.returncode != 0 and "name it *.pt2" in late.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_channels_last_widths_off_the_kernel_blocking_get_a_hint():
    from studio.core import auto_plan, map_structure, prune

    lm = load_model("demo")
    _m, info = deploy_model(lm.model, (1, 8, 8), channels_last="on")
    assert "round-to" not in (info["note"] or "")  # 16/32/64 wide: nothing to say
    s = map_structure(lm)
    pruned, _ = prune(lm, s, auto_plan(lm, s, "l1", flops_target=0.5))
    _m, info = deploy_model(pruned, (1, 8, 8), channels_last="on")
    assert "--round-to 16" in info["note"]
    _m, info = deploy_model(pruned, (1, 8, 8), channels_last="off")
    assert "round-to" not in (info["note"] or "")  # contiguous: the hint does not apply


def test_an_operator_onnx_cannot_express_is_one_line_and_prints_no_graph(tmp_path, capfd):
    """torchvision's VGG at CIFAR size: 7x7 adaptive pooling of a 30x30 map. The exporter's
    graph dump (printed from C++ to the process's stdout) stays out of the user's terminal."""
    from studio.core.export.onnx import export_onnx

    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(8 * 49, 10)
    )
    with pytest.raises(StudioError, match="the ONNX export failed: Unsupported") as e:
        export_onnx(net, (3, 32, 32), tmp_path / "m.onnx")
    assert "\n" not in str(e.value) and "--deploy" in str(e.value)
    out, err = capfd.readouterr()
    assert "graph(" not in out + err
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_exports_take_turns_and_work_without_a_console(tmp_path, capfd, monkeypatch):
    """Two exports at once (the window runs non-model jobs side by side) restore the
    process's output in turn; a windowed app without a console (sys.stdout None) exports."""
    import os
    import threading

    from studio.core.export.onnx import export_onnx

    bad = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(), nn.Linear(8 * 49, 10)
    )
    errors = []

    def run(k):
        try:
            export_onnx(bad, (3, 32, 32), tmp_path / f"m{k}.onnx")
        except StudioError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 2
    os.write(1, b"after the exports\n")
    assert "after the exports" in capfd.readouterr().out
    good = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    assert export_onnx(good, (3, 16, 16), tmp_path / "ok.onnx")["max_abs_diff"] < 1e-4
