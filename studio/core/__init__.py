"""The studio's Qt-free core: load, map, count, plan, prune, save -- and the verbs that chain
them (``studio.core.verbs``), which the CLI, the window and recipes all call.

Typical use::

    from studio.core import load_model, map_structure, auto_plan, prune
    lm = load_model("resnet18")            # or "timm:resnet18", "net.py:Net", an nn.Module
    s = map_structure(lm)
    plan = auto_plan(lm, s, "l1", flops_target=0.5)
    pruned, report = prune(lm, s, plan)

Names are imported on first use (PEP 562), so importing a light submodule (the criteria
list, the errors) does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "StudioError": "errors",
    "LoadError": "errors",
    "PlanError": "errors",
    "SurgeryError": "errors",
    "UntrustedFile": "errors",
    "UntrustedFileError": "errors",
    "UnsupportedModel": "errors",
    "InputError": "errors",
    "OutputError": "errors",
    "DataError": "errors",
    "ModelRequest": "model.request",
    "LoadedModel": "model.loaded",
    "load_model": "model.loader",
    "load_pruned": "model.saving",
    "save_pruned": "model.saving",
    "Plan": "plan.plan",
    "predict": "plan.plan",
    "validate": "plan.plan",
    "select": "plan.selection",
    "apply_plan": "plan.surgery",
    "StructureMap": "structure.map",
    "CRITERIA": "criteria",
    "WEIGHT_CRITERIA": "criteria",
    "DATA_CRITERIA": "criteria",
    "score": "criteria",
    "auto_plan": "verbs",
    "build_report": "verbs",
    "map_structure": "verbs",
    "prune": "verbs",
    "reconstruct": "verbs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'studio.core' has no attribute '{name}'")
    attr = {"CRITERIA": "ALL", "score": "compute"}.get(name, name)
    value = getattr(importlib.import_module(f"studio.core.{mod}"), attr)
    globals()[name] = value
    return value
