"""A loaded model and what it knows about itself: the module, how to rebuild its
architecture (``source``), how to reload the unpruned original with its weights
(``origin``), the plans applied since, and the request that opened it. Pruned and fine-tuned
children are derived from it (``derive``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from studio.core.model.request import ModelRequest


@dataclass
class LoadedModel:
    model: nn.Module
    source: dict  # how to rebuild the unpruned architecture (kind, name/entry, args)
    name: str  # what the user sees
    arch: str
    input_size: tuple[int, ...]
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
        return LoadedModel(
            model,
            copy.deepcopy(self.source),
            f"{base} [{label}]",
            self.arch,
            self.input_size,
            plans,
            None,
            copy.deepcopy(self.origin),
        )

    def describe_source(self) -> str:
        """One phrase for the window's title bar and reports: where the model came from."""
        s = self.source
        kind = s.get("kind")
        text = {
            "demo": "built-in demo",
            "torchvision": f"torchvision {s.get('name')}",
            "timm": f"timm {s.get('name')}",
            "pickle": "pickled model file",
            "module": "Python object",
        }.get(kind)
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
