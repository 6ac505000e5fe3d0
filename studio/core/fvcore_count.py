"""The one adapter around fvcore's FLOP counter, used to cross-check the studio's counts.

fvcore counts one multiply-accumulate as one "flop", i.e. it reports MACs.
"""

from __future__ import annotations

import logging

import torch
from torch import nn


def fvcore_by_operator(model: nn.Module, input_size) -> dict[str, int]:
    """fvcore's count per operator kind (conv, linear, batch_norm, layer_norm ...)."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    was_training = model.training
    model.eval()
    try:
        fca = FlopCountAnalysis(model, torch.zeros(1, *input_size))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return {k: int(v) for k, v in fca.by_operator().items()}
    finally:
        model.train(was_training)


def fvcore_macs(model: nn.Module, input_size, conv_linear_only: bool = False) -> int:
    """fvcore's total for one sample. ``conv_linear_only`` keeps only its conv and linear
    terms, comparable one for one with the studio's conv+linear MACs."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    was_training = model.training
    model.eval()
    try:
        fca = FlopCountAnalysis(model, torch.zeros(1, *input_size))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        if conv_linear_only:
            ops = fca.by_operator()
            return int(ops.get("conv", 0) + ops.get("linear", 0) + ops.get("addmm", 0))
        return int(fca.total())
    finally:
        model.train(was_training)
