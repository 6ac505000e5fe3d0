"""The studio's Qt-free core: load, map, count, plan, prune, save.

Typical use::

    from studio.core import load_model, map_structure, auto_plan, prune
    lm = load_model("resnet18")
    s = map_structure(lm)
    plan = auto_plan(lm, s, "l1", flops_target=0.5)
    pruned, report = prune(lm, s, plan)
"""

from studio.core.criteria.weights import CRITERIA, score
from studio.core.errors import LoadError, PlanError, StudioError, SurgeryError, UntrustedFileError
from studio.core.model.loader import LoadedModel, load_model
from studio.core.plan.plan import Plan, predict, validate
from studio.core.model.saving import load_pruned, save_pruned
from studio.core.plan.selection import select
from studio.core.structure.map import StructureMap
from studio.core.plan.surgery import apply_plan
from studio.core.verbs import auto_plan, build_report, map_structure, prune

__all__ = [
    "CRITERIA", "LoadError", "LoadedModel", "Plan", "PlanError", "StructureMap", "StudioError",
    "SurgeryError", "UntrustedFileError", "apply_plan", "auto_plan", "build_report",
    "load_model", "load_pruned", "map_structure", "predict", "prune", "save_pruned", "score",
    "select", "validate",
]
