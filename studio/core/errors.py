"""Errors the user sees as one line. Anything else is a bug and shows a traceback.

Core messages say what is wrong and where (file, field, value) but never name a command-line
flag or a menu: ``fix`` names the remedy as a key, and each front end words it (the CLI as
``--arch NAME``, the window as its Open dialog).
"""

from __future__ import annotations

# Remedies a front end can offer; the CLI and the window each word them.
FIXES = ("arch", "trust", "input_size", "data", "code_root", "weights")


class StudioError(Exception):
    """Base class: the message is a complete, one-line explanation for the user."""

    def __init__(self, message: str, *, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


class LoadError(StudioError):
    """A model file or name could not be loaded."""


class UntrustedFile(LoadError):
    """Loading ``path`` would run code (a pickle, or model code that a file refers to), and
    the user has not consented. Only the user's own ``--trust`` or the window's question
    grants consent; a file (recipe, folder) never does."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(
            f"{path} {reason}; it was not loaded because that can run arbitrary code", fix="trust"
        )


UntrustedFileError = UntrustedFile  # the name of earlier releases


class UnsupportedModel(LoadError):
    """The model loads but the studio cannot prune it (and says why)."""


class PlanError(StudioError):
    """A pruning plan is invalid for the model."""


class SurgeryError(StudioError):
    """Physically pruning the model failed."""


class DataError(StudioError):
    """The data cannot be used; the message names the problem (and the file)."""


class InputError(StudioError):
    """A file or value the user gave is malformed; the message names file, field, value."""


class RecipeError(InputError):
    """The recipe file is malformed; the message names the field."""


class OutputError(StudioError):
    """A result cannot be written where asked (and nothing was changed there)."""
