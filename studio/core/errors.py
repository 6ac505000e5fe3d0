"""Errors the user sees as one line. Anything else is a bug and shows a traceback."""


class StudioError(Exception):
    """Base class: the message is a complete, one-line explanation for the user."""


class LoadError(StudioError):
    """A model file or name could not be loaded."""


class UntrustedFileError(LoadError):
    """The file needs full unpickling, which can run code; the user did not trust it."""


class PlanError(StudioError):
    """A pruning plan is invalid for the model."""


class SurgeryError(StudioError):
    """Physically pruning the model failed."""
