"""Models users bring: timm by name, their own code (files with sibling imports, factories
with arguments, packages), nn.Module objects, weights files -- end to end, and saved folders
that reload after a move. Code a file names never runs without consent."""

import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from studio.core import auto_plan, load_model, map_structure, prune, save_pruned
from studio.core.errors import LoadError, UntrustedFile

BLOCKS = """
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn(self.conv(x)).relu()
"""
NET = """
import torch
from torch import nn

from blocks import Block  # a sibling module: the file's folder is on the import path

MARKER = None


class Net(nn.Module):
    def __init__(self, width=16, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.body = nn.Sequential(Block(width), Block(width))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.body(self.bn(self.stem(x)).relu())
        return self.head(x.mean((2, 3)))


def make(width=16, **kw):
    return Net(width=width, **kw)
"""


@pytest.fixture()
def code(tmp_path):
    d = tmp_path / "project" / "models"
    d.mkdir(parents=True)
    (d / "blocks.py").write_text(BLOCKS)
    (d / "net.py").write_text(NET)
    return d / "net.py"


def _same(a, b, size):
    x = torch.randn(3, *size)
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-5, rtol=1e-4)


def _prune_and_save(lm, out):
    s = map_structure(lm)
    plan = auto_plan(lm, s, "l1", flops_target=0.5)
    pruned, report = prune(lm, s, plan)
    assert report["after"]["flops"] <= 0.5 * report["before"]["flops"]
    save_pruned(out, lm, pruned, plan, report)
    return pruned


def test_code_file_with_a_sibling_import(code):
    lm = load_model(f"{code}:Net", input_size=(3, 16, 16))
    assert isinstance(lm.model, nn.Module) and lm.arch == "Net"
    assert lm.source["kind"] == "code" and lm.source["file_name"] == "net.py"
    assert "code" in lm.describe_source()


def test_factory_with_arguments(code):
    lm = load_model(f"{code}:make", model_args={"width": 8, "num_classes": 3}, input_size="3,16,16")
    assert lm.model.stem.out_channels == 8 and lm.num_classes == 3
    with pytest.raises(LoadError, match="unexpected keyword argument"):
        load_model(f"{code}:make", model_args={"depth": 3}, input_size="3,16,16")


def test_a_saved_code_folder_moves_and_needs_consent(code, tmp_path):
    lm = load_model(f"{code}:Net", input_size=(3, 16, 16))
    pruned = _prune_and_save(lm, tmp_path / "out" / "pruned")
    # move the folder and the code somewhere else
    shutil.move(str(tmp_path / "out" / "pruned"), str(tmp_path / "elsewhere"))
    shutil.move(str(code.parents[1]), str(tmp_path / "moved-project"))
    with pytest.raises(LoadError, match="was not found") as e:
        load_model(str(tmp_path / "elsewhere"), trust=True)
    assert e.value.fix == "code_root"
    with pytest.raises(UntrustedFile, match="named by a file"):  # found, but a folder names it
        load_model(str(tmp_path / "elsewhere"), code_root=str(tmp_path / "moved-project"))
    back = load_model(
        str(tmp_path / "elsewhere"), trust=True, code_root=str(tmp_path / "moved-project")
    )
    assert _same(back.model, pruned, (3, 16, 16))


def test_changed_code_is_refused(code, tmp_path):
    lm = load_model(f"{code}:Net", input_size=(3, 16, 16))
    _prune_and_save(lm, tmp_path / "p")
    code.write_text(NET + "\n# edited\n")
    with pytest.raises(LoadError, match="changed since the model was saved"):
        load_model(str(tmp_path / "p"), trust=True)


def test_code_a_folder_names_never_runs_without_consent(tmp_path):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.py"
    evil.write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        + NET.replace("from blocks import Block", "Block = None")
    )
    lm = load_model("demo")
    s = map_structure(lm)
    plan = auto_plan(lm, s, "l1", flops_target=0.5)
    pruned, report = prune(lm, s, plan)
    out = save_pruned(tmp_path / "f", lm, pruned, plan, report)
    meta = (
        (out / "model.json")
        .read_text()
        .replace(
            '"kind": "demo"',
            f'"kind": "code", "file": "{evil}", "abs": "{evil}", '
            f'"file_name": "evil.py", "entry": "Net"',
        )
    )
    (out / "model.json").write_text(meta)
    with pytest.raises(UntrustedFile):
        load_model(str(out))
    assert not marker.exists()


def test_a_module_object_through_the_api(tmp_path):
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )
    lm = load_model(model, input_size=(3, 16, 16))
    assert lm.model is model and lm.source["kind"] == "module"
    pruned = _prune_and_save(lm, tmp_path / "obj")
    back = load_model(str(tmp_path / "obj"), trust=True)  # pickled: it needs consent
    assert _same(back.model, pruned, (3, 16, 16))
    with pytest.raises(UntrustedFile):
        load_model(str(tmp_path / "obj"))


def test_package_module_entry(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "blocks.py").write_text(BLOCKS)
    (pkg / "net.py").write_text(NET.replace("from blocks import", "from mypkg.blocks import"))
    monkeypatch.syspath_prepend(str(tmp_path))
    lm = load_model("mypkg.net:Net", input_size="3,16,16")
    assert lm.source == {"kind": "code", "module": "mypkg.net", "entry": "Net", "args": {}}


def test_weights_file_and_safetensors_into_an_architecture(code, tmp_path):
    from safetensors.torch import save_file

    lm = load_model(f"{code}:Net", input_size=(3, 16, 16))
    torch.save(lm.model.state_dict(), tmp_path / "w.pt")
    save_file(lm.model.state_dict(), str(tmp_path / "w.safetensors"))
    for f in ("w.pt", "w.safetensors"):
        again = load_model(f"{code}:Net", weights=str(tmp_path / f), input_size=(3, 16, 16))
        assert _same(again.model, lm.model, (3, 16, 16))
        assert again.origin["weights"].endswith(f)


def test_timm_model_end_to_end(tmp_path):
    lm = load_model("timm:resnet10t", input_size="3,32,32", model_args={"num_classes": 5})
    assert lm.source == {"kind": "timm", "name": "resnet10t", "args": {"num_classes": 5}}
    pruned = _prune_and_save(lm, tmp_path / "t")
    shutil.move(str(tmp_path / "t"), str(tmp_path / "t2"))
    back = load_model(str(tmp_path / "t2"))  # timm by name: no consent needed
    assert _same(back.model, pruned, (3, 32, 32))


def test_timm_unknown_and_pretrained_offline(monkeypatch):
    with pytest.raises(LoadError, match="did you mean"):
        load_model("timm:resnet181")
    from studio.core.model import timm_source

    monkeypatch.setattr(timm_source, "_cached_weights", lambda name: None)
    monkeypatch.setattr(timm_source, "_reachable", lambda *a, **k: False)
    with pytest.raises(LoadError, match="not cached .* put its model.safetensors") as e:
        load_model("timm:resnet18", pretrained=True)
    assert e.value.fix == "weights"


def test_cli_runs_user_code_it_names_and_gui_has_trust(code, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "prune",
            f"{code}:Net",
            "--input-size",
            "3,16,16",
            "--flops-target",
            "0.5",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "studio", "inspect", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "pass --trust only if you trust" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "studio", "gui", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--trust" in r.stdout


NET1D = """
from torch import nn


class Net1d(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(12, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Conv1d(32, 64, 5, padding=2, stride=2), nn.BatchNorm1d(64), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
        )
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))
"""


def test_a_sequence_model_opens_with_a_c_l_input_size(tmp_path):
    """Conv1d models (audio, sensor series) take --input-size C,L: mapped, pruned
    physically, saved and reloaded; an image source is refused for them in one line."""
    from studio.core.verbs import data_for

    (tmp_path / "net1d.py").write_text(NET1D)
    lm = load_model(f"{tmp_path / 'net1d.py'}:Net1d", input_size="12,128", trust=True)
    assert lm.input_size == (12, 128)
    s = map_structure(lm)
    assert [g.channels for g in s.groups] == [32, 64]
    pruned = _prune_and_save(lm, tmp_path / "out")
    assert pruned(torch.randn(2, 12, 128)).shape == (2, 5)
    widths = [m.out_channels for m in pruned.modules() if isinstance(m, nn.Conv1d)]
    assert widths[0] < 32 and widths[1] < 64  # smaller dense tensors, not masks
    back = load_model(str(tmp_path / "out"), trust=True)
    assert back.input_size == (12, 128) and _same(back.model, pruned, (12, 128))
    with pytest.raises(Exception, match="demo: this data source holds images, and the model takes"):
        data_for(back, "demo")
    # the data criteria that unfold a convolution's input handle sequences too
    from studio.core import criteria
    from studio.core.jobs import run

    data = data_for(back, "synthetic")
    for c in ("thinet", "lasso"):
        sc = run(criteria.score(lm.model, s, c, data, batches=1, batch_size=8))
        assert set(sc) == {g.id for g in s.groups}
    with pytest.raises(LoadError, match="C,H,W .* or C,L"):
        load_model("resnet18", input_size="3,2,2,2")
