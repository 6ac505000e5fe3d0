"""One loader for every model source (``ModelRequest``): ``demo``, torchvision and timm
architectures, the user's own code, checkpoint files, folders written by the studio, and
``nn.Module`` objects handed over in Python.

A ``LoadedModel`` carries the model and, as plain data, how to rebuild its architecture
(``source``), how to reload the unpruned original with its weights (``origin``), and the
plans applied since. Pruned or fine-tuned children are derived from it (``derive``).
"""

from __future__ import annotations

import copy
import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from studio.core.errors import LoadError, UnsupportedModel
from studio.core.model import checkpoint, usercode, zoo
from studio.core.model.request import ModelRequest, code_entry

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: nn.Module
    source: dict  # how to rebuild the unpruned architecture (kind, name/entry, args)
    name: str  # what the user sees
    arch: str
    input_size: tuple[int, int, int]
    plans: list[dict] = field(default_factory=list)  # plans applied since the source
    folder: str | None = None  # set when loaded from a folder written by the studio
    origin: dict | None = None  # request record that reloads the unpruned original
    request: ModelRequest | None = None  # how this model was opened (None when derived)

    @property
    def num_classes(self) -> int | None:
        n = (self.source.get("args") or {}).get("num_classes")
        return n if n is not None else classifier_width(self.model)

    @property
    def pruned(self) -> bool:
        return bool(self.plans)

    def derive(self, model: nn.Module, plan=None, label: str | None = None) -> LoadedModel:
        """A child of this model: ``model`` is this one after ``plan`` (a ``Plan``, or None
        for fine-tuning). Source and origin stay; the plan joins the history."""
        plans = list(self.plans) + ([plan.to_dict()] if plan is not None else [])
        base = self.name.split(" [", 1)[0]
        if label is None:
            label = f"pruned {len(plans)}x" if plans else "fine-tuned"
        return LoadedModel(model, copy.deepcopy(self.source), f"{base} [{label}]", self.arch,
                           self.input_size, plans, None, copy.deepcopy(self.origin))

    def describe_source(self) -> str:
        """One phrase for the window's title bar and reports: where the model came from."""
        s = self.source
        kind = s.get("kind")
        text = {"demo": "built-in demo", "torchvision": f"torchvision {s.get('name')}",
                "timm": f"timm {s.get('name')}", "pickle": "pickled model file",
                "module": "Python object"}.get(kind)
        if kind == "code":
            text = f"code {s.get('module') or s.get('file')}:{s.get('entry')}"
        if self.origin and self.origin.get("pretrained"):
            text += ", pretrained"
        if self.origin and self.origin.get("weights"):
            text += f", weights {Path(self.origin['weights']).name}"
        if self.folder:
            text = f"folder {Path(self.folder).name} ({text})"
        return text or "unknown"


def classifier_width(model: nn.Module) -> int | None:
    last = None
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            last = m
    if isinstance(last, nn.Linear):
        return last.out_features
    return getattr(last, "out_channels", None)


# -- architectures ------------------------------------------------------------------------
def build_architecture(source: dict, *, trust: bool = False, code_root: str | None = None,
                       by_user: bool = False, pretrained: bool = False) -> nn.Module:
    """The (randomly initialised, or pretrained) model a ``source`` record describes."""
    kind, args = source.get("kind"), dict(source.get("args") or {})
    if kind == "demo":
        from studio.core.model import demo

        model = demo.DemoResNet(num_classes=args.get("num_classes", demo.NUM_CLASSES))
        if pretrained:
            model.load_state_dict(demo.checkpoint_state())
        return model
    if kind == "torchvision":
        if pretrained:
            if args:
                raise LoadError(f"torchvision's pretrained {source['name']} takes no "
                                f"arguments (got {sorted(args)}); load weights instead",
                                fix="weights")
            return _torchvision_pretrained(source["name"])
        return zoo.build(source["name"], args)
    if kind == "timm":
        from studio.core.model import timm_source

        return timm_source.build(source["name"], args, pretrained)
    if pretrained:
        raise LoadError("pretrained weights exist for torchvision and timm architectures and "
                        "the demo; load this model's weights from a file", fix="weights")
    if kind == "code":
        return usercode.build(source, trust=trust, code_root=code_root, by_user=by_user)
    if kind == "pickle":
        obj = checkpoint.unwrap(checkpoint.read(source["file"], trust))
        if not isinstance(obj, nn.Module):
            raise LoadError(f"{source['file']} no longer holds a pickled model")
        return obj
    raise LoadError(f"unknown model source kind {kind!r}")


def _torchvision_pretrained(arch: str) -> nn.Module:
    import socket
    import urllib.error

    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    except (KeyError, ValueError):
        raise LoadError(f"torchvision has no pretrained weights for {arch}") from None
    fname = Path(weights.url).name
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if not (cache / fname).exists():
        log.info("downloading %s", weights.url)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        return torchvision.models.get_model(arch, weights=weights)
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        raise LoadError(f"pretrained weights for {arch} are not cached and could not be "
                        f"downloaded ({type(e).__name__}); put {fname} into {cache} "
                        f"(from {weights.url})", fix="weights") from None
    finally:
        socket.setdefaulttimeout(old)


def _arch_source(spec: str, args: dict) -> dict | None:
    """The source record of an architecture spec, or None when ``spec`` is not one."""
    entry = code_entry(spec)
    if entry is not None:
        kind, target, name = entry
        return usercode.record_for(kind, target, name, args)
    if spec.startswith("timm:"):
        return {"kind": "timm", "name": spec[5:], "args": args}
    name = spec.split(":", 1)[1] if spec.startswith(("tv:", "torchvision:")) else spec
    if name in ("demo", zoo.DEMO_ARCH):
        return {"kind": "demo", "args": args}
    if zoo.exists(name) or spec.startswith(("tv:", "torchvision:")):
        why = zoo.unsupported_reason(name)
        if why:
            raise UnsupportedModel(f"{name} is not supported: {why}")
        return {"kind": "torchvision", "name": name, "args": args}
    return None


def arch_label(source: dict) -> str:
    kind = source.get("kind")
    if kind == "demo":
        return zoo.DEMO_ARCH
    if kind == "torchvision":
        return source["name"]
    if kind == "timm":
        return f"timm:{source['name']}"
    if kind == "code":
        return source["entry"]
    return source.get("class", "model")


def default_input_size(source: dict) -> tuple[int, int, int]:
    kind = source.get("kind")
    if kind == "demo":
        from studio.core.model.demo import INPUT_SIZE

        return INPUT_SIZE
    if kind == "torchvision":
        return zoo.default_input_size(source["name"])
    if kind == "timm":
        from studio.core.model import timm_source

        return timm_source.default_input_size(source["name"])
    return (3, 224, 224)


def _unknown(spec: str) -> LoadError:
    if "/" in spec or "\\" in spec or spec.endswith(checkpoint.WEIGHT_SUFFIXES + (".py",)):
        return LoadError(f"file not found: {spec}")
    pool = list(zoo.architectures())
    close = difflib.get_close_matches(spec, pool, n=4, cutoff=0.6)
    try:
        from studio.core.model import timm_source

        close += [f"timm:{n}" for n in difflib.get_close_matches(spec, timm_source.names(),
                                                                 n=3, cutoff=0.75)]
    except LoadError:
        pass
    hint = f" (did you mean {', '.join(close[:5])}?)" if close else ""
    return LoadError(f"unknown architecture '{spec}'{hint}; see 'pruning-studio archs', or "
                     f"give timm:NAME, FILE.py:NAME, a checkpoint or a folder")


# -- loading ------------------------------------------------------------------------------
def load(req: ModelRequest) -> LoadedModel:
    """Open what ``req`` names; ``LoadError`` with one line otherwise."""
    spec = req.spec
    path = Path(spec).expanduser()
    if spec != "demo" and code_entry(spec) is None and path.is_dir():
        from studio.core.model.saving import load_folder

        lm = load_folder(path, req)
        if req.weights:
            raise LoadError(f"{spec} is a folder with its own weights; weights from another "
                            f"file cannot be loaded into it")
    elif spec != "demo" and code_entry(spec) is None and path.is_file():
        lm = _load_file(path, req)
    else:
        source = _arch_source(spec, dict(req.model_args))
        if source is None:
            raise _unknown(spec)
        lm = _load_arch(source, req, weights=req.weights)
    if req.input_size is not None:
        lm.input_size = tuple(req.input_size)
    lm.request = req
    check_runs(lm)
    return lm


def _load_arch(source: dict, req: ModelRequest, weights: str | None) -> LoadedModel:
    by_user = not req.from_file
    pretrained = req.pretrained or (source["kind"] == "demo" and not weights
                                    and not source.get("args"))
    if weights:
        if req.pretrained:
            raise LoadError("give either pretrained weights or a weights file, not both")
        wpath = Path(weights).expanduser()

        def build(n):
            src = dict(source, args={**source.get("args", {}),
                                     **({"num_classes": n} if n else {})})
            return build_architecture(src, trust=req.trust, code_root=req.code_root,
                                      by_user=by_user)

        model, n = checkpoint.load_into(build, wpath, arch_label(source), req.trust)
        if n is not None:
            source = dict(source, args={**source.get("args", {}), "num_classes": n})
        name = f"{wpath.name} ({arch_label(source)})"
    else:
        model = build_architecture(source, trust=req.trust, code_root=req.code_root,
                                   by_user=by_user, pretrained=pretrained)
        name = arch_label(source) if source["kind"] != "demo" else "demo (ResNet-20 on digits)"
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
    return LoadedModel(model.eval(), source, name, arch_label(source),
                       default_input_size(source), origin=origin)


def _load_file(path: Path, req: ModelRequest) -> LoadedModel:
    if path.suffix == ".py":
        raise LoadError(f"{path} is Python code: name the model in it as {path}:NAME "
                        f"(NAME: a class or a function that returns the model)")
    if req.arch:
        source = _arch_source(req.arch, dict(req.model_args))
        if source is None:
            raise _unknown(req.arch)
        if req.weights:
            raise LoadError(f"{path} is the weights file already; do not give another one")
        return _load_arch(source, req.replace(spec=req.arch, arch=None), weights=str(path))
    obj = checkpoint.unwrap(checkpoint.read(path, req.trust))
    if isinstance(obj, nn.Module):
        checkpoint.check_model(obj, str(path))
        cls = type(obj).__name__
        source = {"kind": "pickle", "file": str(path.resolve()),
                  "sha256": checkpoint.sha256_of(path), "class": cls}
        return LoadedModel(obj.eval(), source, f"{path.name} ({cls})", cls, (3, 224, 224),
                           origin={"spec": str(path.resolve())})
    if checkpoint.is_state_dict(obj):
        raise LoadError(f"{path} is a state_dict: say which architecture it belongs to "
                        f"(e.g. resnet18, timm:NAME or FILE.py:NAME)", fix="arch")
    raise LoadError(f"{path} holds neither a state_dict nor a model "
                    f"(found {type(obj).__name__})")


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
        with torch.no_grad():
            lm.model(torch.zeros(1, *lm.input_size))
    except Exception as e:  # noqa: BLE001 - any failure of user code becomes one line
        raise LoadError(f"{lm.name} does not run on an input of size "
                        f"{','.join(map(str, lm.input_size))} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160] if str(e) else ''})",
                        fix="input_size") from None


def load_model(what, *, arch: str | None = None, trust: bool = False,
               pretrained: bool = False, input_size=None, weights: str | None = None,
               model_args: dict | None = None, code_root: str | None = None) -> LoadedModel:
    """Load a model: a spec string (see ``ModelRequest``), a ``ModelRequest``, or an
    ``nn.Module`` object (with ``input_size``)."""
    if isinstance(what, nn.Module):
        return from_module(what, input_size)
    if isinstance(what, ModelRequest):
        return load(what)
    from pydantic import ValidationError

    from studio.core.schema import describe

    try:
        req = ModelRequest(spec=str(what), arch=arch, trust=trust, pretrained=pretrained,
                           input_size=input_size, weights=weights,
                           model_args=model_args or {}, code_root=code_root)
    except ValidationError as e:
        raise LoadError(describe(e), fix="input_size" if "input_size" in str(e) else None
                        ) from None
    return load(req)
