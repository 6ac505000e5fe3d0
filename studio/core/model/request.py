"""The one description of "which model to open", read by every front end (CLI, window,
recipes, recovery, saved folders) and by the loader.

``spec`` is one of: ``demo``; a torchvision architecture (``resnet18``); ``timm:NAME``;
``FILE.py:NAME`` or ``package.module:NAME`` (the user's own code: NAME is a class or a
factory, ``model_args`` its arguments); a checkpoint file (a state_dict needs ``arch``, an
architecture spec); or a folder written by the studio. ``weights`` loads a state_dict or
safetensors file into any architecture spec.

``trust``, ``code_root`` and ``from_file`` are never written to a file: consent comes only
from the user at the moment of loading. A request read from a file (recipe, folder,
recovery) has ``from_file`` set, so code it names runs only with ``trust``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

MAX_CLASSES = 1_000_000
_ENTRY = re.compile(r"^(?P<left>.+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_input_size(value) -> tuple[int, ...] | None:
    """'3,224,224', '3x224x224', '12,128' or a sequence -> (C, H, W), or (C, L) for a
    sequence model (Conv1d); ValueError with the reason."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.replace("x", ",").split(",")]
        except ValueError:
            raise ValueError(
                f"input size '{value}' is not C,H,W (e.g. 3,224,224) or C,L (e.g. 12,128)"
            ) from None
    try:
        size = tuple(value)
    except TypeError:
        raise ValueError(f"input size {value!r} is not C,H,W or C,L") from None
    if len(size) not in (2, 3) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in size
    ):
        raise ValueError(
            f"input size {value!r} is not whole numbers C,H,W (images) or C,L (sequences, "
            f"for Conv1d models)"
        )
    c, *sides = size
    if not 1 <= c <= 64 or not all(1 <= v <= (4096 if len(sides) == 2 else 1 << 20) for v in sides):
        raise ValueError(
            f"input size {','.join(map(str, size))} is out of range (1..64 channels, "
            f"1..4096 pixels a side, or 1..1048576 samples)"
        )
    return size


def code_entry(spec: str) -> tuple[str, str, str] | None:
    """``("file", path, name)`` for ``FILE.py:NAME``, ``("module", dotted, name)`` for
    ``package.module:NAME``, else None."""
    m = _ENTRY.match(spec)
    if m is None or re.match(r"^[A-Za-z]:[\\/]", spec):  # a Windows drive, not an entry
        return None
    left, name = m.group("left"), m.group("name")
    if left.endswith(".py"):
        return "file", left, name
    if _DOTTED.match(left) and left not in ("timm", "tv", "torchvision"):
        return "module", left, name
    return None


def check_json_value(v, depth: int = 0) -> None:
    if depth > 8:
        raise ValueError("model arguments are nested too deeply")
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise ValueError("model argument names must be strings")
            check_json_value(x, depth + 1)
    elif isinstance(v, (list, tuple)):
        for x in v:
            check_json_value(x, depth + 1)
    elif not (v is None or isinstance(v, (bool, int, float, str))):
        raise ValueError(f"model argument {v!r} is not a JSON value")


def check_model_args(v: dict) -> dict:
    check_json_value(v)
    n = v.get("num_classes")
    if n is not None and (
        isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CLASSES
    ):
        raise ValueError(f"num_classes must be a whole number from 1 to {MAX_CLASSES:,}")
    return v


InputSize = Annotated[tuple[int, ...] | None, BeforeValidator(parse_input_size)]
ModelArgs = Annotated[dict[str, Any], AfterValidator(check_model_args)]


class ModelSpec(BaseModel):
    """What to load, as data (what a recipe or a saved folder may say)."""

    model_config = ConfigDict(extra="forbid")

    spec: str = Field(min_length=1, max_length=4096)
    arch: str | None = Field(None, max_length=4096)
    weights: str | None = Field(None, max_length=4096)
    pretrained: bool = False
    model_args: ModelArgs = Field(default_factory=dict)
    input_size: InputSize = None


class ModelRequest(ModelSpec):
    """A ``ModelSpec`` and the user's consent (never from a file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Never written to a file (see the module docstring).
    trust: bool = Field(False, exclude=True)
    code_root: str | None = Field(None, exclude=True)
    from_file: bool = Field(False, exclude=True)

    @classmethod
    def from_record(cls, d, where: str = "model request", **consent) -> ModelRequest:
        """A request read from a file (recipe, folder, recovery, settings): consent is never
        taken from it -- only from ``consent`` (the user's own ``trust``, ``code_root``)."""
        from studio.core.errors import InputError
        from studio.core.schema import parse

        if not isinstance(d, dict):
            raise InputError(
                f"{where}: expected an object naming the model, got {type(d).__name__}"
            )
        d = {
            k: v
            for k, v in d.items()
            if k not in ("trust", "code_root", "from_file", "weights_sha256")
        }
        req = parse(cls, d, where)
        return req.model_copy(update={**consent, "from_file": True})

    def record(self) -> dict:
        """The request as data for a file: what to load, never consent."""
        return self.model_dump(exclude_defaults=True, mode="json")

    def replace(self, **changes) -> ModelRequest:
        return self.model_copy(update=changes)

    @property
    def label(self) -> str:
        return self.spec + (f" (arch {self.arch})" if self.arch else "")
