"""The torchvision classification architectures the studio can prune."""

from __future__ import annotations

from functools import lru_cache

from torch import nn

from studio.core.errors import LoadError
from studio.core.model import tv

# Not CNNs: channel coupling inside attention blocks is out of the studio's scope.
_TRANSFORMERS = ("vit_", "swin_", "swin3d", "maxvit")
# Architectures whose channel wiring Torch-Pruning cannot follow (channel shuffle).
UNSUPPORTED = {
    "shufflenet": "channel shuffle reorders channels between groups, which the dependency "
    "graph cannot follow",
}
DEMO_ARCH = "demo_resnet20"


@lru_cache(maxsize=1)
def architectures() -> list[str]:
    """Names accepted as a model source (torchvision classification CNNs)."""
    torchvision = tv.torchvision()
    names = torchvision.models.list_models(module=torchvision.models)
    return sorted(n for n in names if not n.startswith(_TRANSFORMERS))


def default_input_size(arch: str) -> tuple[int, int, int]:
    if arch == DEMO_ARCH:
        from studio.core.model.demo import INPUT_SIZE

        return INPUT_SIZE
    if arch == "inception_v3":
        return (3, 299, 299)
    return (3, 224, 224)


def unsupported_reason(arch: str) -> str | None:
    for prefix, why in UNSUPPORTED.items():
        if arch.startswith(prefix):
            return why
    return None


def exists(arch: str) -> bool:
    return arch == DEMO_ARCH or arch in architectures()


def build(arch: str, args: dict | None = None) -> nn.Module:
    """A randomly initialised model of ``arch`` (``args``: keyword arguments of its
    torchvision builder, e.g. ``num_classes``)."""
    args = dict(args or {})
    if arch == DEMO_ARCH:
        from studio.core.model.demo import DemoResNet

        return DemoResNet(num_classes=args.get("num_classes") or 10)
    torchvision = tv.torchvision()
    if arch not in architectures():
        close = [a for a in architectures() if a.startswith(arch[:4])][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise LoadError(f"unknown architecture '{arch}'{hint}; see 'pruning-studio archs'")
    kwargs = {"weights": None, **args}
    if arch in ("googlenet", "inception_v3"):
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
    try:
        return torchvision.models.get_model(arch, **kwargs)
    except (TypeError, ValueError) as e:
        raise LoadError(
            f"{arch} does not take these arguments {sorted(args)}: {str(e).splitlines()[0][:160]}"
        ) from None
