"""How long mapping takes for every torchvision CNN, as a multiple of one forward pass.

For each classification CNN of torchvision (random weights drawn without initialisers, 3x224x224; Inception-v3 at
299x299; the transformers are refused and left out), in one process with 2 threads:

- forward: one batch-1 forward pass without autograd, median of 3 after a warm-up;
- map: ``StructureMap`` (groups, cost table, blocks: one traced forward), best of 2;
- open: ``map_checked`` (the map and the probe surgery), the structure cache off;
- cached: ``map_checked`` again with the map on disk (memory cache cleared), median of 2.

Goal (issue #16): map <= 10x forward for every model. As an outside reference on a few
models, Torch-Pruning 1.6 alone (``DependencyGraph.build_dependency`` + every group, no
studio fixes) in the same run.

    python benchmarks/bench_mapping.py [--only resnet50,densenet201] [--no-reference]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.core.errors import StudioError  # noqa: E402
from studio.core.plan.probe import map_checked  # noqa: E402
from studio.core.structure import cache  # noqa: E402
from studio.core.structure.depgraph import tp_all_groups  # noqa: E402
from studio.core.structure.map import StructureMap  # noqa: E402

NOT_CNN = ("vit_", "swin", "maxvit")
REFERENCE = ("resnet50", "densenet201", "mobilenet_v2", "efficientnet_b0")


def _build(name: str) -> tuple[torch.nn.Module, tuple]:
    kw = (
        {"aux_logits": False, "init_weights": False}
        if name in ("inception_v3", "googlenet")
        else {}
    )
    # Weights drawn in one pass, not by each layer's initialiser: mapping does not read
    # weights, and initialising the largest RegNet takes longer than mapping it.
    init = torch.nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, lambda t, *a, **k: t)
        model = torchvision.models.get_model(name, num_classes=1000, **kw).eval()
    finally:
        for n, f in saved.items():
            setattr(init, n, f)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.normal_(0, 0.05) if t.is_floating_point() and t.dim() > 1 else t.zero_()
        for m in model.modules():
            for attr in ("running_var", "weight"):
                t = getattr(m, attr, None)
                if isinstance(t, torch.Tensor) and t.dim() == 1:  # norms: scale 1
                    t.fill_(1.0)
    return model, (3, 299, 299) if name == "inception_v3" else (3, 224, 224)


def _time(fn, n: int, pick=statistics.median) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return pick(ts)


def measure(name: str, reference: bool) -> dict:
    model, size = _build(name)
    x = torch.zeros(1, *size)
    with torch.no_grad():
        model(x)
        fwd = _time(lambda: model(x), 3)
    cache.clear_memory()
    os.environ["PRUNING_STUDIO_CACHE"] = "off"
    t0 = time.perf_counter()
    try:
        StructureMap(model, size, name)
    except StudioError as e:  # refused, in one line: how long the refusal took
        return dict(
            model=name,
            refused=str(e).splitlines()[0],
            forward_s=fwd,
            refuse_s=time.perf_counter() - t0,
        )
    t_map = _time(lambda: StructureMap(model, size, name), 2, min)
    cache.clear_memory()
    t_open = _time(lambda: map_checked(model, size, name), 1)
    cache.clear_memory()
    os.environ["PRUNING_STUDIO_CACHE"] = CACHE
    map_checked(model, size, name)  # writes the entry

    def cached():
        cache.clear_memory()
        map_checked(model, size, name)

    t_cached = _time(cached, 2)
    s = map_checked(model, size, name)  # from the cache
    row = dict(
        model=name,
        params=sum(p.numel() for p in model.parameters()),
        layers=len(s.table.rows),
        groups=len(s.groups),
        forward_s=fwd,
        map_s=t_map,
        open_s=t_open,
        cached_s=t_cached,
        map_ratio=t_map / fwd,
        open_ratio=t_open / fwd,
    )
    if reference and name in REFERENCE:
        row["tp_s"] = _time(lambda: tp_all_groups(model, x), 1)
    return row


def main() -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--no-reference", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    names = [
        n
        for n in torchvision.models.list_models(module=torchvision.models)
        if not n.startswith(NOT_CNN)
    ]
    if a.only:
        names = [n for n in names if n in a.only.split(",")]
    StructureMap(torchvision.models.resnet18().eval(), (3, 64, 64))  # imports, first calls
    rows = []
    for name in names:
        r = measure(name, not a.no_reference)
        rows.append(r)
        if "refused" in r:
            print(f"{name:22s} refused in {r['refuse_s']:.2f} s: {r['refused'][:90]}", flush=True)
            continue
        ref = f"  Torch-Pruning alone {r['tp_s']:.2f} s" if "tp_s" in r else ""
        print(
            f"{name:22s} forward {r['forward_s'] * 1e3:7.1f} ms  map {r['map_s']:6.2f} s "
            f"({r['map_ratio']:4.1f}x)  open {r['open_s']:6.2f} s  cached {r['cached_s'] * 1e3:5.0f} ms"
            f"{ref}",
            flush=True,
        )
        gc.collect()
    out = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    if not a.only:
        (ROOT / "benchmarks" / "results" / "mapping.json").write_text(json.dumps(out, indent=1))
    return rows


CACHE = tempfile.mkdtemp(prefix="bench-structure-cache-")

if __name__ == "__main__":
    main()
