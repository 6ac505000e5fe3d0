"""Bad inputs, made on demand in a case's own folder. A case's ``files`` maps a relative
path to a builder name (or ``{"builder": name, ...params}``, or ``{"text": ...}``).

Some builders plant code that would create ``MARKER`` if it ever ran: the runner checks
that the marker never appears (nothing is unpickled or imported without consent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

MARKER = "PWNED"
_CACHE: dict = {}


class Evil:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _demo_sd(**_):
    from studio.core.model.demo import DemoResNet

    torch.manual_seed(0)
    return DemoResNet().state_dict()


def _save(path: Path, obj) -> None:
    torch.save(obj, path)


def _prune_demo(folder: Path) -> None:
    """A real folder written by the studio (the demo pruned to half its FLOPs)."""
    from studio.core import auto_plan, load_model, map_structure, prune, save_pruned

    lm = load_model("demo")
    s = map_structure(lm)
    plan = auto_plan(lm, s, "l1", flops_target=0.5)
    model, report = prune(lm, s, plan)
    save_pruned(folder, lm, model, plan, report)


def _demo_plan() -> dict:
    if "plan" not in _CACHE:
        from studio.core import auto_plan, load_model, map_structure

        lm = load_model("demo")
        _CACHE["plan"] = auto_plan(lm, map_structure(lm), "l1", flops_target=0.5).to_dict()
    return json.loads(json.dumps(_CACHE["plan"]))


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d.setdefault(k, {})
    if value == "__delete__":
        if isinstance(d, list):
            d.pop(int(keys[-1]))
        else:
            d.pop(keys[-1], None)
    elif isinstance(d, list):
        d[int(keys[-1])] = value
    else:
        d[keys[-1]] = value


def _fill(v, tmp: Path):
    if isinstance(v, str):
        return v.replace("{tmp}", str(tmp)).replace("{marker}", str(tmp / MARKER))
    if isinstance(v, list):
        return [_fill(x, tmp) for x in v]
    if isinstance(v, dict):
        return {k: _fill(x, tmp) for k, x in v.items()}
    return v


# -- builders: (path, tmp, **params) -----------------------------------------------------
def empty(path, tmp, **_):
    path.write_bytes(b"")


def random_bytes(path, tmp, size=4096, **_):
    path.write_bytes(os.urandom(size))


def text(path, tmp, text="", **_):
    path.write_text(_fill(text, tmp))


def not_utf8(path, tmp, **_):
    path.write_bytes(b"\xff\xfe{\x00 \xc3\x28")


def big(path, tmp, mib=40, **_):
    with open(path, "wb") as f:
        f.write(b"[" + b"1," * (mib * 2**19) + b"1]")


def deep_json(path, tmp, depth=100_000, **_):
    path.write_text("[" * depth + "]" * depth)


def folder(path, tmp, **_):
    path.mkdir(parents=True, exist_ok=True)


def victim(path, tmp, **_):
    path.mkdir(parents=True, exist_ok=True)
    (path / "notes.txt").write_text("the user's own notes\n")
    (path / "data.csv").write_text("a,b\n1,2\n")


def symlink(path, tmp, target="victim", **_):
    path.symlink_to(tmp / target)


def demo_sd(path, tmp, **_):
    _save(path, _demo_sd())


def sd_truncated(path, tmp, **_):
    import io

    buf = io.BytesIO()
    torch.save(_demo_sd(), buf)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])


def sd_int8(path, tmp, **_):
    sd = _demo_sd()
    sd["conv1.weight"] = (sd["conv1.weight"] * 100).to(torch.int8)
    _save(path, sd)


def sd_quantized(path, tmp, **_):
    sd = _demo_sd()
    sd["conv1.weight"] = torch.quantize_per_tensor(sd["conv1.weight"], 0.01, 0, torch.qint8)
    _save(path, sd)


def sd_nan(path, tmp, value="nan", **_):
    sd = _demo_sd()
    sd["layer1.0.conv1.weight"][0, 0, 0, 0] = float(value)
    _save(path, sd)


def sd_wrapped_evil(path, tmp, **_):
    _save(path, {"state_dict": _demo_sd(), "extra": Evil(str(tmp / MARKER))})


def evil_pickle(path, tmp, **_):
    _save(path, {"model": Evil(str(tmp / MARKER))})


def pickled_demo(path, tmp, **_):
    from studio.core.model.demo import DemoResNet

    _save(path, DemoResNet())


def torchscript(path, tmp, **_):
    torch.jit.script(nn.Linear(2, 2)).save(str(path))


def tensor(path, tmp, **_):
    _save(path, torch.zeros(3))


def tensor_list(path, tmp, **_):
    _save(path, [torch.zeros(3), torch.ones(2)])


def safetensors_bad(path, tmp, **_):
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")


CODE_GOOD = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, width=8, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def factory(**kw):
    return Tiny(**kw)


def not_a_model():
    return 42


CONSTANT = 3
"""


def code_good(path, tmp, **_):
    path.write_text(CODE_GOOD)


def code_marker(path, tmp, **_):
    path.write_text(f"from pathlib import Path\nPath({str(tmp / MARKER)!r}).touch()\n" + CODE_GOOD)


def code_syntax_error(path, tmp, **_):
    path.write_text("class Broken(:\n    pass\n")


def code_raises(path, tmp, **_):
    path.write_text("raise RuntimeError('this module refuses to import')\n")


def code_missing_import(path, tmp, **_):
    path.write_text("import a_module_that_does_not_exist\n")


def studio_folder(path, tmp, set=None, weights=None, remove=None, **_):  # noqa: A002
    """A real studio folder, then tampered: ``set`` dotted keys of model.json (the value
    ``__delete__`` removes), ``weights`` replaces weights.pt (``nan``, ``evil``, ``shape``)
    with a matching sha256, ``remove`` deletes files."""
    from studio.core.model.checkpoint import sha256_of

    _prune_demo(path)
    meta_file = path / "model.json"
    meta = json.loads(meta_file.read_text())
    w = path / "weights.pt"
    if weights == "nan":
        sd = torch.load(w, weights_only=True)
        next(v for k, v in sd.items() if k.endswith("weight")).fill_(float("nan"))
        torch.save(sd, w)
    elif weights == "evil":
        torch.save({"conv1.weight": Evil(str(tmp / MARKER))}, w)
    elif weights == "shape":
        sd = torch.load(w, weights_only=True)
        sd["conv1.weight"] = torch.zeros(3, 1, 3, 3)
        torch.save(sd, w)
    if weights:
        meta["weights_sha256"] = sha256_of(w)
    for k, v in (set or {}).items():
        _set(meta, k, _fill(v, tmp))
    meta_file.write_text(json.dumps(meta))
    for name in remove or []:
        (path / name).unlink()


def plan(path, tmp, set=None, raw=None, **_):  # noqa: A002
    """The demo's valid plan, with ``set`` dotted keys changed, or ``raw`` text around it."""
    d = _demo_plan()
    for k, v in (set or {}).items():
        _set(d, k, v)
    path.write_text(json.dumps(d) if raw is None else raw)


def recipe(path, tmp, body=None, yaml=False, **_):
    d = {"format": "pruning-studio/recipe", "version": 1, "model": {"spec": "demo"}}
    for k, v in (body or {}).items():
        if v == "__delete__":
            d.pop(k, None)
        else:
            d[k] = _fill(v, tmp)
    if isinstance(d.get("plans"), str) and d["plans"] == "demo_plan":
        d["plans"] = [_demo_plan()]
    if yaml:
        import yaml as y

        path.write_text(y.safe_dump(d))
    else:
        path.write_text(json.dumps(d))


def image_folder_bad(path, tmp, classes=10, **_):
    for c in range(classes):
        for part in ("train", "val"):
            (path / part / f"c{c}").mkdir(parents=True)
            (path / part / f"c{c}" / "a.png").write_bytes(b"not an image")


BUILDERS = {
    n: f
    for n, f in globals().items()
    if callable(f) and not n.startswith("_") and n not in ("Evil", "Path", "nn")
}


def build(tmp: Path, files: dict) -> None:
    for rel, spec in (files or {}).items():
        path = tmp / rel.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, str):
            spec = {"builder": spec}
        spec = dict(spec)
        if "text" in spec and "builder" not in spec:
            spec["builder"] = "text"
        BUILDERS[spec.pop("builder")](path, tmp, **spec)
