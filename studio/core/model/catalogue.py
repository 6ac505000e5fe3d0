"""The architectures one can open by name -- torchvision's and timm's -- with their family,
and their size computed on the meta device (no memory, no weights) for a model browser."""

from __future__ import annotations

import re
from functools import lru_cache

from studio.core.errors import StudioError


def _family(name: str) -> str:
    m = re.match(r"[a-z]+(?:_v\d|v\d)?", name)
    return m.group(0) if m else name


@lru_cache(maxsize=1)
def entries() -> tuple[dict, ...]:
    """One entry per architecture: ``spec`` (what to open), ``library``, ``family``."""
    from studio.core.model import zoo

    out = [
        {
            "spec": a,
            "library": "torchvision",
            "family": _family(a),
            "note": zoo.unsupported_reason(a) or "",
        }
        for a in zoo.architectures()
    ]
    try:
        from studio.core.model import timm_source

        out += [
            {
                "spec": f"timm:{e['name']}",
                "library": "timm",
                "family": e["family"],
                "note": "" if e["pretrained"] else "no pretrained weights",
            }
            for e in timm_source.catalogue()
        ]
    except StudioError:
        pass
    return tuple(out)


def size(spec: str, input_size=(3, 224, 224)) -> dict:
    """Params and FLOPs of ``spec`` at ``input_size``, computed on the meta device; an
    ``error`` entry instead when it cannot be built or run there."""
    import torch

    from studio.core.model.sources import arch_source, build_architecture, default_input_size
    from studio.core.structure.counting import build_cost_table

    try:
        source = arch_source(spec, {})
        if source is None:
            return {"error": "not an architecture name"}
        size_ = tuple(input_size) if input_size else default_input_size(source)
        with torch.device("meta"):
            model = build_architecture(source).eval()
            totals = build_cost_table(model, torch.zeros(1, *size_)).totals()
        return {"params": totals.params, "flops": totals.flops, "input_size": size_}
    except Exception as e:  # noqa: BLE001 - a browser shows what it can
        return {"error": str(e).splitlines()[0][:120] if str(e) else type(e).__name__}
