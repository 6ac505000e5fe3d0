"""The one adapter around timm (``timm:NAME`` model sources). No other module imports timm.

Pretrained weights use timm's own mechanism (the Hugging Face hub cache, then a download).
Offline and not cached, the user gets one line naming the file and where it goes -- and no
minute of network retries: reachability is checked first with a short timeout.
"""

from __future__ import annotations

import socket
from functools import lru_cache

from torch import nn

from studio.core.errors import LoadError

HUB_HOST = "huggingface.co"


def _timm():
    try:
        import timm
    except ImportError:
        raise LoadError("timm models need the timm package (pip install timm)") from None
    return timm


@lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    """Every architecture timm can build."""
    return tuple(_timm().list_models())


def exists(name: str) -> bool:
    base = name.split(".", 1)[0]
    return base in set(names())


def pretrained_cfg(name: str):
    try:
        return _timm().models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - unknown tag: no config
        return None


def default_input_size(name: str) -> tuple[int, int, int]:
    cfg = pretrained_cfg(name)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return tuple(size) if size and len(size) == 3 else (3, 224, 224)


def _reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_weights(name: str) -> str | None:
    """The cached weight file for ``name``'s default pretrained tag, if any."""
    cfg = pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for fname in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        p = try_to_load_from_cache(hub_id, fname)
        if isinstance(p, str):
            return p
    return None


def build(name: str, args: dict, pretrained: bool = False) -> nn.Module:
    """``timm.create_model(name, pretrained=..., **args)`` with one-line errors."""
    timm = _timm()
    if not exists(name):
        import difflib

        close = difflib.get_close_matches(name, names(), n=4, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise LoadError(f"timm has no model '{name}'{hint}")
    kwargs = dict(args)
    if pretrained:
        cfg = pretrained_cfg(name)
        if cfg is None or not (getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None)):
            raise LoadError(f"timm has no pretrained weights for {name}")
        cached = _cached_weights(name)
        if cached:
            kwargs["pretrained_cfg_overlay"] = {"file": cached}
        elif not _reachable():
            where = f"https://huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else cfg.url
            raise LoadError(
                f"pretrained weights for timm:{name} are not cached and {HUB_HOST} cannot be "
                f"reached; put its model.safetensors (from {where}) into the Hugging Face "
                f"cache (~/.cache/huggingface/hub, e.g. 'hf download {cfg.hf_hub_id}' on a "
                f"connected machine) or load the file as weights",
                fix="weights",
            )
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as e:
        raise LoadError(
            f"timm:{name} does not take these arguments {sorted(args)}: "
            f"{str(e).splitlines()[0][:160]}"
        ) from None
    except (OSError, RuntimeError) as e:
        if pretrained:
            raise LoadError(
                f"pretrained weights for timm:{name} could not be loaded: "
                f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            ) from None
        raise


def catalogue() -> list[dict]:
    """One entry per timm architecture for the model browser (name, family, pretrained)."""
    _timm()
    try:
        from timm.models import _registry

        module, with_weights = _registry._model_to_module, _registry._model_has_pretrained
    except (ImportError, AttributeError):  # another timm: names only
        module, with_weights = {}, set()
    return [
        {"name": n, "family": module.get(n, n.split("_")[0]), "pretrained": n in with_weights}
        for n in names()
    ]
