"""torchvision, imported without compiling machinery nobody asked for.

``import torchvision`` (0.29) imports ``torch._dynamo`` -- 1.1 s of its 2.7 s on this
machine -- for one function, ``is_compile_supported``, which ``torchvision.ops.roi_align``
calls only when an RoI-align op runs (its own ``lazy_compile`` says the module was written
to *avoid* importing dynamo eagerly). Opening a model in the studio never runs it.

``torchvision()`` imports the package with a meta-path finder in place that loads that one
module from its own source with the one import line made lazy -- what
``docs/upstream/torchvision-lazy-dynamo.patch`` proposes upstream. Nothing else changes:
no stand-in module is ever put in ``sys.modules``, so any thread importing dynamo meanwhile
gets the real one, and ``torch.compile`` works as before. When the line is not in the
source (another torchvision), the module loads as it is. Every studio module that needs
torchvision imports it through here, so whichever comes first gets the faster import.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

MODULE = "torchvision.ops.roi_align"
EAGER = b"from torch._dynamo.utils import is_compile_supported\n"
LAZY = b"from studio.core.model.tv import is_compile_supported\n"


def torchvision() -> types.ModuleType:
    """The ``torchvision`` package."""
    if not any(isinstance(f, _LazyRoiAlign) for f in sys.meta_path):
        sys.meta_path.insert(0, _LazyRoiAlign())
    return importlib.import_module("torchvision")


def is_compile_supported(device_type: str) -> bool:
    """``torch._dynamo.utils.is_compile_supported``, imported on the first call."""
    from torch._dynamo.utils import is_compile_supported as real

    return real(device_type)


class _LazyRoiAlign(importlib.abc.MetaPathFinder):
    """Answers for that one module when its source file is on the path (an installed
    torchvision, or a bundle that ships the sources); otherwise stays out of the way, so
    the finders after it -- a frozen importer, a user's import hooks -- answer as usual."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        origin = getattr(spec, "origin", None) or ""
        if not origin.endswith(".py") or not os.path.isfile(origin):
            return None
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=_Loader(fullname, origin)
        )


class _Loader(importlib.machinery.SourceFileLoader):
    """Compiles the module from its source with the eager import replaced -- never from,
    and never into, the bytecode cache (which keeps torchvision's own code)."""

    def get_code(self, fullname):
        source = self.get_data(self.path)
        if EAGER in source:
            source = source.replace(EAGER, LAZY, 1)
        return self.source_to_code(source, self.path)
