"""Pruning Studio: see, choose and physically remove the filters, stage channels and
residual blocks of a CNN."""

__version__ = "0.1.0"
