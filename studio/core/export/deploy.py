"""The deploy treatment: what a pruned (or dense) model gets before it is timed or shipped,
so that removed FLOPs turn into measured speed -- and the dense baseline gets the same.

- **BatchNorm folded** into the convolution before it (``torch.fx``'s ``fuse``, which traces
  the model; a model that does not trace keeps its BatchNorms, and says so).
- **Channels-last** where it helps: both memory formats are timed at batch 1 on this
  machine and the faster kept (oneDNN's convolutions prefer NHWC on most CPUs).
- Checked: the treated model's outputs equal the original's (relative tolerance 1e-4), or
  nothing is returned.

``export_deploy`` writes the treated model as a ``torch.export`` program (``.pt2``: runs with
``torch.export.load(f).module()``, without the studio or the model's code; dynamic batch),
with what was done recorded inside it (``pruning-studio.json``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import statistics
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from studio.core.errors import StudioError
from studio.core.export import RUNTIMES
from studio.core.io import atomic_write_bytes
from studio.core.outputs import check_file

INFO = "pruning-studio.json"  # the record inside a .pt2 the studio wrote


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int, str]:
    """A copy of ``model`` (eval) with every BatchNorm that follows a conv folded into it.
    Returns (model, BatchNorms folded, a note when folding was not possible)."""
    from torch.fx.experimental.optimization import fuse

    m = copy.deepcopy(model).eval()
    before = sum(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())
    try:
        with warnings.catch_warnings(), _quiet_torch():
            warnings.simplefilter("ignore")
            fused = fuse(m)
    except Exception as e:  # noqa: BLE001 - code fx cannot trace: keep the BatchNorms
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        return m, 0, f"BatchNorm not folded: the model does not trace with torch.fx ({first})"
    after = sum(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in fused.modules())
    return fused, before - after, ""


def _one_tensor(out, what: str = "the model", then: str = "") -> None:
    if not isinstance(out, torch.Tensor):
        raise StudioError(
            f"{what} returns a {type(out).__name__}, not one tensor: the deploy treatment "
            f"needs a model whose forward returns its logits{then}"
        )


def _run(model: nn.Module, x: torch.Tensor, what: str = "the model"):
    """``model(x)``, a failure one line."""
    try:
        with torch.inference_mode():
            return model(x)
    except Exception as e:  # noqa: BLE001 - the model's own code
        raise StudioError(f"{what} fails on a batch of {len(x)}: {_first(e)}") from None


def _both_ms(pairs, calls: int) -> list[float]:
    """Median ms of each ``(model, input)`` in ``pairs``, timed in turn (the order
    alternating every round), so that a slow spell of the machine hits both alike."""
    ts = [[] for _ in pairs]
    with torch.inference_mode():
        for m, x in pairs:
            m(x)
        for r in range(calls):
            order = list(enumerate(pairs))
            for i, (m, x) in order if r % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                m(x)
                ts[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in ts]


def deploy_model(
    model: nn.Module,
    input_size,
    channels_last: str = "auto",
    calls: int = 9,
    width_note: bool = True,
):
    """The deploy treatment of ``model`` (never changed). ``channels_last``: "auto" (time
    both in turn, ``calls`` rounds at batch 1, keep the faster), "on" or "off";
    ``width_note``: say when widths are off the channels-last kernels' blocks. Returns
    (treated model, a record of what was done and measured)."""
    if channels_last not in ("auto", "on", "off"):
        raise StudioError(f"channels-last must be auto, on or off, not {channels_last!r}")
    treated, folded, note = fold_batchnorm(model)
    x = torch.randn(2, *input_size)
    was_training = model.training
    try:
        model.eval()
        ref = _run(model, x)
        got = _run(treated, x, "the model with BatchNorm folded")
    finally:
        model.train(was_training)
    _one_tensor(ref)
    diff = float((got - ref).abs().max())
    if diff > 1e-4 * max(1.0, float(ref.abs().max())):
        raise StudioError(f"folding BatchNorm changed the outputs by {diff:.2e}; not used")
    info = {
        "batchnorm_folded": folded,
        "fold_failed": bool(note),  # fx could not trace it: its BatchNorms stay
        "note": note,
        "max_abs_diff": diff,
    }
    x1 = torch.randn(1, *input_size)
    if channels_last == "on" and x1.dim() != 4:
        raise StudioError(
            "channels-last is a memory format of image tensors (N,C,H,W); this model takes "
            f"{list(input_size)}: give channels-last off or auto"
        )
    use = False
    if channels_last != "off" and x1.dim() == 4:
        cl = copy.deepcopy(treated).to(memory_format=torch.channels_last)
        x1cl = x1.to(memory_format=torch.channels_last)
        try:  # fx prints a failing traced module's frame to stderr: the error says it
            with contextlib.redirect_stderr(io.StringIO()), torch.inference_mode():
                cl(x1cl)
        except Exception as e:  # noqa: BLE001 - e.g. .view() on a channels-last tensor
            if channels_last == "on":
                raise StudioError(f"the model does not run channels-last: {_first(e)}") from None
            info["note"] = "; ".join(
                filter(
                    None, [note, f"channels-last left off: the model fails with it ({_first(e)})"]
                )
            )
        else:
            if channels_last == "on":
                use = True
            else:
                nchw, nhwc = _both_ms([(treated, x1), (cl, x1cl)], calls)
                info["batch1_ms"] = {"contiguous": nchw, "channels_last": nhwc}
                use = nhwc < nchw
        if use:
            treated = cl
    info["channels_last"] = use
    odd = _odd_widths(treated)
    if use and odd and width_note:
        info["note"] = "; ".join(
            filter(
                None,
                [
                    info["note"],
                    f"{odd[0]} of {odd[1]} convolutions have an output width that is not a "
                    f"multiple of {BLOCK}: channels-last kernels run those less efficiently; "
                    f"prune with --round-to {BLOCK} (ResNet-50 at 50% FLOPs on this CPU: "
                    f"realisation at batch 1 0.81 with --round-to 8, 0.92 with 16)",
                ],
            )
        )
    return treated, info


def timing_calls(
    models: dict,
    input_size,
    runtime: str = "torch",
    threads: int | None = None,
    cancel=None,
    channels_last: str = "auto",
):
    """``models`` (name -> nn.Module, the first the reference) made ready to be timed
    under ``runtime``, each as a function of a contiguous input tensor; and a record of
    what was done. The same treatment for every model:

    - ``torch``: the models as they are (eval);
    - ``deploy``: the deploy treatment of ``export --deploy`` (BatchNorm folded; the memory
      format the first model runs faster in, for all);
    - ``onnxruntime``: BatchNorm folded, exported to ONNX and run in an onnxruntime CPU
      session with all graph optimisations (what ``export --deploy --onnx`` ships), checked
      against the model itself; its threads do not spin between calls, so models timed in
      turn do not slow each other.

    ``cancel`` (a CancelToken) is checked between models: the treatment of a large model
    takes seconds. ``channels_last`` (deploy): "auto" (as the first model runs faster), "on"
    or "off".
    """
    if runtime not in RUNTIMES:
        raise StudioError(f"the runtime is one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime == "torch":
        return {k: m.eval() for k, m in models.items()}, {"runtime": "torch"}

    def name(k):  # one model: "the model"; two: "the original model", "the pruned model"
        return f"the {k} model" if len(models) > 1 else "the model"

    if runtime == "deploy":
        return _deployed(models, input_size, name, cancel, channels_last)
    return _in_onnxruntime(models, input_size, threads, name, cancel)


_THEN = " (--runtime torch times it as it is)"


def _deployed(models: dict, input_size, name, cancel, fmt: str = "auto"):
    """timing_calls for the deploy runtime."""
    treated, info, notes, n, folds, fmt0 = {}, None, [], len(models), [], fmt
    for k in models:
        if cancel is not None:
            cancel.check()
        try:  # the widths of the reference are not the user's to change
            treated[k], their = deploy_model(
                models[k], input_size, channels_last=fmt, width_note=info is not None or n == 1
            )
        except StudioError as e:
            raise StudioError(f"{name(k)} cannot be timed deployed: {e}{_THEN}") from None
        if info is None:  # the first model chooses the memory format for all
            info, fmt = their, ("on" if their["channels_last"] else "off")
        folds.append(their["fold_failed"])
        if their["note"]:
            notes.append(f"{name(k)}: {their['note']}")
    calls = {k: (lambda x, m=m: m(run_input(info, x))) for k, m in treated.items()}
    record = {
        "runtime": "deploy",
        "channels_last": info["channels_last"],
        "channels_last_chosen": "forced" if fmt0 != "auto" else "timed",
        "batchnorm_folded": not any(folds),
    }
    if notes:
        record["note"] = "; ".join(notes)
    return calls, record


def _in_onnxruntime(models: dict, input_size, threads, name, cancel):
    """timing_calls for the onnxruntime runtime."""
    from studio.core.export import onnx

    calls, notes, first = {}, [], next(iter(models))
    x = torch.randn(2, *input_size)
    for k, model in models.items():
        if cancel is not None:
            cancel.check()
        m = fold_batchnorm(model)[0]  # (onnxruntime folds what fx could not trace itself)
        _one_tensor(_run(m, x, name(k)), name(k), _THEN)
        try:
            sess = onnx.session(onnx.onnx_bytes(m, input_size), threads, spinning=False)
        except StudioError as e:
            raise StudioError(f"{name(k)} cannot be timed in onnxruntime: {e}{_THEN}") from None
        # against the model itself: the folding is checked too
        onnx.check_session(sess, model.eval(), x, 1e-4, f"{name(k)} in onnxruntime")
        calls[k] = onnx.runner(sess, f"{name(k)} in onnxruntime")
        odd = _odd_widths(m, ORT_BLOCK)
        if odd and odd[0] > odd[1] // 10 and (k != first or len(models) == 1):
            notes.append(
                f"{name(k)}: {odd[0]} of {odd[1]} convolutions have widths that are not "
                f"multiples of {ORT_BLOCK}; onnxruntime's blocked kernels run them slower "
                f"(prune with --round-to {ORT_BLOCK} or 16)"
            )
    record = {"runtime": "onnxruntime", "onnxruntime": onnx.version()}
    if notes:
        record["note"] = "; ".join(notes)
    return calls, record


BLOCK = 16  # channel blocking of oneDNN's channels-last CPU kernels that pays off
ORT_BLOCK = 8  # onnxruntime's blocked (NCHWc) CPU convolutions


def _odd_widths(model: nn.Module, block: int = BLOCK) -> tuple[int, int] | None:
    """(convolutions whose output width is not a multiple of ``block``, all of them)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    odd = sum(1 for m in convs if m.out_channels % block)
    return (odd, len(convs)) if odd else None


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


def run_input(model_info: dict, x: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory format the treated model was made for."""
    return x.to(memory_format=torch.channels_last) if model_info.get("channels_last") else x


def check_deploy_path(path, inputs=()) -> Path:
    """Refuse a deploy target before any work: it must be named *.pt2 and may replace only
    a .pt2 the studio wrote."""
    path = Path(path)
    if path.suffix.lower() != ".pt2":
        raise StudioError(f"{path}: a deploy export is a torch.export program; name it *.pt2")
    check_file(path, inputs)
    return path


def export_deploy(model: nn.Module, input_size, path, inputs=(), channels_last="auto") -> dict:
    """Write the deploy-treated model as a ``torch.export`` program (``.pt2``, dynamic
    batch), checked against the untreated model after loading it back. ``path`` may replace
    only a .pt2 the studio wrote, never one of ``inputs``."""
    path = check_deploy_path(path, inputs)
    treated, info = deploy_model(model, input_size, channels_last)
    x = run_input(info, torch.randn(2, *input_size))
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with warnings.catch_warnings(), _quiet_torch():
            warnings.simplefilter("ignore")
            program = torch.export.export(treated, (x,), dynamic_shapes=({0: batch},))
    except Exception as e:  # noqa: BLE001 - the model's code does not export
        raise StudioError(f"torch.export cannot capture this model: {_first(e)}") from None
    record = dict(info, format="pruning-studio/deploy-1", input_size=list(input_size))
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "model.pt2"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.export.save(program, str(f), extra_files={INFO: json.dumps(record)})
            back = torch.export.load(str(f)).module()
        x3 = run_input(info, torch.randn(3, *input_size))
        with torch.inference_mode():
            ref = model(x3.contiguous())
            got = back(x3)
        diff = float((got - ref).abs().max())
        if diff > 1e-4 * max(1.0, float(ref.abs().max())):
            raise StudioError(f"the exported program differs from the model by {diff:.2e}")
        check_file(path, inputs)
        atomic_write_bytes(path, f.read_bytes())
    return dict(record, path=str(path), max_abs_diff=max(diff, info["max_abs_diff"]))


class _quiet_torch:  # noqa: N801 - a context manager
    """torch.export and dynamo log whole graphs when capture fails; the studio says it in
    one line instead."""

    def __enter__(self):
        import logging

        self.loggers = [logging.getLogger(n) for n in ("torch", "torch._dynamo", "torch.export")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.CRITICAL)
        return self

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)


def written_by_studio(path: Path) -> bool:
    """A .pt2 archive holding the studio's record (read as a zip: nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/extra/" + INFO)]
            if len(names) != 1 or z.getinfo(names[0]).file_size > 1 << 20:
                return False
            d = json.loads(z.read(names[0]).decode("utf-8"))
    except (OSError, ValueError, zipfile.BadZipFile, KeyError):
        return False
    return isinstance(d, dict) and str(d.get("format", "")).startswith("pruning-studio/")
