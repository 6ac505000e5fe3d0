"""Every model source, and every kind of bad file: a clear error, and no code run."""

import os
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision

from studio.core import LoadError, UntrustedFileError, load_model
from studio.core.model import demo as demo_mod


class Evil:
    """Unpickling this would create a marker file: the loader must never do it untrusted."""

    marker = None

    def __reduce__(self):
        return (Path.touch, (Path(Evil.marker),))


def test_demo_loads_and_is_accurate(demo):
    x, y = demo_mod.split_tensors("val")
    assert len(y) == 359
    assert demo_mod.accuracy(demo.model, x, y) >= 0.97
    assert demo.input_size == (1, 8, 8)


def test_digits_split_is_fixed_and_disjoint():
    d = demo_mod.load_digits()
    assert d["images"].shape == (1797, 8, 8)
    assert set(d["train_idx"]).isdisjoint(d["val_idx"])
    assert len(d["train_idx"]) + len(d["val_idx"]) == 1797


def test_architecture_by_name_with_default_and_custom_input():
    lm = load_model("resnet18")
    assert lm.input_size == (3, 224, 224) and lm.num_classes == 1000
    assert load_model("mobilenet_v2", input_size="3,64,64").input_size == (3, 64, 64)


def test_unknown_and_unsupported_architectures():
    with pytest.raises(LoadError, match="unknown architecture 'resnet19'"):
        load_model("resnet19")
    with pytest.raises(LoadError, match="channel shuffle"):
        load_model("shufflenet_v2_x0_5")
    with pytest.raises(LoadError, match="file not found"):
        load_model("missing/model.pt")


def test_bad_input_size():
    with pytest.raises(LoadError, match="C,H,W"):
        load_model("resnet18", input_size="3,abc")
    with pytest.raises(LoadError, match="does not run"):
        load_model("demo", input_size="3,8,8")  # demo takes one channel


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_state_dict_wrappers(tmp_path, wrap):
    model = torchvision.models.resnet18(num_classes=7)
    sd = model.state_dict()
    obj = {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model": {"model": sd, "optimizer": {}},
        "module_prefix": {"module." + k: v for k, v in sd.items()},
    }[wrap]
    f = tmp_path / "ckpt.pth"
    torch.save(obj, f)
    lm = load_model(str(f), arch="resnet18")
    assert lm.num_classes == 7  # inferred from the classifier's shape
    for k, v in lm.model.state_dict().items():
        assert torch.equal(v, sd[k])


def test_state_dict_needs_arch_and_must_match(tmp_path):
    f = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), f)
    with pytest.raises(LoadError, match="not the architecture they belong to") as e:
        load_model(str(f))
    assert e.value.fix == "arch"  # the CLI words it as --arch, the window as a picker
    with pytest.raises(LoadError, match="does not match architecture resnet34: .*missing"):
        load_model(str(f), arch="resnet34")


@pytest.mark.parametrize(
    "kind", ["empty", "random", "truncated", "text", "torchscript", "onnx", "tensor"]
)
def test_bad_files_give_one_line_errors(tmp_path, kind):
    f = tmp_path / "bad.pt"
    good = tmp_path / "good.pt"
    torch.save(torchvision.models.resnet18().state_dict(), good)
    if kind == "empty":
        f.write_bytes(b"")
    elif kind == "random":
        f.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        f.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    elif kind == "text":
        f.write_text("not a model\n")
    elif kind == "torchscript":
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(f))
        assert zipfile.is_zipfile(f)
    elif kind == "onnx":
        f = tmp_path / "m.onnx"
        f.write_bytes(b"\x08\x07onnx")
    elif kind == "tensor":
        torch.save(torch.zeros(3), f)
    with pytest.raises(LoadError) as e:
        load_model(str(f), arch="resnet18")
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg
    if kind == "torchscript":
        assert "TorchScript" in msg


def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path):
    Evil.marker = str(tmp_path / "pwned")
    f = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, f)
    with pytest.raises(UntrustedFileError, match="arbitrary code") as e:
        load_model(str(f))
    assert e.value.fix == "trust" and e.value.path == str(f)
    assert not (tmp_path / "pwned").exists()


def test_pickled_model_needs_trust(tmp_path):
    f = tmp_path / "full.pt"
    torch.save(demo_mod.DemoResNet(), f)
    with pytest.raises(UntrustedFileError, match="arbitrary code"):
        load_model(str(f))
    lm = load_model(str(f), trust=True, input_size=(1, 8, 8))
    assert lm.arch == "DemoResNet" and lm.source["kind"] == "pickle"


def test_a_folder_pruned_from_a_pickled_model_opens_again(tmp_path, capsys):
    from studio.cli import main

    f = tmp_path / "full.pt"
    torch.save(demo_mod.DemoResNet(), f)
    out = tmp_path / "half"
    size = ["--input-size", "1,16,16"]
    assert (
        main(["prune", str(f), "--trust", *size, "--flops-target", "0.5", "--out", str(out)]) == 0
    )
    back = load_model(str(out), trust=True)
    assert back.source["class"] == "DemoResNet" and back.pruned
    with pytest.raises(UntrustedFileError):  # its source.pt is a pickle: consent again
        load_model(str(out))
    assert main(["inspect", str(out), "--trust"]) == 0
    assert "DemoResNet" in capsys.readouterr().out


def test_pretrained_offline_names_the_file_to_cache(tmp_path, monkeypatch):
    import urllib.error

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline, raising=False)
    with pytest.raises(LoadError, match=r"put resnet18-f37072fd\.pth into .*checkpoints"):
        load_model("resnet18", pretrained=True)


def test_pretrained_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    ref = torchvision.models.resnet18()
    torch.save(ref.state_dict(), cache / "resnet18-f37072fd.pth")
    lm = load_model("resnet18", pretrained=True)
    assert torch.equal(lm.model.conv1.weight, ref.conv1.weight)


@pytest.mark.parametrize(
    "wrap, what",
    [
        (lambda y: (y, y), "a tuple"),
        (lambda y: {"logits": y}, "a dict"),
        (lambda y: y[:, :, None], "a tensor of shape"),
    ],
)
def test_a_model_that_does_not_return_logits_is_refused_in_one_line(wrap, what):
    class Heads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = demo_mod.DemoResNet()

        def forward(self, x):
            return wrap(self.body(x))

    with pytest.raises(LoadError, match=f"returns {what}") as e:
        load_model(Heads(), input_size=(1, 16, 16))
    assert "\n" not in str(e.value) and "logits" in str(e.value)


def _own_class(tmp_path, monkeypatch, module: str, cls: str):
    """An instance of a user's class from ``tmp_path/code/<module>.py`` (the folder is on
    the path only while the instance is made), and that folder."""
    import importlib

    code = tmp_path / "code"
    code.mkdir()
    (code / f"{module}.py").write_text(
        f"from studio.core.model.demo import DemoResNet\n\nclass {cls}(DemoResNet):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(code))  # sys.path is restored after the test
    return getattr(importlib.import_module(module), cls)(), code


def test_a_pickled_model_of_the_users_own_class_loads_with_code_root(tmp_path, monkeypatch):
    import sys

    net, code = _own_class(tmp_path, monkeypatch, "picklednet_t1", "MyNet")
    torch.save(net, tmp_path / "full.pt")
    sys.path.remove(str(code))
    del sys.modules["picklednet_t1"]
    with pytest.raises(LoadError, match="names the module 'picklednet_t1'") as e:
        load_model(str(tmp_path / "full.pt"), trust=True, input_size=(1, 16, 16))
    assert e.value.fix == "code_root"
    lm = load_model(
        str(tmp_path / "full.pt"), trust=True, code_root=str(code), input_size=(1, 16, 16)
    )
    assert lm.arch == "MyNet"
    sys.modules.pop("picklednet_t1", None)


def test_a_truncated_checkpoint_is_named_in_whole_sentences(tmp_path):
    f = tmp_path / "cut.pt"
    buf = tmp_path / "full.pt"
    torch.save(demo_mod.DemoResNet().state_dict(), buf)
    f.write_bytes(buf.read_bytes()[:3000])
    with pytest.raises(LoadError) as e:
        load_model(str(f), arch="demo")
    msg = str(e.value)
    assert "(corrupt, truncated or not a PyTorch file)" in msg
    assert "there is a high" not in msg  # torch's long advice is not cut mid-clause


def test_weights_for_other_classes_than_asked_are_refused(tmp_path):
    f = tmp_path / "sd10.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), f)
    with pytest.raises(LoadError, match="holds a classifier of 10 classes, but .* ask for 100"):
        load_model(str(f), arch="resnet18", model_args={"num_classes": 100}, input_size=(3, 32, 32))
    lm = load_model(str(f), arch="resnet18", model_args={"num_classes": 10}, input_size=(3, 32, 32))
    assert lm.num_classes == 10


def test_a_head_that_squeezes_its_output_is_still_a_classifier():
    """``pool(x).squeeze()`` gives (classes,) at batch 1 and (N, classes) otherwise."""

    class Squeezed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = demo_mod.DemoResNet()

        def forward(self, x):
            return self.body(x).squeeze()

    assert load_model(Squeezed(), input_size=(1, 16, 16)).num_classes == 10


def test_a_pickle_whose_code_needs_an_uninstalled_package_says_install_it(tmp_path, monkeypatch):
    import sys

    net, code = _own_class(tmp_path, monkeypatch, "needsdep_t2", "Net")
    net.__class__.__module__ = "not_installed_pkg_t2.models"  # as if it came from a package
    sys.modules["not_installed_pkg_t2"] = type(sys)("not_installed_pkg_t2")
    sys.modules["not_installed_pkg_t2.models"] = sys.modules["needsdep_t2"]
    torch.save(net, tmp_path / "full.pt")
    for m in ("not_installed_pkg_t2", "not_installed_pkg_t2.models", "needsdep_t2"):
        del sys.modules[m]
    with pytest.raises(LoadError, match="not installed .*install it") as e:
        load_model(
            str(tmp_path / "full.pt"), trust=True, code_root=str(code), input_size=(1, 16, 16)
        )
    assert e.value.fix is None
