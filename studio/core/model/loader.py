"""One loader for every model source (``ModelRequest``): ``demo``, torchvision and timm
architectures, the user's own code, checkpoint files, folders written by the studio, and
``nn.Module`` objects handed over in Python."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from studio.core.errors import LoadError
from studio.core.model import checkpoint
from studio.core.model.loaded import LoadedModel, classifier_width
from studio.core.model.request import ModelRequest, code_entry
from studio.core.model.saving import load_folder
from studio.core.model.sources import (
    arch_label,
    arch_source,
    build_architecture,
    default_input_size,
    unknown,
)

__all__ = [
    "LoadedModel",
    "build_architecture",
    "check_runs",
    "classifier_width",
    "from_module",
    "load",
    "load_model",
]


# -- loading ------------------------------------------------------------------------------
def load(req: ModelRequest) -> LoadedModel:
    """Open what ``req`` names; ``LoadError`` with one line otherwise."""
    spec = req.spec
    path = Path(spec).expanduser()
    if not path.exists() and ("/" in spec or "\\" in spec):
        from studio.core.outputs import recover

        recover(path)  # a crash mid-write may have left the folder as .NAME.old
    builtin = spec in ("demo", "clutter")
    if not builtin and code_entry(spec) is None and path.is_dir():
        lm = load_folder(path, req)
        if req.weights:
            raise LoadError(
                f"{spec} is a folder with its own weights; weights from another "
                f"file cannot be loaded into it"
            )
    elif not builtin and code_entry(spec) is None and path.is_file():
        lm = _load_file(path, req)
    else:
        source = arch_source(spec, dict(req.model_args))
        if source is None:
            raise unknown(spec)
        lm = _load_arch(source, req, weights=req.weights)
    if req.input_size is not None:
        lm.input_size = tuple(req.input_size)
    lm.request = req
    check_runs(lm)
    return lm


def _load_arch(source: dict, req: ModelRequest, weights: str | None) -> LoadedModel:
    by_user = not req.from_file
    pretrained = req.pretrained or (
        source["kind"] == "demo" and not weights and not set(source.get("args") or {}) - {"variant"}
    )
    if weights:
        if req.pretrained:
            raise LoadError("give either pretrained weights or a weights file, not both")
        wpath = Path(weights).expanduser()

        def build(n):
            src = dict(source, args={**source.get("args", {}), **({"num_classes": n} if n else {})})
            return build_architecture(
                src, trust=req.trust, code_root=req.code_root, by_user=by_user
            )

        model, n = checkpoint.load_into(build, wpath, arch_label(source), req.trust)
        asked = (req.model_args or {}).get("num_classes")
        if n is not None and asked is not None and int(asked) != n:
            raise LoadError(
                f"{wpath} holds a classifier of {n} classes, but the model arguments ask for "
                f"{asked}: leave num_classes out to take the weights' {n}, or give weights "
                f"for {asked} classes"
            )
        if n is not None:
            source = dict(source, args={**source.get("args", {}), "num_classes": n})
        name = f"{wpath.name} ({arch_label(source)})"
    else:
        model = build_architecture(
            source, trust=req.trust, code_root=req.code_root, by_user=by_user, pretrained=pretrained
        )
        name = arch_label(source)
        if source["kind"] == "demo":
            name = (
                "demo (wide ResNet-20 on cluttered digits)"
                if name == "demo_clutter"
                else "demo (ResNet-20 on digits)"
            )
        if req.pretrained and source["kind"] != "demo":
            name += " (pretrained)"
    checkpoint.check_model(model, name)
    origin = req.record()
    if weights:
        origin["weights"] = str(Path(weights).expanduser().resolve())
        origin["weights_sha256"] = checkpoint.sha256_of(Path(weights).expanduser())
    if source.get("args", {}).get("num_classes") and "num_classes" not in req.model_args:
        origin.setdefault("model_args", {})["num_classes"] = source["args"]["num_classes"]
    origin.pop("input_size", None)
    return LoadedModel(
        model.eval(), source, name, arch_label(source), default_input_size(source), origin=origin
    )


def _load_file(path: Path, req: ModelRequest) -> LoadedModel:
    if path.suffix == ".py":
        raise LoadError(
            f"{path} is Python code: name the model in it as {path}:NAME "
            f"(NAME: a class or a function that returns the model)"
        )
    if req.arch:
        source = arch_source(req.arch, dict(req.model_args))
        if source is None:
            raise unknown(req.arch)
        if req.weights:
            raise LoadError(f"{path} is the weights file already; do not give another one")
        return _load_arch(source, req.replace(spec=req.arch, arch=None), weights=str(path))
    obj = checkpoint.unwrap(checkpoint.read(path, req.trust, req.code_root))
    if isinstance(obj, nn.Module):
        checkpoint.check_model(obj, str(path))
        cls = type(obj).__name__
        source = {
            "kind": "pickle",
            "file": str(path.resolve()),
            "sha256": checkpoint.sha256_of(path),
            "class": cls,
        }
        return LoadedModel(
            obj.eval(),
            source,
            f"{path.name} ({cls})",
            cls,
            (3, 224, 224),
            origin={"spec": str(path.resolve())},
        )
    if checkpoint.is_state_dict(obj):
        raise LoadError(
            f"{path} is a state_dict: it holds the weights, not the architecture they belong to",
            fix="arch",
        )
    raise LoadError(f"{path} holds neither a state_dict nor a model (found {type(obj).__name__})")


def from_module(model: nn.Module, input_size=None, name: str | None = None) -> LoadedModel:
    """Wrap a model object (Python API). It is used as is, not copied; the studio never
    changes it (pruning works on copies)."""
    from studio.core.model.request import parse_input_size

    if not isinstance(model, nn.Module):
        raise LoadError(f"expected a torch nn.Module, got {type(model).__name__}")
    try:
        size = parse_input_size(input_size) or (3, 224, 224)
    except ValueError as e:
        raise LoadError(str(e), fix="input_size") from None
    cls = type(model).__name__
    checkpoint.check_model(model, cls)
    lm = LoadedModel(model.eval(), {"kind": "module", "class": cls}, name or cls, cls, size)
    check_runs(lm)
    return lm


def check_runs(lm: LoadedModel) -> None:
    lm.model.eval()
    try:
        with torch.no_grad():  # batch 2: a head that squeezes its output stays (N, classes)
            out = lm.model(torch.zeros(2, *lm.input_size))
    except Exception as e:  # noqa: BLE001 - any failure of user code becomes one line
        raise LoadError(
            f"{lm.name} does not run on an input of size "
            f"{','.join(map(str, lm.input_size))} ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''})",
            fix="input_size",
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        what = (
            f"a {type(out).__name__}"
            if not isinstance(out, torch.Tensor)
            else f"a tensor of shape {tuple(out.shape)}"
        )
        raise LoadError(
            f"{lm.name} returns {what}, not a batch of logits (N, classes): the studio prunes "
            f"classifiers; wrap the model in one whose forward returns the logits only"
        )


def load_model(
    what,
    *,
    arch: str | None = None,
    trust: bool = False,
    pretrained: bool = False,
    input_size=None,
    weights: str | None = None,
    model_args: dict | None = None,
    code_root: str | None = None,
) -> LoadedModel:
    """Load a model: a spec string (see ``ModelRequest``), a ``ModelRequest``, or an
    ``nn.Module`` object (with ``input_size``)."""
    if isinstance(what, nn.Module):
        return from_module(what, input_size)
    if isinstance(what, ModelRequest):
        return load(what)
    from pydantic import ValidationError

    from studio.core.schema import describe

    try:
        req = ModelRequest(
            spec=str(what),
            arch=arch,
            trust=trust,
            pretrained=pretrained,
            input_size=input_size,
            weights=weights,
            model_args=model_args or {},
            code_root=code_root,
        )
    except ValidationError as e:
        raise LoadError(describe(e), fix="input_size" if "input_size" in str(e) else None) from None
    return load(req)
