"""Reading checkpoint files safely.

``torch.load(weights_only=True)`` first, always. A file that needs full unpickling (a pickled
``nn.Module``) can run arbitrary code while loading, so it is read only with ``trust`` --
the user's own consent. TorchScript and ONNX files are refused: their graphs cannot be
restructured. safetensors files are read with the safetensors library (no pickle at all).
Weights are checked before they reach a model: no NaN/Inf, no integer (quantized) tensors
silently cast to float.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from studio.core.errors import LoadError, UntrustedFile

log = logging.getLogger(__name__)
_WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "module",
    "ema",
    "state_dict_ema",
    "model_ema",
)
_PREFIXES = ("module.", "model.", "_orig_mod.")
WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".tar", ".safetensors")


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def read(path, trust: bool = False, code_root: str | None = None):
    """The object stored in ``path``: a state_dict (tensors by name) or, with ``trust``, a
    pickled model -- whose classes are imported by module name, from ``code_root`` too when
    given. Raises ``LoadError``/``UntrustedFile`` with one line."""
    path = Path(path)
    if path.is_dir():
        raise LoadError(f"{path} is a folder, not a checkpoint file")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise LoadError(f"file not found: {path}") from None
    except OSError as e:
        raise LoadError(f"{path} cannot be read: {e.strerror}") from None
    if size == 0:
        raise LoadError(f"{path} is empty")
    if path.suffix == ".onnx":
        raise LoadError(
            f"{path} is an ONNX file: the studio prunes PyTorch models; load the "
            f"PyTorch checkpoint it was exported from"
        )
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if _is_torchscript(path):
        raise LoadError(
            f"{path} is a TorchScript archive: its compiled graph cannot be "
            f"restructured; load the eager model's state_dict instead",
            fix="arch",
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except Exception as e:  # noqa: BLE001 - every failure becomes one line below
        msg = str(e)
        glob = re.search(r"GLOBAL ([\w.]+)", msg)
        if glob is None:
            first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
            if "Weights only load failed" in first or not msg.strip():
                first = "not a PyTorch checkpoint"
            raise LoadError(
                f"{path} cannot be read: {_sentence(first)} (corrupt, truncated or not a "
                f"PyTorch file)"
            ) from None
        if not trust:
            raise UntrustedFile(
                path, f"contains pickled Python objects (e.g. {glob.group(1)})"
            ) from None
    return _unpickle(path, code_root)


def _unpickle(path: Path, code_root: str | None):
    """What ``torch.load`` unpickles from ``path`` (the user trusts it)."""
    log.warning("unpickling %s with full trust", path)
    root = Path(code_root).expanduser().resolve() if code_root else None
    if root is not None and str(root) not in sys.path:
        # The pickle names its classes' modules. Appended: the user's folder never shadows
        # an installed package of the same name.
        sys.path.append(str(root))
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if root is not None and not ((root / f"{top}.py").is_file() or (root / top).is_dir()):
            raise LoadError(
                f"{path} could not be unpickled: its code imports '{e.name}', which is not "
                f"installed (and not in {root}); install it"
            ) from None
        raise LoadError(
            f"{path} could not be unpickled: it names the module '{e.name}', which is not "
            f"importable here (the folder that holds {top or 'it'}.py, or its package, is "
            f"not on the path)",
            fix="code_root",
        ) from None
    except Exception as e:  # noqa: BLE001
        first = str(e).splitlines()[0][:160] if str(e) else ""
        raise LoadError(f"{path} could not be unpickled: {type(e).__name__}: {first}") from None


def _sentence(text: str, limit: int = 160) -> str:
    """The first sentence of ``text``, or its first ``limit`` characters and an ellipsis --
    never a clause cut in the middle."""
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise LoadError(f"{path} cannot be read as safetensors: {first}") from None


def is_state_dict(obj) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def unwrap(obj):
    """Dig the weights or the model out of common checkpoint wrappers."""
    for _ in range(3):
        if isinstance(obj, nn.Module) or is_state_dict(obj):
            return obj
        if isinstance(obj, dict):
            for k in _WRAPPER_KEYS:
                if k in obj and isinstance(obj[k], (dict, nn.Module)):
                    obj = obj[k]
                    break
            else:
                break
    return obj


def strip_prefix(sd: dict) -> dict:
    for prefix in _PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def check_tensors(named, where: str, floats: set[str] | None = None) -> None:
    """Refuse NaN/Inf values, and integer or quantized tensors where the model keeps
    floats (``floats``: the names of the model's floating-point tensors; by default every
    tensor but the integer bookkeeping of norm layers)."""
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            continue
        want_float = (
            name in floats if floats is not None else not name.endswith("num_batches_tracked")
        )
        if t.is_quantized or (want_float and not t.is_floating_point() and t.dtype != torch.bool):
            raise LoadError(
                f"{where} holds {str(t.dtype).replace('torch.', '')} values in "
                f"{name}: a quantized checkpoint cannot be pruned; load the float "
                f"checkpoint it was made from"
            )
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise LoadError(
                f"{where} holds {bad} NaN/Inf value(s) in {name}: the weights are "
                f"broken (a diverged training run?)"
            )


def check_model(model: nn.Module, where: str) -> None:
    """A model's own tensors: finite weights; integer buffers (indices) are its own."""
    named = list(model.named_parameters()) + list(model.named_buffers())
    check_tensors(
        named,
        where,
        {n for n, t in named if t.is_floating_point()} | {n for n, _ in model.named_parameters()},
    )


def floats_of(model: nn.Module) -> set[str]:
    return {n for n, t in model.state_dict().items() if t.is_floating_point()}


def _classes_from(model: nn.Module, sd: dict) -> int | None:
    """If only the classifier's shape differs, the checkpoint's class count."""
    own = model.state_dict()
    if set(own) != set(sd):
        return None
    diff = [k for k in own if own[k].shape != sd[k].shape]
    if diff and all(k.rsplit(".", 1)[0] == diff[0].rsplit(".", 1)[0] for k in diff):
        return int(sd[diff[0]].shape[0])
    return None


def mismatch(where: str, arch: str, model: nn.Module, sd: dict) -> str:
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
        parts.append(
            f"{len(shape)} shape mismatches (e.g. {shape[0]}: "
            f"{tuple(sd[shape[0]].shape)} vs {tuple(own[shape[0]].shape)})"
        )
    return f"{where} does not match architecture {arch}: {'; '.join(parts) or 'no keys'}"


def load_into(build, path: Path, arch: str, trust: bool = False) -> tuple[nn.Module, int | None]:
    """Build the architecture (``build(num_classes)``) and load the state_dict in ``path``
    into it; a different class count is read from the classifier's shape. Returns the
    model and that class count (None when the default fitted)."""
    obj = unwrap(read(path, trust))
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not is_state_dict(obj):
        raise LoadError(
            f"{path} holds neither a state_dict nor a model (found {type(obj).__name__})"
        )
    sd = strip_prefix(obj)
    model = build(None)
    check_tensors(sd.items(), str(path), floats_of(model))
    try:
        model.load_state_dict(sd)
        return model, None
    except RuntimeError:
        n = _classes_from(model, sd)
        if n is None:
            raise LoadError(mismatch(str(path), arch, model, sd)) from None
    model = build(n)
    try:
        model.load_state_dict(sd)
    except RuntimeError:
        raise LoadError(mismatch(str(path), arch, model, sd)) from None
    return model, n
