"""ONNX export, verified in onnxruntime against PyTorch before it is saved."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio.core.errors import StudioError
from studio.core.io import atomic_write_bytes
from studio.core.outputs import check_file

OPSET = 17


def export_onnx(model: nn.Module, input_size, path, atol: float = 1e-4, inputs=()) -> dict:
    """Export to ONNX (dynamic batch), load it in onnxruntime and compare with PyTorch.
    Returns ``{"path", "max_abs_diff", "opset", "hint"}`` (``hint``: ``width_hint``, or
    None); raises if outputs disagree. ``path`` may replace only an ONNX file the studio
    wrote, never one of ``inputs``."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    check_file(path, inputs)
    model = model.eval()
    x = torch.randn(2, *input_size)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                torch.zeros(1, *input_size),
                str(f),
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=OPSET,
            )
        m = onnx.load(str(f))
        m.producer_name = "pruning-studio"
        entry = m.metadata_props.add()
        entry.key, entry.value = "pruning-studio", "exported by Pruning Studio"
        data = m.SerializeToString()
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            ref = model(x).numpy()
        diff = float(np.abs(got - ref).max())
        if diff > atol * max(1.0, float(np.abs(ref).max())):
            raise StudioError(f"ONNX export differs from PyTorch by {diff:.2e}; not saved")
        check_file(path, inputs)
        atomic_write_bytes(path, data)
    return {"path": str(path), "max_abs_diff": diff, "opset": OPSET, "hint": width_hint(model)}


def width_hint(model: nn.Module, multiple: int = 8) -> str | None:
    """A one-line hint when many conv widths are not multiples of ``multiple``:
    onnxruntime's CPU convolutions work on blocks of 8/16 channels, and such a model can
    run slower than the unpruned one there (docs/benchmarks.md, realisation)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    odd = sum(1 for m in convs if m.out_channels % multiple)
    if not convs or odd <= len(convs) // 10:
        return None
    return (
        f"{odd} of {len(convs)} conv layers have widths that are not multiples of "
        f"{multiple}; onnxruntime may run this model slower than expected. Prune with "
        f"channels rounded to {multiple} for deployment."
    )
