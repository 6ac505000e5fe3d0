"""Architecture sources as data: a ``source`` record (demo, torchvision, timm, the user's
code, a pickle) names an architecture and its arguments; ``build_architecture`` makes the
model it describes. Folders, recipes and the loader all go through here."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import torch
from torch import nn

from studio.core.errors import LoadError, UnsupportedModel
from studio.core.model import checkpoint, usercode, zoo
from studio.core.model.request import code_entry

log = logging.getLogger(__name__)


def build_architecture(
    source: dict,
    *,
    trust: bool = False,
    code_root: str | None = None,
    by_user: bool = False,
    pretrained: bool = False,
) -> nn.Module:
    """The (randomly initialised, or pretrained) model a ``source`` record describes."""
    kind, args = source.get("kind"), dict(source.get("args") or {})
    if kind == "demo":
        from studio.core.model import demo

        n = args.get("num_classes", demo.NUM_CLASSES)
        if args.get("variant") == "clutter":
            from studio.core.model import clutter

            model = clutter.build(n)
            if pretrained:
                model.load_state_dict(clutter.checkpoint_state())
            return model
        model = demo.DemoResNet(num_classes=n)
        if pretrained:
            model.load_state_dict(demo.checkpoint_state())
        return model
    if kind == "torchvision":
        if pretrained:
            if args:
                raise LoadError(
                    f"torchvision's pretrained {source['name']} takes no "
                    f"arguments (got {sorted(args)}); load weights instead",
                    fix="weights",
                )
            return _torchvision_pretrained(source["name"])
        return zoo.build(source["name"], args)
    if kind == "timm":
        from studio.core.model import timm_source

        return timm_source.build(source["name"], args, pretrained)
    if pretrained:
        raise LoadError(
            "pretrained weights exist for torchvision and timm architectures and "
            "the demo; load this model's weights from a file",
            fix="weights",
        )
    if kind == "code":
        return usercode.build(source, trust=trust, code_root=code_root, by_user=by_user)
    if kind == "pickle":
        obj = checkpoint.unwrap(checkpoint.read(source["file"], trust, code_root))
        if not isinstance(obj, nn.Module):
            raise LoadError(f"{source['file']} no longer holds a pickled model")
        return obj
    raise LoadError(f"unknown model source kind {kind!r}")


def _torchvision_pretrained(arch: str) -> nn.Module:
    import socket
    import urllib.error

    from studio.core.model.tv import torchvision as _tv

    torchvision = _tv()
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
        raise LoadError(
            f"pretrained weights for {arch} are not cached and could not be "
            f"downloaded ({type(e).__name__}); put {fname} into {cache} "
            f"(from {weights.url})",
            fix="weights",
        ) from None
    finally:
        socket.setdefaulttimeout(old)


def arch_source(spec: str, args: dict) -> dict | None:
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
    if name in ("clutter", "demo_clutter"):
        return {"kind": "demo", "args": {**args, "variant": "clutter"}}
    if zoo.exists(name) or spec.startswith(("tv:", "torchvision:")):
        why = zoo.unsupported_reason(name)
        if why:
            raise UnsupportedModel(f"{name} is not supported: {why}")
        return {"kind": "torchvision", "name": name, "args": args}
    return None


def _clutter(source: dict) -> bool:
    return (source.get("args") or {}).get("variant") == "clutter"


def arch_label(source: dict) -> str:
    kind = source.get("kind")
    if kind == "demo":
        return "demo_clutter" if _clutter(source) else zoo.DEMO_ARCH
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
        from studio.core.model import clutter, demo

        return clutter.INPUT_SIZE if _clutter(source) else demo.INPUT_SIZE
    if kind == "torchvision":
        return zoo.default_input_size(source["name"])
    if kind == "timm":
        from studio.core.model import timm_source

        return timm_source.default_input_size(source["name"])
    return (3, 224, 224)


def unknown(spec: str) -> LoadError:
    if "/" in spec or "\\" in spec or spec.endswith(checkpoint.WEIGHT_SUFFIXES + (".py",)):
        return LoadError(f"file not found: {spec}")
    pool = list(zoo.architectures())
    close = difflib.get_close_matches(spec, pool, n=4, cutoff=0.6)
    try:
        from studio.core.model import timm_source

        close += [
            f"timm:{n}"
            for n in difflib.get_close_matches(spec, timm_source.names(), n=3, cutoff=0.75)
        ]
    except LoadError:
        pass
    hint = f" (did you mean {', '.join(close[:5])}?)" if close else ""
    return LoadError(
        f"unknown architecture '{spec}'{hint}; see 'pruning-studio archs', or "
        f"give timm:NAME, FILE.py:NAME, a checkpoint or a folder"
    )
