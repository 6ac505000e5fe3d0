"""Exports: ONNX (verified in onnxruntime), a reusable recipe, and a self-contained HTML
report for stakeholders (charts embedded as PNGs)."""

from __future__ import annotations

import base64
import html
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio.core.errors import StudioError
from studio.core.io import atomic_write_bytes, atomic_write_text

RECIPE_FORMAT = "pruning-studio/recipe"


def export_onnx(model: nn.Module, input_size, path, atol: float = 1e-4) -> dict:
    """Export to ONNX (dynamic batch), load it in onnxruntime and compare with PyTorch.
    Returns ``{"path", "max_abs_diff", "opset", "hint"}`` (``hint``: ``width_hint``, or
    None); raises if outputs disagree."""
    path = Path(path)
    model = model.eval()
    x = torch.randn(2, *input_size)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, torch.zeros(1, *input_size), str(f), dynamo=False,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=17)
        import onnxruntime as ort

        sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            ref = model(x).numpy()
        diff = float(np.abs(got - ref).max())
        if diff > atol * max(1.0, float(np.abs(ref).max())):
            raise StudioError(f"ONNX export differs from PyTorch by {diff:.2e}; not saved")
        atomic_write_bytes(path, f.read_bytes())
    return {"path": str(path), "max_abs_diff": diff, "opset": 17, "hint": width_hint(model)}


def width_hint(model: nn.Module, multiple: int = 8) -> str | None:
    """A one-line hint when many conv widths are not multiples of ``multiple``:
    onnxruntime's CPU convolutions work on blocks of 8/16 channels, and such a model can
    run slower than the unpruned one there (docs/benchmarks.md, realisation)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    odd = sum(1 for m in convs if m.out_channels % multiple)
    if not convs or odd <= len(convs) // 10:
        return None
    return (f"{odd} of {len(convs)} conv layers have widths that are not multiples of "
            f"{multiple}; onnxruntime may run this model slower than expected. Prune with "
            f"round_to={multiple} (CLI --round-to {multiple}) for deployment.")


def plan_steps(plans: list[dict]) -> list[str]:
    """One line per applied plan, for reports."""
    return [f"step {k}: {sum(len(v) for v in p['groups'].values())} channels in "
            f"{len(p['groups'])} groups, blocks dropped: "
            f"{', '.join(p.get('drop_blocks', [])) or 'none'} "
            f"({p.get('meta', {}).get('criterion', 'manual')})"
            for k, p in enumerate(plans, 1)]


def make_recipe(source: dict, plans: list[dict], *, data: str | None = None,
                finetune: dict | None = None, pipeline: dict | None = None,
                target: dict | None = None, output: str = "out/recipe-run") -> dict:
    """A recipe: what to load, the plans to apply in order (or a target and a pipeline),
    how to fine-tune, where to write. ``pruning-studio run --recipe`` executes it."""
    rec = {"format": RECIPE_FORMAT, "version": 1, "model": source, "data": data,
           "plans": plans, "finetune": finetune, "outputs": {"dir": output}}
    if pipeline:
        rec["pipeline"] = pipeline
    if target:
        rec["target"] = target
    return rec


def save_recipe(recipe: dict, path) -> None:
    atomic_write_text(Path(path), json.dumps(recipe, indent=1))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def html_report(path, *, title: str, summary: dict, metrics: list[tuple[str, object, object]],
                images: dict[str, bytes], plan_summary: list[str],
                widths: list[tuple[str, int, int]] | None = None) -> Path:
    """One self-contained HTML file: metrics table (original / pruned / change), plan
    summary, per-layer widths and the charts as embedded PNGs."""
    rows = []
    for name, a, b in metrics:
        change = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
            change = f"{b - a:+.4f}" if "top" in name.lower() else f"x{b / a:.3f}"
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{_fmt(a)}</td><td>{_fmt(b)}</td>"
                    f"<td>{change}</td></tr>")
    imgs = "".join(
        f"<figure><img alt='{html.escape(k)}' src='data:image/png;base64,"
        f"{base64.b64encode(v).decode()}'><figcaption>{html.escape(k)}</figcaption></figure>"
        for k, v in images.items())
    wrows = "".join(f"<tr><td>{html.escape(n)}</td><td>{a}</td><td>{b if b else 'removed'}"
                    f"</td></tr>" for n, a, b in (widths or []))
    facts = "".join(f"<li><b>{html.escape(k)}</b>: {_fmt(v)}</li>" for k, v in summary.items())
    plan_items = "".join(f"<li>{html.escape(p)}</li>" for p in plan_summary)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;
text-align:right}}td:first-child,th:first-child{{text-align:left}}th{{background:#f0f0f0}}
figure{{display:inline-block;margin:0 1em 1em 0}}img{{max-width:520px;border:1px solid #ddd}}
</style></head><body><h1>{html.escape(title)}</h1><ul>{facts}</ul>
<h2>Results</h2><table><tr><th>metric</th><th>original</th><th>pruned</th><th>change</th></tr>
{''.join(rows)}</table><h2>Plan</h2><ul>{plan_items}</ul><h2>Charts</h2>{imgs}
<h2>Per-layer widths</h2><table><tr><th>layer</th><th>original</th><th>pruned</th></tr>
{wrows}</table><p><small>Generated by Pruning Studio. FLOPs count one multiply-accumulate as
2 FLOPs.</small></p></body></html>"""
    path = Path(path)
    atomic_write_text(path, doc)
    return path
