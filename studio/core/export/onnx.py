"""ONNX export, verified in onnxruntime against PyTorch before it is saved."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio.core.errors import StudioError
from studio.core.io import atomic_write_bytes
from studio.core.outputs import check_file

OPSET = 17
log = logging.getLogger(__name__)


def export_onnx(model: nn.Module, input_size, path, atol: float = 1e-4, inputs=()) -> dict:
    """Export to ONNX (dynamic batch), load it in onnxruntime and compare with PyTorch.
    Returns ``{"path", "max_abs_diff", "opset", "hint"}`` (``hint``: ``width_hint``, or
    None); raises if outputs disagree. ``path`` may replace only an ONNX file the studio
    wrote, never one of ``inputs``."""
    import onnx

    path = Path(path)
    check_file(path, inputs)
    model = model.eval()
    x = torch.randn(2, *input_size)
    m = onnx.load_from_string(onnx_bytes(model, input_size))
    m.producer_name = "pruning-studio"
    entry = m.metadata_props.add()
    entry.key, entry.value = "pruning-studio", "exported by Pruning Studio"
    data = m.SerializeToString()
    diff = check_session(session(data), model, x, atol, "ONNX export", "; not saved")
    check_file(path, inputs)
    atomic_write_bytes(path, data)
    return {"path": str(path), "max_abs_diff": diff, "opset": OPSET, "hint": width_hint(model)}


def onnx_bytes(model: nn.Module, input_size) -> bytes:
    """``model`` (eval) as an ONNX model (opset ``OPSET``, input "input" with a dynamic
    batch, output "logits"); an operator ONNX cannot express is a one-line StudioError."""
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "model.onnx"
        try:
            with warnings.catch_warnings(), _output_to(Path(tmp) / "exporter.txt"):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    # not zeros: a forward that branches on the values would trace the
                    # branch zeros take, not the one real inputs take
                    torch.randn(1, *input_size, generator=torch.Generator().manual_seed(0)),
                    str(f),
                    dynamo=False,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                    opset_version=OPSET,
                )
        except Exception as e:  # noqa: BLE001 - an operator ONNX cannot express, or the model
            log.debug("ONNX export failed; the exporter said:\n%s", _said(Path(tmp)))
            raise StudioError(f"the ONNX export failed: {_reason(e)}") from None
        return f.read_bytes()


def session(data: bytes, threads: int | None = None, spinning: bool = True):
    """An onnxruntime CPU session on ``data`` with all graph optimisations (BatchNorm
    folding, conv+activation fusion, blocked layouts). ``spinning=False`` stops its threads
    from busy-waiting after a call -- needed when it is timed in turn with other models,
    whose time the spinning would otherwise take."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 4  # its errors come back as one-line StudioErrors instead
    if threads:
        opts.intra_op_num_threads = threads
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's own errors (an op it lacks)
        raise StudioError(f"onnxruntime cannot run this model: {_reason(e)}") from None


def runner(sess, what: str = "the model in onnxruntime"):
    """``sess`` as a function of an input tensor (the logits as a numpy array); a failure
    inside onnxruntime (e.g. a shape the export fixed) is a one-line StudioError."""

    def run(x: torch.Tensor):
        try:
            return sess.run(None, {"input": x.numpy()})[0]
        except Exception as e:  # noqa: BLE001 - onnxruntime's own errors
            raise StudioError(f"{what} fails: {_reason(e)}") from None

    return run


def version() -> str:
    import onnxruntime as ort

    return ort.__version__


def check_session(sess, model: nn.Module, x: torch.Tensor, atol: float, what: str, then=""):
    """The largest difference between ``sess`` and ``model`` on ``x``; more than ``atol``
    (relative to the output's scale) is a StudioError."""
    got = runner(sess, what)(x)
    with torch.no_grad():
        ref = model(x).numpy()
    if got.shape != ref.shape:
        raise StudioError(
            f"{what} gives an output of shape {list(got.shape)} where PyTorch gives "
            f"{list(ref.shape)}: the export fixed a size that depends on the input (e.g. "
            f"the batch, read with int(x.shape[0])){then}"
        )
    diff = float(np.abs(got - ref).max())
    if diff > atol * max(1.0, float(np.abs(ref).max())):
        raise StudioError(
            f"{what} differs from PyTorch by {diff:.2e} (a forward that branches on its "
            f"input's values is traced along one branch){then}"
        )
    return diff


_REDIRECT = threading.Lock()  # one export at a time owns descriptors 1 and 2


@contextlib.contextmanager
def _output_to(path: Path):
    """The exporter prints the whole TorchScript graph to the process's standard output
    (file descriptor 1, from C++) when it fails; that and anything on descriptor 2 go to
    ``path`` instead -- the error says what failed, in one line. Exports take turns; where
    the descriptors cannot be duplicated (no console: a windowed app on Windows) nothing is
    redirected."""
    with _REDIRECT:
        streams = [st for st in (sys.stdout, sys.stderr) if st is not None]
        try:
            saved = {fd: os.dup(fd) for fd in (1, 2)}
        except OSError:
            yield
            return
        for st in streams:
            st.flush()
        try:
            with open(path, "wb") as sink:
                for fd in saved:
                    os.dup2(sink.fileno(), fd)
                try:
                    yield
                finally:
                    for st in streams:
                        st.flush()
                    for fd, keep in saved.items():
                        os.dup2(keep, fd)
        finally:
            for keep in saved.values():
                os.close(keep)


def _said(tmp: Path) -> str:
    try:
        return (tmp / "exporter.txt").read_text(errors="replace")[-4000:]
    except OSError:
        return ""


def _reason(e: BaseException) -> str:
    """The first line of the exporter's message, without its graph dump and its invitation
    to file a pull request; for adaptive pooling, what to do instead."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = text.split("  [Caused by", 1)[0].split(" Please feel free", 1)[0].strip()
    if "adaptive_" in text and "factor of input size" in text:
        text += (
            " -- at this input size the adaptive pooling's output does not divide its "
            "input; export with --deploy (a torch.export program), or map the model at an "
            "input size where it divides (e.g. 224x224 for the torchvision models)"
        )
    return text[:400]


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
