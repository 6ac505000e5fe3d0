"""The one adapter around fvcore's FLOP counter, used to cross-check the studio's counts.

fvcore counts one multiply-accumulate as one "flop", i.e. it reports MACs.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

_NORM_AND_POOL_OPS = ("aten::batch_norm", "aten::group_norm", "aten::layer_norm",
                      "aten::instance_norm", "aten::adaptive_avg_pool2d",
                      "aten::upsample_nearest2d", "aten::upsample_bilinear2d")


def fvcore_macs(model: nn.Module, input_size, conv_linear_only: bool = False) -> int:
    """fvcore's total for one sample. ``conv_linear_only`` drops its norm/pool handlers so
    the total is comparable term by term with the studio's conv+linear MACs."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    was_training = model.training
    model.eval()
    try:
        fca = FlopCountAnalysis(model, torch.zeros(1, *input_size))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        if conv_linear_only:
            fca.set_op_handle(**{op: None for op in _NORM_AND_POOL_OPS})
        return int(fca.total())
    finally:
        model.train(was_training)
