"""torchvision, imported without compiling machinery nobody asked for.

``import torchvision`` (0.29) imports ``torch._dynamo`` -- 1.1 s of its 2.8 s on this
machine -- for one function, ``is_compile_supported``, which ``torchvision.ops.roi_align``
calls only when an RoI-align op runs (its own comment says the module was written to *avoid*
importing dynamo eagerly). Opening a model in the studio never runs it. ``torchvision()``
imports the package with a stand-in for ``torch._dynamo.utils`` that serves that one name
lazily and imports the real module for any other name; the stand-in is gone from
``sys.modules`` once the import returns, so ``torch.compile`` and anything else that needs
dynamo later gets the real one. Where dynamo is already loaded, it is a plain import.

Every studio module that needs torchvision imports it through here, so whichever comes
first gets the faster import (docs/upstream/torchvision-lazy-dynamo.patch offers the
one-line fix upstream).
"""

from __future__ import annotations

import importlib
import sys
import threading
import types

_STANDIN = ("torch._dynamo", "torch._dynamo.utils")
_lock = threading.Lock()


def torchvision() -> types.ModuleType:
    """The ``torchvision`` package."""
    mod = sys.modules.get("torchvision")
    if mod is not None and not _importing(mod):
        return mod
    with _lock:
        if "torchvision" in sys.modules or _STANDIN[0] in sys.modules:
            return importlib.import_module("torchvision")
        standins = _install()
        try:
            return importlib.import_module("torchvision")
        finally:
            _remove(standins)


def _importing(mod: types.ModuleType) -> bool:
    spec = getattr(mod, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def is_compile_supported(device_type: str) -> bool:
    """``torch._dynamo.utils.is_compile_supported``, imported on the first call."""
    from torch._dynamo.utils import is_compile_supported as real

    return real(device_type)


class _StandIn(types.ModuleType):
    """Serves the lazy names; any other attribute imports the real module and answers
    from it (a torchvision that imports more of dynamo still works, only not faster)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        _remove({n: m for n, m in sys.modules.items() if isinstance(m, _StandIn)})
        return getattr(importlib.import_module(self.__name__), name)


def _install() -> dict[str, types.ModuleType]:
    pkg, utils = (_StandIn(n) for n in _STANDIN)
    pkg.__path__ = []  # a package, so the submodule import resolves to the stand-in
    utils.is_compile_supported = is_compile_supported
    pkg.utils = utils
    standins = {_STANDIN[0]: pkg, _STANDIN[1]: utils}
    sys.modules.update(standins)
    return standins


def _remove(standins: dict[str, types.ModuleType]) -> None:
    for name, mod in standins.items():
        if sys.modules.get(name) is mod:
            del sys.modules[name]
