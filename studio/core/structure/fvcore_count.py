"""The one adapter around fvcore's FLOP counter, used to cross-check the studio's counts.

fvcore counts one multiply-accumulate as one "flop", i.e. it reports MACs.
"""

from __future__ import annotations

import logging

import torch
from torch import nn


def _analyse(model: nn.Module, input_size, read):
    """Run fvcore's FlopCountAnalysis on one dummy sample (eval mode) and ``read`` it."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    was_training = model.training
    model.eval()
    try:
        fca = FlopCountAnalysis(model, torch.zeros(1, *input_size))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return read(fca)
    finally:
        model.train(was_training)


def fvcore_by_operator(model: nn.Module, input_size) -> dict[str, int]:
    """fvcore's count per operator kind (conv, linear, batch_norm, layer_norm ...)."""
    return _analyse(
        model, input_size, lambda fca: {k: int(v) for k, v in fca.by_operator().items()}
    )


def fvcore_macs(model: nn.Module, input_size, conv_linear_only: bool = False) -> int:
    """fvcore's total for one sample. ``conv_linear_only`` keeps only its conv and linear
    terms, comparable one for one with the studio's conv+linear MACs."""
    if conv_linear_only:
        ops = fvcore_by_operator(model, input_size)
        return ops.get("conv", 0) + ops.get("linear", 0) + ops.get("addmm", 0)
    return _analyse(model, input_size, lambda fca: int(fca.total()))
