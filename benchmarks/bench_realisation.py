"""Speed-up realisation: do the FLOPs the studio removes turn into measured speed?

resnet18, resnet50, mobilenet_v2 and vgg16_bn (224x224) pruned physically by the studio to
50% and 25% of their FLOPs (uniform ratio per group, L1 channel choice; with and without
``round_to=8``), next to the same channels only *masked* with ``torch.nn.utils.prune``
(``custom_from_mask`` on every producing conv's and BatchNorm's weights: what mask-based
tools deliver), the dense and pruned models under the deploy treatment of ``export
--deploy`` (BatchNorm folded; channels-last if it makes the dense model faster -- the same
for every variant), and the dense and pruned models exported to ONNX and run in
onnxruntime (whose default session options fold BatchNorm and pick a blocked layout).

CPU latency at batch 1 and 16, fixed threads, every variant timed once per round in turn
(rounds interleave, so drift hits all variants alike), median over rounds. Realisation =
measured speed-up / FLOPs reduction = speed-up x FLOPs ratio (1.0 is the ideal).

Weights are torchvision's random initialisation (no ImageNet weights offline): latency does
not depend on the values, and the uniform ratio makes the channel counts independent of
them too. Writes ``benchmarks/results/realisation.json``.

    python benchmarks/bench_realisation.py [--archs resnet18,...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from common import machine, save

from studio.core import auto_plan, load_model, map_structure
from studio.core.structure.counting import count_model
from studio.core.export.deploy import deploy_model, run_input
from studio.core.export.onnx import export_onnx
from studio.core.plan.surgery import apply_plan

ARCHS = ("resnet18", "resnet50", "mobilenet_v2", "vgg16_bn")
TARGETS = (0.5, 0.25)
BATCHES = (1, 16)


def masked(model: nn.Module, s, plan) -> nn.Module:
    """The original model with the plan's channels zeroed by torch.nn.utils.prune masks."""
    m = copy.deepcopy(model)
    for gid, removed in plan.groups.items():
        if not removed:
            continue
        gone = np.asarray(removed)
        for mem in s.group_index[gid].members:
            if mem.dim != "out":
                continue
            mod = m.get_submodule(mem.layer)
            rows = torch.as_tensor(mem.idx[np.isin(mem.root_idx, gone)], dtype=torch.long)
            for name in ("weight", "bias"):
                p = getattr(mod, name, None)
                if p is None or (name == "bias" and not isinstance(mod, nn.BatchNorm2d)):
                    continue
                mask = torch.ones_like(p)
                mask[rows] = 0
                if hasattr(mod, name + "_mask"):  # a layer in two groups: combine the masks
                    mask = mask * getattr(mod, name + "_mask")
                    torch_prune.remove(mod, name)
                torch_prune.custom_from_mask(mod, name, mask)
    return m


class Ort:
    """An exported model in onnxruntime, called like a module on a tensor."""

    def __init__(self, model, input_size, path: Path, threads: int):
        import onnxruntime as ort

        export_onnx(model, input_size, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # onnxruntime's pool spin-waits after each run by default, which would steal the
        # cores from whatever variant is timed next
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x):
        return self.sess.run(None, {"input": x.numpy()})[0]


def interleaved(
    variants: dict, input_size, batch: int, rounds: int, calls: int, device: str = "cpu"
) -> dict[str, float]:
    """Median ms per forward of each variant. Each round gives every variant ``calls``
    timed calls, after an untimed one when ``calls`` > 1 (caches back after the other
    variants ran; a batch of 16 runs long enough not to need it)."""
    x = torch.randn(batch, *input_size, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = {k: [] for k in variants}
    with torch.inference_mode():
        for _ in range(rounds):
            for k, f in variants.items():
                if calls > 1:
                    f(x)
                for _ in range(calls):
                    sync()
                    t0 = time.perf_counter()
                    f(x)
                    sync()
                    times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_arch(arch: str, rounds: int, threads: int, tmp: Path) -> dict:
    t0 = time.perf_counter()
    lm = load_model(arch)
    s = map_structure(lm)
    size = s.input_size
    base = s.original.flops
    models = {"dense": lm.model.eval()}
    info = {"dense": {"flops_ratio": 1.0, "params_ratio": 1.0}}
    for t in TARGETS:
        for rt in (1, 8):
            plan = auto_plan(lm, s, "l1", flops_target=t, scope="uniform", round_to=rt)
            name = f"studio {t:.0%}" + (" round_to=8" if rt == 8 else "")
            models[name] = apply_plan(lm.model, s, plan).eval()
            cost = count_model(models[name], size)
            info[name] = {
                "flops_ratio": cost.flops / base,
                "params_ratio": cost.params / s.original.params,
            }
            if rt == 1:
                models[f"masked {t:.0%}"] = masked(lm.model, s, plan).eval()
                info[f"masked {t:.0%}"] = dict(info[name])  # same channels, same "FLOPs"
    onnx = {
        k: Ort(m, size, tmp / f"{arch}-{i}.onnx", threads)
        for i, (k, m) in enumerate(models.items())
        if not k.startswith("masked")
    }
    # The deploy treatment (export --deploy), the same for the dense and the pruned models:
    # BatchNorm folded, and the memory format chosen by timing the *dense* model.
    dense_deployed, dep = deploy_model(models["dense"], size, channels_last="auto")
    fmt = "on" if dep["channels_last"] else "off"
    deployed = {"dense": dense_deployed}
    for k, m in models.items():
        if k.startswith("studio"):
            deployed[k] = deploy_model(m, size, channels_last=fmt)[0]
    deployed = {k: (lambda x, m=m: m(run_input(dep, x))) for k, m in deployed.items()}
    setup = time.perf_counter() - t0
    out = {
        "arch": arch,
        "input_size": list(size),
        "setup_s": setup,
        "macs": s.original.macs,
        "deploy": {
            "channels_last": dep["channels_last"],
            "batchnorm_folded": dep["batchnorm_folded"],
        },
        "variants": {},
    }
    for bs in BATCHES:
        lat = interleaved(
            {
                **{("torch", k): m for k, m in models.items()},
                **{("torch deploy", k): m for k, m in deployed.items()},
                **{("onnxruntime", k): m for k, m in onnx.items()},
            },
            size,
            bs,
            rounds,
            calls=5 if bs == 1 else 1,
        )
        for (engine, k), ms in lat.items():
            row = out["variants"].setdefault(
                f"{engine}: {k}", {"engine": engine, "variant": k, **info[k]}
            )
            dense = lat[(engine, "dense")]
            sp = dense / ms
            row[f"b{bs}_ms"] = ms
            row[f"b{bs}_speedup"] = sp
            row[f"b{bs}_realisation"] = sp * row["flops_ratio"]
    if torch.cuda.is_available():  # the same variants on the GPU (PyTorch, fp32)
        gpu = {k: copy.deepcopy(m).cuda() for k, m in models.items()}
        for bs in BATCHES:
            lat = interleaved(gpu, size, bs, max(rounds, 5), calls=10, device="cuda")
            for k, ms in lat.items():
                row = out["variants"].setdefault(
                    f"cuda: {k}", {"engine": "cuda", "variant": k, **info[k]}
                )
                sp = lat["dense"] / ms
                row[f"b{bs}_ms"] = ms
                row[f"b{bs}_speedup"] = sp
                row[f"b{bs}_realisation"] = sp * row["flops_ratio"]
        del gpu
        torch.cuda.empty_cache()
    out["seconds"] = time.perf_counter() - t0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    threads = torch.get_num_threads()
    res = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in a.archs.split(","):
            r = bench_arch(arch, a.rounds, threads, Path(tmp))
            res.append(r)
            for k, v in r["variants"].items():
                print(
                    f"{arch:13s} {k:36s} FLOPs {v['flops_ratio']:.3f}  "
                    f"b1 {v['b1_ms']:8.1f} ms x{v['b1_speedup']:.2f} (R {v['b1_realisation']:.2f})"
                    f"  b16 {v['b16_ms']:8.1f} ms x{v['b16_speedup']:.2f} "
                    f"(R {v['b16_realisation']:.2f})",
                    flush=True,
                )
            print(f"{arch}: {r['seconds']:.0f} s (setup {r['setup_s']:.0f} s)", flush=True)
    save(
        "realisation",
        {
            "rounds": a.rounds,
            "threads": threads,
            "batches": list(BATCHES),
            "targets": list(TARGETS),
            "rows": res,
            **machine(),
        },
    )


if __name__ == "__main__":
    main()
