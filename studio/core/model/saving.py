"""Save and reload pruned models without unsafe unpickling; folders are movable.

A saved model is a folder: ``model.json`` (how to rebuild the unpruned architecture -- as
data: a torchvision or timm name and its arguments, or the user's code as module/file name,
sha256 and arguments -- the plans applied to it in order, how to reload the unpruned original,
and the list of files the studio wrote), ``weights.pt`` (a plain state_dict, read back with
``weights_only=True``), ``plan.json`` (the last plan) and ``report.json``. Reloading
rebuilds the architecture, replays the plans (physical surgery) and loads the weights
strictly. Nothing in it is an absolute path the folder depends on, so it can be moved or
copied; a pickled source travels inside it (and needs consent to load, like any pickle).

Writing goes through ``studio.core.outputs``: the input is never overwritten, nothing the
studio did not write is ever removed, and a crash never leaves half a model.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from torch import nn

from studio.core.errors import InputError, LoadError
from studio.core.io import atomic_torch_save, atomic_write_text
from studio.core.model import checkpoint
from studio.core.model.loaded import LoadedModel
from studio.core.model.request import ModelArgs, ModelRequest, parse_input_size
from studio.core.model.sources import arch_label, build_architecture
from studio.core.outputs import MODEL_FORMAT, recover, write_folder
from studio.core.schema import MiB, expect_format, load_json, parse

FORMAT = MODEL_FORMAT
VERSION = 2
_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$"  # a plain file name inside the folder


class SourceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    kind: Literal["demo", "torchvision", "timm", "code", "pickle", "arch"]
    name: str | None = Field(None, max_length=512)
    args: ModelArgs = Field(default_factory=dict)
    module: str | None = Field(None, max_length=512)
    file: str | None = Field(None, max_length=4096)
    file_name: str | None = Field(None, max_length=512)
    abs: str | None = Field(None, max_length=4096)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    entry: str | None = Field(None, max_length=512)
    pruned: bool = False  # a pickled model that is already pruned: plans are history only
    class_: str | None = Field(None, alias="class", max_length=512)  # a pickled model's class
    # version 1
    arch: str | None = Field(None, max_length=512)
    num_classes: int | None = Field(None, ge=1, le=1_000_000)
    demo: bool | None = None


class FolderMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["pruning-studio/model"]
    version: Literal[1, 2]
    arch: str = Field(max_length=512)
    name: str = Field(max_length=2048)
    source: SourceRecord
    origin: dict[str, Any] | None = None
    input_size: Annotated[tuple[int, ...], BeforeValidator(parse_input_size)]
    plans: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    weights: str = "weights.pt"
    weights_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    files: list[str] | None = Field(None, max_length=1000)

    @field_validator("weights")
    @classmethod
    def _inside(cls, v):
        if not re.match(_NAME, v):
            raise ValueError("must be the name of a file inside the folder (no path)")
        return v


def _jsonable(o):
    import numpy as np

    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, float) and o != o:
        return None
    return o


def dumps(obj) -> str:
    return json.dumps(_jsonable(obj), indent=1, allow_nan=False, default=str)


def save_pruned(
    out_dir,
    lm,
    model: nn.Module,
    plan=None,
    report: dict | None = None,
    extra_files: dict[str, str] | None = None,
    inputs=(),
) -> Path:
    """Write ``model`` -- ``lm`` after ``plan`` (a ``Plan``, or None when the model only
    changed its weights) -- into the folder ``out_dir``, with ``extra_files`` (name -> text)."""
    plans = list(lm.plans) + ([plan.to_dict()] if plan is not None else [])
    source = dict(lm.source)
    ins = [lm.folder, *inputs]
    if source.get("kind") == "pickle":
        ins.append(source.get("file"))
    if lm.origin and lm.origin.get("weights"):
        ins.append(lm.origin["weights"])
    if source.get("kind") == "code" and source.get("abs"):
        ins.append(source["abs"])

    def write(tmp: Path) -> None:
        files = ["model.json", "weights.pt"]
        atomic_torch_save(model.state_dict(), tmp / "weights.pt")
        src = dict(source)
        if src.get("kind") == "pickle" and not src.get("pruned"):
            shutil.copyfile(src["file"], tmp / "source.pt")  # it travels with the folder
            src["file"] = "source.pt"
            files.append("source.pt")
        elif src.get("kind") in ("module", "pickle"):  # no code to rebuild it: pickle it
            atomic_torch_save(model, tmp / "model.pt")
            src = {
                "kind": "pickle",
                "file": "model.pt",
                "pruned": True,
                "sha256": checkpoint.sha256_of(tmp / "model.pt"),
            }
            files.append("model.pt")
        if plan is not None:
            plan.save(tmp / "plan.json")
            files.append("plan.json")
        atomic_write_text(tmp / "report.json", dumps(report or {}))
        files.append("report.json")
        for name, text in (extra_files or {}).items():
            atomic_write_text(tmp / name, text)
            files.append(name)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "arch": lm.arch,
            "name": lm.name,
            "source": src,
            "origin": lm.origin,
            "input_size": list(lm.input_size),
            "plans": plans,
            "weights": "weights.pt",
            "weights_sha256": checkpoint.sha256_of(tmp / "weights.pt"),
            "files": sorted(set(files)),
        }
        atomic_write_text(tmp / "model.json", dumps(meta))  # last: marks the folder complete

    return write_folder(out_dir, write, ins)


def _v1_source(src: SourceRecord) -> dict:
    if src.kind != "arch":
        return src.model_dump(exclude_none=True, exclude_defaults=True, by_alias=True)
    if src.demo:
        return {"kind": "demo"}
    args = {"num_classes": src.num_classes} if src.num_classes else {}
    return {"kind": "torchvision", "name": src.arch, "args": args}


def _origin(meta: FolderMeta, v1: SourceRecord) -> dict | None:
    if meta.origin is not None:
        return meta.origin
    if v1.kind == "arch":  # version 1 kept the checkpoint file of the original, if any
        if v1.demo:
            return {"spec": "demo"}
        if v1.file:
            return {"spec": v1.file, "arch": v1.arch}
        return {"spec": v1.arch}
    return None


def _plausible(meta_source: dict, weights: Path, folder: Path) -> None:
    """Refuse a model.json whose architecture is far larger than its weights file before
    allocating it (built on the meta device: no memory)."""
    if meta_source.get("kind") not in ("torchvision", "timm", "demo"):
        return
    try:
        with torch.device("meta"):
            m = build_architecture(meta_source)
        n = sum(p.numel() for p in m.parameters())
    except Exception:  # noqa: BLE001 - the real build reports it
        return
    size = weights.stat().st_size
    if n * 4 > 4 * size + 64 * MiB:
        raise LoadError(
            f"{folder}/model.json describes a model of {n:,} parameters but "
            f"{weights.name} holds only {size / MiB:.1f} MiB: the folder was "
            f"tampered with or is incomplete"
        )


def load_folder(folder, req: ModelRequest | None = None):
    """Rebuild a model saved by ``save_pruned``."""
    from studio.core.plan.plan import Plan
    from studio.core.plan.surgery import apply_plan
    from studio.core.structure.map import StructureMap

    folder = Path(folder)
    req = req or ModelRequest(spec=str(folder))
    recover(folder)
    meta_file = folder / "model.json"
    if not meta_file.is_file():
        raise LoadError(
            f"{folder} is a folder but not a model saved by pruning-studio (no model.json)"
        )
    try:
        d = load_json(meta_file, "model.json", 16 * MiB)
        expect_format(d, FORMAT, "pruning-studio model", str(meta_file), (1, 2))
        meta = parse(FolderMeta, d, str(meta_file))
    except InputError as e:
        raise LoadError(str(e)) from None
    source = _v1_source(meta.source)
    wfile = folder / meta.weights
    if not wfile.is_file():
        raise LoadError(f"{wfile} is missing")
    if meta.weights_sha256 and checkpoint.sha256_of(wfile) != meta.weights_sha256:
        raise LoadError(f"{wfile} is corrupt or was modified (sha256 differs from model.json)")
    if source.get("kind") == "pickle":
        f = Path(source["file"])
        f = f if f.is_absolute() else folder / f
        if not f.is_file():
            raise LoadError(
                f"{folder} was pruned from the pickled model {f}, which is gone; "
                f"the architecture cannot be rebuilt without it"
            )
        if source.get("sha256") and checkpoint.sha256_of(f) != source["sha256"]:
            raise LoadError(f"{f} changed since {folder} was saved (sha256 differs)")
        source["file"] = str(f)
    _plausible(source, wfile, folder)
    model = build_architecture(
        source, trust=req.trust, code_root=req.code_root, by_user=False
    ).eval()
    input_size = tuple(meta.input_size)
    if not source.get("pruned"):
        for k, pd in enumerate(meta.plans, 1):
            plan = Plan.from_dict(pd, f"{meta_file} (plan {k})")
            s = StructureMap(model, input_size, meta.arch)
            model = apply_plan(model, s, plan, check=False)
    try:
        sd = torch.load(wfile, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"{wfile} cannot be read: {str(e).splitlines()[0][:160]}") from None
    if not checkpoint.is_state_dict(sd):
        raise LoadError(f"{wfile} is not a state_dict")
    checkpoint.check_tensors(sd.items(), str(wfile), checkpoint.floats_of(model))
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        lines = str(e).splitlines()
        raise LoadError(
            f"{wfile} does not fit the rebuilt model: "
            f"{(lines[1] if len(lines) > 1 else lines[0])[:160].strip()}"
        ) from None
    if source.get("kind") == "pickle" and not source.get("pruned"):
        source["file"] = str(Path(source["file"]).resolve())
    return LoadedModel(
        model.eval(),
        source,
        f"{folder.name} (pruned {meta.arch})",
        meta.arch or arch_label(source),
        input_size,
        list(meta.plans),
        folder=str(folder),
        origin=_origin(meta, meta.source),
    )


# Older name of the same function.
load_pruned = load_folder
