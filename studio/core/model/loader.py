"""One loader for every model source: a torchvision architecture name, ``demo``, a
checkpoint file (state_dict or pickled model), or a directory written by ``prune``.

Files are always opened with ``torch.load(weights_only=True)`` first. A file that needs full
unpickling (a pickled ``nn.Module``) can run arbitrary code while loading, so it is refused
unless the caller passes ``trust=True`` -- the CLI's ``--trust``, the GUI's explicit question.
TorchScript archives are refused: their compiled graphs cannot be restructured.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from studio.core.model import zoo
from studio.core.errors import LoadError, UntrustedFileError

log = logging.getLogger(__name__)
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "ema")


@dataclass
class LoadedModel:
    model: nn.Module
    source: dict  # how to rebuild the unpruned architecture (saved with pruned models)
    name: str  # what the user sees
    arch: str
    input_size: tuple[int, int, int]
    plans: list[dict] = field(default_factory=list)  # plans applied since the source
    folder: str | None = None  # set when loaded from a folder written by ``prune``

    @property
    def num_classes(self) -> int | None:
        return self.source.get("num_classes")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_input_size(text: str | None):
    if text is None:
        return None
    try:
        size = tuple(int(v) for v in str(text).replace("x", ",").split(","))
    except ValueError:
        raise LoadError(f"input size '{text}' is not C,H,W (e.g. 3,224,224)") from None
    if len(size) != 3 or min(size) < 1:
        raise LoadError(f"input size '{text}' is not C,H,W with positive numbers")
    return size


def load_model(spec: str, *, arch: str | None = None, trust: bool = False,
               pretrained: bool = False, input_size=None) -> LoadedModel:
    """Load ``spec`` (see module docstring). Raises ``LoadError`` with a one-line reason."""
    input_size = parse_input_size(input_size) if isinstance(input_size, str) else input_size
    spec = str(spec)
    path = Path(spec).expanduser()
    if spec == "demo":
        lm = _load_demo()
    elif path.is_dir():
        from studio.core.model.saving import load_pruned

        lm = load_pruned(path, trust=trust)
    elif path.exists():
        lm = _load_file(path, arch, trust)
    elif "/" in spec or spec.endswith((".pt", ".pth", ".ckpt", ".bin", ".pkl")):
        raise LoadError(f"file not found: {spec}")
    else:
        lm = _load_arch(spec, pretrained)
    if input_size is not None:
        lm.input_size = tuple(input_size)
    _check_runs(lm)
    return lm


def _check_runs(lm: LoadedModel) -> None:
    lm.model.eval()
    try:
        with torch.no_grad():
            lm.model(torch.zeros(1, *lm.input_size))
    except Exception as e:
        raise LoadError(f"{lm.name} does not run on an input of size "
                        f"{','.join(map(str, lm.input_size))} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160]}); set --input-size C,H,W") from None


def _load_demo() -> LoadedModel:
    from studio.core.model import demo

    model = demo.DemoResNet()
    try:
        sd = torch.load(demo.CHECKPOINT, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise LoadError(f"the demo checkpoint is missing: run 'python scripts/make_demo.py' "
                        f"to recreate {demo.CHECKPOINT}") from None
    model.load_state_dict(sd)
    return LoadedModel(model.eval(), {"kind": "arch", "arch": zoo.DEMO_ARCH, "num_classes": 10,
                                      "demo": True},
                       "demo (ResNet-20 on digits)", zoo.DEMO_ARCH, demo.INPUT_SIZE)


def _canonical_arch(arch: str) -> str:
    return zoo.DEMO_ARCH if arch in ("demo", zoo.DEMO_ARCH) else arch


def _load_arch(arch: str, pretrained: bool, num_classes: int | None = None) -> LoadedModel:
    arch = _canonical_arch(arch)
    why = zoo.unsupported_reason(arch)
    if why:
        raise LoadError(f"{arch} is not supported: {why}")
    if pretrained:
        model = _pretrained(arch)
    else:
        model = zoo.build(arch, num_classes)
    n = _num_classes(model)
    return LoadedModel(model.eval(), {"kind": "arch", "arch": arch, "num_classes": n},
                       arch + (" (pretrained)" if pretrained else ""), arch,
                       zoo.default_input_size(arch))


def _num_classes(model: nn.Module) -> int | None:
    last = None
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            last = m
    if isinstance(last, nn.Linear):
        return last.out_features
    return getattr(last, "out_channels", None)


def _pretrained(arch: str) -> nn.Module:
    import socket
    import urllib.error

    import torchvision

    if arch == zoo.DEMO_ARCH:
        return _load_demo().model
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
                        f"(from {weights.url})") from None
    finally:
        socket.setdefaulttimeout(old)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _torch_load(path: Path, trust: bool):
    size = path.stat().st_size
    if size == 0:
        raise LoadError(f"{path} is empty")
    if path.suffix == ".onnx":
        raise LoadError(f"{path} is an ONNX file: the studio prunes PyTorch models; load the "
                        f"PyTorch checkpoint it was exported from")
    if _is_torchscript(path):
        raise LoadError(f"{path} is a TorchScript archive: its compiled graph cannot be "
                        f"restructured; load the eager model's state_dict with --arch instead")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes one line below
        msg = str(e)
        glob = re.search(r"GLOBAL ([\w.]+)", msg)
        if glob is None:
            first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
            if "Weights only load failed" in first or not msg.strip():
                first = "not a PyTorch checkpoint"
            raise LoadError(f"{path} cannot be read: {first[:160]} (corrupt, truncated or "
                            f"not a PyTorch file)") from None
        if not trust:
            raise UntrustedFileError(
                f"{path} contains pickled Python objects (e.g. {glob.group(1)}); unpickling "
                f"can run arbitrary code, so it was not loaded -- pass --trust only if you "
                f"trust its source, or save a state_dict instead") from None
    log.warning("unpickling %s with full trust", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"{path} could not be unpickled: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160] if str(e) else ''}") from None


def _unwrap(obj):
    """Dig the weights or the model out of common checkpoint wrappers."""
    for _ in range(3):
        if isinstance(obj, nn.Module):
            return obj
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor)
                                                 for v in obj.values()):
            return obj
        if isinstance(obj, dict):
            for k in _WRAPPER_KEYS:
                if k in obj and isinstance(obj[k], (dict, nn.Module)):
                    obj = obj[k]
                    break
            else:
                break
    return obj


def _strip_prefix(sd: dict) -> dict:
    for prefix in ("module.", "model.", "_orig_mod."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _load_file(path: Path, arch: str | None, trust: bool) -> LoadedModel:
    obj = _unwrap(_torch_load(path, trust))
    digest = sha256_of(path)
    if isinstance(obj, nn.Module):
        name = type(obj).__name__
        return LoadedModel(obj.eval(), {"kind": "pickle", "file": str(path.resolve()),
                                        "sha256": digest, "num_classes": _num_classes(obj)},
                           f"{path.name} ({name})", name, (3, 224, 224))
    if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor)
                                                  for v in obj.values())):
        raise LoadError(f"{path} holds neither a state_dict nor a model "
                        f"(found {type(obj).__name__})")
    if arch is None:
        raise LoadError(f"{path} is a state_dict: say which architecture it belongs to with "
                        f"--arch NAME (e.g. --arch resnet18)")
    sd = _strip_prefix(obj)
    lm = _load_arch(arch, pretrained=False)
    try:
        lm.model.load_state_dict(sd)
    except RuntimeError:
        n = _classes_from(lm.model, sd)
        if n is None:
            raise LoadError(_mismatch(path, lm.arch, lm.model, sd)) from None
        lm = _load_arch(arch, pretrained=False, num_classes=n)
        try:
            lm.model.load_state_dict(sd)
        except RuntimeError:
            raise LoadError(_mismatch(path, lm.arch, lm.model, sd)) from None
    lm.source.update(file=str(path.resolve()), sha256=digest)
    lm.name = f"{path.name} ({lm.arch})"
    return lm


def _classes_from(model: nn.Module, sd: dict) -> int | None:
    """If only the classifier's shape differs, the checkpoint's class count."""
    own = model.state_dict()
    if set(own) != set(sd):
        return None
    diff = [k for k in own if own[k].shape != sd[k].shape]
    if diff and all(k.rsplit(".", 1)[0] == diff[0].rsplit(".", 1)[0] for k in diff):
        return int(sd[diff[0]].shape[0])
    return None


def _mismatch(path: Path, arch: str, model: nn.Module, sd: dict) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [k for k in own if k in sd and own[k].shape != sd[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if shape:
        parts.append(f"{len(shape)} shape mismatches (e.g. {shape[0]}: "
                     f"{tuple(sd[shape[0]].shape)} vs {tuple(own[shape[0]].shape)})")
    return f"{path} does not match architecture {arch}: {'; '.join(parts)}"
