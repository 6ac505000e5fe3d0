"""Save and reload pruned models without unsafe unpickling.

A pruned model is a folder: ``model.json`` (how to rebuild the unpruned architecture and the
plans applied to it, in order), ``weights.pt`` (a plain state_dict, read back with
``weights_only=True``), ``plan.json`` (the last plan) and ``report.json``. Reloading rebuilds
the architecture, replays the plans (physical surgery) and loads the weights strictly.
The folder is written next to its final place and swapped in by renames, so a crash never
leaves half a model, and the input model is never overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from studio.core.model import zoo
from studio.core.errors import LoadError, StudioError
from studio.core.io import atomic_torch_save, atomic_write_text
from studio.core.plan.plan import Plan

FORMAT = "pruning-studio/model"
VERSION = 1


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def save_pruned(out_dir, lm, model: nn.Module, plan: Plan | None, report: dict,
                extra_files: dict[str, str] | None = None) -> Path:
    """Write ``model`` (derived from loaded model ``lm`` by ``plan``) into ``out_dir``,
    with ``extra_files`` (name -> text, e.g. a metrics log) beside it."""
    from studio.core.model.loader import sha256_of

    out = Path(out_dir)
    src_file = lm.source.get("file")
    inputs = [Path(src_file)] if src_file else []
    if lm.folder:
        inputs.append(Path(lm.folder))
    for p in inputs:
        if _same_path(out, p):
            raise StudioError(f"--out {out} is the input model; choose another folder "
                              f"(the original is never overwritten)")
    if out.exists() and not out.is_dir():
        raise StudioError(f"--out {out} exists and is not a folder")
    plans = list(lm.plans) + ([plan.to_dict()] if plan is not None else [])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        atomic_torch_save(model.state_dict(), tmp / "weights.pt")
        meta = {
            "format": FORMAT, "version": VERSION, "arch": lm.arch, "name": lm.name,
            "source": lm.source, "input_size": list(lm.input_size), "plans": plans,
            "weights": "weights.pt", "weights_sha256": sha256_of(tmp / "weights.pt"),
        }
        atomic_write_text(tmp / "model.json", json.dumps(meta, indent=1))
        if plan is not None:
            plan.save(tmp / "plan.json")
        atomic_write_text(tmp / "report.json", json.dumps(report, indent=1))
        for name, text in (extra_files or {}).items():
            atomic_write_text(tmp / name, text)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_pruned(folder, trust: bool = False):
    """Rebuild a model saved by ``save_pruned``."""
    from studio.core.model.loader import LoadedModel, _torch_load, _unwrap, sha256_of
    from studio.core.structure.map import StructureMap
    from studio.core.plan.surgery import apply_plan

    folder = Path(folder)
    meta_file = folder / "model.json"
    if not meta_file.is_file():
        raise LoadError(f"{folder} is a folder but not a model saved by pruning-studio "
                        f"(no model.json)")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LoadError(f"{meta_file} is not valid JSON: {e}") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise LoadError(f"{meta_file} is not a pruning-studio model (version {VERSION})")
    src, arch = meta["source"], meta["arch"]
    if src.get("kind") == "arch":
        model = zoo.build(src["arch"], src.get("num_classes"))
    elif src.get("kind") == "pickle":
        f = Path(src["file"])
        if not f.exists():
            raise LoadError(f"{folder} was pruned from the pickled model {f}, which is gone; "
                            f"the architecture cannot be rebuilt without it")
        if sha256_of(f) != src["sha256"]:
            raise LoadError(f"{f} changed since {folder} was saved (sha256 differs)")
        model = _unwrap(_torch_load(f, trust))
    else:
        raise LoadError(f"{meta_file}: unknown source kind {src.get('kind')!r}")
    input_size = tuple(meta["input_size"])
    model.eval()
    for pd in meta.get("plans", []):
        plan = Plan.from_dict(pd)
        s = StructureMap(model, input_size, arch)
        model = apply_plan(model, s, plan, check=False)
    wfile = folder / meta.get("weights", "weights.pt")
    if not wfile.is_file():
        raise LoadError(f"{wfile} is missing")
    if meta.get("weights_sha256") and sha256_of(wfile) != meta["weights_sha256"]:
        raise LoadError(f"{wfile} is corrupt or was modified (sha256 differs from model.json)")
    sd = torch.load(wfile, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise LoadError(f"{wfile} does not fit the rebuilt model: "
                        f"{str(e).splitlines()[1][:160] if len(str(e).splitlines()) > 1 else e}"
                        ) from None
    return LoadedModel(model.eval(), src, f"{folder.name} (pruned {arch})", arch, input_size,
                       list(meta.get("plans", [])), folder=str(folder))
