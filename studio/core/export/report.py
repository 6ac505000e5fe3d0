"""The stakeholder report: one self-contained HTML page (charts as inline SVG, hover a bar
or a point for its value) with a headline -- size, FLOPs, measured speed-up with its spread,
top-1/top-5 change -- then the numbers, before/after widths, training curves, the method
and recipe, and the environment the numbers were measured in.

One number format throughout: counts as ``11.17 M``, changes as ``−50.0 %``, accuracy as
a percentage with its change in points, ratios as ``1.62×``. Nothing unknown is printed as
``None``: a missing measurement says what would produce it."""

from __future__ import annotations

import html
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.export import RUNTIME_WORDS
from studio.core.io import atomic_write_text
from studio.core.outputs import check_file

MINUS = "−"


# -- formats ---------------------------------------------------------------------------
def count(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def change(new: float, old: float) -> str:
    if not old:
        return "—"
    return f"{(new / old - 1) * 100:+.1f} %".replace("-", MINUS)


def acc(v: float) -> str:
    return f"{v * 100:.2f} %"


def points(new: float, old: float) -> str:
    return f"{(new - old) * 100:+.2f} pp".replace("-", MINUS)


def ratio(v: float) -> str:
    return f"{v:.2f}×"


def megabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def plan_steps(plans: list[dict]) -> list[str]:
    """One line per applied plan, for reports."""
    return [
        f"step {k}: {sum(len(v) for v in p['groups'].values())} channels in "
        f"{len(p['groups'])} groups, blocks dropped: "
        f"{', '.join(p.get('drop_blocks', [])) or 'none'} "
        f"({p.get('meta', {}).get('criterion', 'manual')})"
        for k, p in enumerate(plans, 1)
    ]


def model_bytes(model) -> int:
    """Bytes of the model's parameters and buffers (what its saved weights weigh)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def environment(device: str = "cpu") -> dict[str, str]:
    """Where the numbers were measured: CPU/GPU, threads, versions."""
    import torch

    from studio.core.train.evaluate import cpu_name

    cpu = cpu_name()
    env = {
        "CPU": f"{cpu}, {os.cpu_count()} logical cores",
        "threads": str(torch.get_num_threads()),
        "GPU": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "operating system": platform.platform(),
        "Python": platform.python_version(),
        "torch": torch.__version__,
    }
    from importlib import metadata

    for pkg in ("torchvision", "torch-pruning", "timm", "pruning-studio"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    if device != "cpu":
        env["measured on"] = device
    return env


# -- inline SVG charts ------------------------------------------------------------------
def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def svg_widths(widths: list[tuple[str, int, int]], width: int = 1000, height: int = 240) -> str:
    """Per-layer output channels, original (grey) behind pruned (blue); each bar's title
    names the layer and both widths (a browser shows it on hover)."""
    if not widths:
        return ""
    n, top = len(widths), max(max(a for _, a, _ in widths), 1)
    left, bottom, right, top_pad = 48, 22, 8, 10
    pw, ph = width - left - right, height - bottom - top_pad
    step = pw / n
    bars = []
    for i, (name, a, b) in enumerate(widths):
        x = left + i * step
        ha, hb = ph * a / top, ph * b / top
        tip = f"{name}: {a} → {b or 'removed'} channels"
        bars.append(
            f"<g><title>{_esc(tip)}</title>"
            f'<rect x="{x + step * 0.05:.1f}" y="{top_pad + ph - ha:.1f}" '
            f'width="{step * 0.9:.1f}" height="{ha:.1f}" fill="#cdcdcd"/>'
            f'<rect x="{x + step * 0.2:.1f}" y="{top_pad + ph - hb:.1f}" '
            f'width="{step * 0.6:.1f}" height="{hb:.1f}" fill="#3478c6"/></g>'
        )
    ticks = "".join(
        f'<text x="{left - 4}" y="{top_pad + ph - ph * f + 4:.1f}" text-anchor="end">'
        f"{int(top * f)}</text>"
        f'<line x1="{left}" x2="{width - right}" y1="{top_pad + ph - ph * f:.1f}" '
        f'y2="{top_pad + ph - ph * f:.1f}" stroke="#eee"/>'
        for f in (0, 0.25, 0.5, 0.75, 1)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" font-size="11" font-family="sans-serif" fill="#444">{ticks}'
        f"{''.join(bars)}"
        f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">layers in execution '
        f"order (hover a bar for its name) — grey: original, blue: pruned</text></svg>"
    )


def svg_lines(
    series: list[tuple[str, list[float], list[float], str]],
    x_label: str,
    y_label: str,
    width: int = 480,
    height: int = 240,
    percent: bool = True,
) -> str:
    """Lines with dots; each dot's title gives its value. ``series``: (name, xs, ys,
    colour). The y axis fits the data with padding, the x axis counts whole numbers."""
    pts = [(x, y) for _, xs, ys, _ in series for x, y in zip(xs, ys)]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    pad = max((y1 - y0) * 0.1, 1e-3)
    y0, y1 = y0 - pad, y1 + pad
    if percent:  # accuracies live in [0, 1]
        y0, y1 = max(y0, 0.0), min(y1, 1.0)
    x1 = max(x1, x0 + 1)
    left, bottom, right, top_pad = 56, 34, 10, 10
    pw, ph = width - left - right, height - bottom - top_pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top_pad + ph - (y - y0) / (y1 - y0) * ph

    def fmt(y):
        return acc(y) if percent else f"{y:.4g}"

    out = []
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            f'stroke="#eee"/><text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">'
            f"{_esc(fmt(y))}</text>"
        )
    xs_all = sorted({int(round(p[0])) for p in pts})
    stride = max(1, len(xs_all) // 10)
    for x in xs_all[::stride]:
        out.append(f'<text x="{sx(x):.1f}" y="{top_pad + ph + 14}" text-anchor="middle">{x}</text>')
    legend = []
    for i, (name, xs, ys, colour) in enumerate(series):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in zip(xs, ys):
            out.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                f"<title>{_esc(name)}, {_esc(x_label)} {x:g}: {_esc(fmt(y))}</title></circle>"
            )
        legend.append(
            f'<rect x="{left + 8}" y="{top_pad + 4 + 14 * i}" width="10" height="3" '
            f'fill="{colour}"/><text x="{left + 22}" y="{top_pad + 9 + 14 * i}">'
            f"{_esc(name)}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" font-size="11" font-family="sans-serif" fill="#444">'
        f"{''.join(out)}{''.join(legend)}"
        f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">{_esc(x_label)}</text>'
        f'<text x="12" y="{top_pad + ph / 2}" transform="rotate(-90 12 {top_pad + ph / 2})" '
        f'text-anchor="middle">{_esc(y_label)}</text></svg>'
    )


# -- the report ----------------------------------------------------------------------------
@dataclass
class ReportData:
    """What a report says; every field but the title and costs may be empty."""

    title: str
    model: dict[str, str]  # name, architecture, source, input size, data
    before: dict  # params, flops, macs, bytes
    after: dict
    accuracy: dict | None = None  # {"before": {top1, top5}, "after": {...}, "note": str}
    latency: dict | None = None  # compare_latency's result for the reported model
    steps: list[str] = field(default_factory=list)  # the method, step by step
    recipe: dict | None = None
    widths: list[tuple[str, int, int]] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)  # {"label", "epochs": [epoch events]}
    images: dict[str, bytes] = field(default_factory=dict)  # extra PNGs (window charts)
    environment: dict[str, str] = field(default_factory=dict)


def headline(d: ReportData) -> list[tuple[str, str, str]]:
    """(what, value, detail) -- the lines a stakeholder reads first."""
    b, a = d.before, d.after
    out = []
    if b.get("bytes") and a.get("bytes"):
        out.append(
            (
                "Model size",
                change(a["bytes"], b["bytes"]),
                f"{megabytes(b['bytes'])} → {megabytes(a['bytes'])}",
            )
        )
    out.append(
        (
            "Parameters",
            change(a["params"], b["params"]),
            f"{count(b['params'])} → {count(a['params'])}",
        )
    )
    out.append(
        (
            "FLOPs",
            change(a["flops"], b["flops"]),
            f"{count(b['flops'])} → {count(a['flops'])} per image "
            f"({ratio(b['flops'] / a['flops']) if a['flops'] else '—'} fewer)",
        )
    )
    lat = d.latency
    if lat and lat.get("speedup"):
        bs = min(lat["speedup"], key=int)
        q1, q3 = lat.get("speedup_iqr", {}).get(bs, (lat["speedup"][bs],) * 2)
        o = lat["original"]["batch"][bs]["median_ms"]
        p = lat["pruned"]["batch"][bs]["median_ms"]
        detail = (
            f"{o:.2f} ms → {p:.2f} ms at batch {bs} (IQR of the ratio {q1:.2f}–{q3:.2f}; "
            f"{lat['pruned'].get('device', 'cpu')}, {lat['pruned'].get('threads', '?')} threads, "
            f"{RUNTIME_WORDS.get(lat.get('runtime', 'torch'), '?')})"
        )
        if lat.get("warnings"):
            n = len(lat["warnings"])
            detail += f" — caution: {n} timing warning{'s' if n > 1 else ''} below"
        out.append(("Measured speed-up", ratio(lat["speedup"][bs]), detail))
    else:
        out.append(
            (
                "Measured speed-up",
                "not measured",
                "Model ▸ Measure latency in the window measures it",
            )
        )
    ac = d.accuracy
    if ac and ac.get("before") and ac.get("after"):
        vs = f" (vs {ac['versus']})" if ac.get("versus") else ""
        for k, name in (("top1", "Top-1"), ("top5", "Top-5")):
            if k in ac["before"] and k in ac["after"]:
                o, n = ac["before"][k], ac["after"][k]
                out.append((f"{name} accuracy{vs}", points(n, o), f"{acc(o)} → {acc(n)}"))
    else:
        out.append(("Accuracy", "not evaluated", "Evaluate (with a data source) measures it"))
    return out


def _num(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "unknown"


def _table(rows, head=None, cls: str = "") -> str:
    h = "".join(f"<th>{_esc(c)}</th>" for c in head) if head else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}>{'<tr>' + h + '</tr>' if h else ''}{body}</table>"


def _curves(runs: list[dict]) -> str:
    figs = []
    for run in runs:
        ep = [e for e in run.get("epochs", []) if "val_top1" in e]
        if not ep:
            continue
        xs = [e["epoch"] for e in ep]
        series = [("val top-1", xs, [e["val_top1"] for e in ep], "#2e7d32")]
        if all("val_top5" in e for e in ep):
            series.append(("val top-5", xs, [e["val_top5"] for e in ep], "#81c784"))
        if all("train_top1" in e for e in ep):
            series.append(("train top-1", xs, [e["train_top1"] for e in ep], "#999999"))
        label = _esc(run.get("label", "fine-tuning"))
        figs.append(
            f"<figure>{svg_lines(series, 'epoch', 'accuracy')}"
            f"<figcaption>{label}: accuracy</figcaption></figure>"
        )
        loss = [
            (name, xs, [e[k] for e in ep], colour)
            for name, k, colour in (
                ("train loss", "train_loss", "#3478c6"),
                ("val loss", "val_loss", "#ef8c20"),
            )
            if all(isinstance(e.get(k), (int, float)) for e in ep)
        ]
        if loss:
            figs.append(
                f"<figure>{svg_lines(loss, 'epoch', 'loss', percent=False)}"
                f"<figcaption>{label}: loss</figcaption></figure>"
            )
    return "".join(figs)


def render_html(d: ReportData) -> str:
    import base64

    cards = [
        f"<td class='card' align='left'><div class='what'>{_esc(w)}</div>"
        f"<div class='value'>{_esc(v)}</div><div class='detail'>{_esc(t)}</div></td>"
        for w, v, t in headline(d)
    ]
    head = "".join(f"<tr>{''.join(cards[i : i + 3])}</tr>" for i in range(0, len(cards), 3))
    b, a = d.before, d.after
    cost_rows = [
        (name, count(b[k]), count(a[k]), change(a[k], b[k]))
        for k, name in (("params", "parameters"), ("flops", "FLOPs"), ("macs", "MACs"))
        if k in b and k in a
    ]
    if b.get("bytes") and a.get("bytes"):
        cost_rows.append(
            ("size", megabytes(b["bytes"]), megabytes(a["bytes"]), change(a["bytes"], b["bytes"]))
        )
    ac = d.accuracy or {}
    for k, name in (("top1", "top-1"), ("top5", "top-5")):
        o, n = (ac.get("before") or {}).get(k), (ac.get("after") or {}).get(k)
        if isinstance(o, float) and isinstance(n, float):
            cost_rows.append((name, acc(o), acc(n), points(n, o)))
    lat = d.latency or {}
    for bs in sorted(lat.get("speedup", {}), key=int):
        o, p = lat["original"]["batch"][bs], lat["pruned"]["batch"][bs]
        q1, q3 = lat.get("speedup_iqr", {}).get(bs, (lat["speedup"][bs],) * 2)
        cost_rows.append(
            (
                f"latency, batch {bs}",
                f"{o['median_ms']:.2f} ms (IQR {o['p25_ms']:.2f}–{o['p75_ms']:.2f})",
                f"{p['median_ms']:.2f} ms (IQR {p['p25_ms']:.2f}–{p['p75_ms']:.2f})",
                f"speed-up {ratio(lat['speedup'][bs])} (IQR {q1:.2f}–{q3:.2f}); "
                f"{lat['realisation'][bs]:.0%} of the FLOPs ratio",
            )
        )
    notes = []
    if ac.get("note"):
        notes.append(f"Accuracy: {ac['note']}")
    if lat.get("warnings"):
        notes += [f"Latency: {w}" for w in lat["warnings"]]
    treatment = lat.get("treatment") or {}
    if treatment.get("note"):
        notes.append(f"Latency: {treatment['note']}")
    if "channels_last" in treatment:
        notes.append(
            "Latency: channels-last memory format "
            + ("on" if treatment["channels_last"] else "off")
            + (
                " (as asked)"
                if treatment.get("channels_last_chosen") == "forced"
                else " (the faster for the original)"
            )
        )
    if lat:
        notes.append(
            f"Latency: both models timed in "
            f"{RUNTIME_WORDS.get(lat.get('runtime', 'torch'), '?')}, interleaved in "
            f"{lat.get('rounds', '?')} rounds; "
            f"median and quartiles of the per-round times; speed-up = median of the per-round "
            f"ratios; load average {_num(lat.get('load_average'))} on {lat.get('cpus', '?')} CPUs."
        )
    facts = _table([(f"<b>{_esc(k)}</b>", _esc(v)) for k, v in d.model.items()], cls="facts")
    steps = "".join(f"<li>{_esc(s)}</li>" for s in d.steps) or "<li>no step applied</li>"
    recipe = (
        f"<details><summary>Recipe (replay with <code>pruning-studio run --recipe "
        f"FILE</code>)</summary><pre>{_esc(json.dumps(d.recipe, indent=1))}</pre></details>"
        if d.recipe
        else ""
    )
    widths = svg_widths(d.widths)
    wtable = _table(
        [(_esc(n), str(o), str(p) if p else "removed") for n, o, p in d.widths],
        ("layer", "original", "pruned"),
    )
    imgs = "".join(
        f"<figure><img alt='{_esc(k)}' src='data:image/png;base64,"
        f"{base64.b64encode(v).decode()}'><figcaption>{_esc(k)}</figcaption></figure>"
        for k, v in d.images.items()
    )
    curves = _curves(d.runs) or "<p class='muted'>No fine-tuning in this session.</p>"
    env = _table([(f"<b>{_esc(k)}</b>", _esc(v)) for k, v in d.environment.items()], cls="facts")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="generator" content="pruning-studio"><title>{_esc(d.title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1040px;margin:2em auto;color:#222;
padding:0 1em}}h1{{margin-bottom:.2em}}table{{border-collapse:collapse;margin:.6em 0}}
td,th{{border:1px solid #ddd;padding:4px 10px;text-align:right}}td:first-child,
th:first-child,.facts td{{text-align:left}}th{{background:#f3f3f3}}
.cards{{border-collapse:separate;border-spacing:8px;width:100%;margin:.5em -8px}}
.cards td.card{{border:1px solid #ddd;border-radius:6px;padding:8px 12px;text-align:left;
vertical-align:top;width:33%}}.what{{color:#666;font-size:.9em}}.value{{font-size:1.6em;
font-weight:600}}.detail{{color:#555;font-size:.85em}}figure{{display:inline-block;
margin:0 1em 1em 0}}img{{max-width:100%;border:1px solid #ddd}}.muted,small{{color:#777}}
details{{margin:.5em 0}}pre{{background:#f7f7f7;padding:8px;overflow:auto;font-size:.85em}}
</style></head><body><h1>{_esc(d.title)}</h1><table class="cards">{head}</table>
<h2>Model</h2>{facts}
<h2>Before and after</h2>{_table(cost_rows, ("", "original", "pruned", "change"))}
{"".join(f"<p class='muted'>{_esc(n)}</p>" for n in notes)}
<h2>Channel widths</h2>{widths}
<details><summary>Per-layer table</summary>{wtable}</details>
<h2>Training curves</h2>{curves}{imgs}
<h2>Method</h2><ol>{steps}</ol>{recipe}
<h2>Environment</h2>{env}
<p><small>Generated by Pruning Studio. FLOPs count one multiply-accumulate as 2 FLOPs;
sizes are the parameters and buffers in their stored precision.</small></p></body></html>"""


def html_report(path, data: ReportData) -> Path:
    """Write the report as one self-contained HTML file (never over a file the studio did
    not write)."""
    path = Path(path)
    check_file(path)
    atomic_write_text(path, render_html(data))
    return path
