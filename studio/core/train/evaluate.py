"""Honest evaluation: top-1/top-5/loss on the validation split, and measured latency."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch
from torch import nn

from studio.core.jobs import CancelToken, Events, progress


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` prefers cuda, then mps, then cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def topk_correct(logits: torch.Tensor, y: torch.Tensor, ks=(1, 5)) -> list[torch.Tensor]:
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hit = pred.eq(y[:, None])
    return [hit[:, :min(k, maxk)].any(1).sum() for k in ks]


def evaluate(model: nn.Module, data_loader, device="cpu", cancel: CancelToken | None = None,
             max_batches: int | None = None) -> Events:
    """Yields progress; returns ``{"top1", "top5", "loss", "n"}`` (fractions, mean loss)."""
    device = torch.device(device)
    model.eval().to(device)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    c1 = c5 = loss = torch.zeros((), device=device, dtype=torch.float64)
    n = 0
    total = len(data_loader) if max_batches is None else min(max_batches, len(data_loader))
    # (a list of (x, y) batches works as well as a DataLoader)
    with torch.inference_mode():
        for i, (x, y) in enumerate(data_loader):
            if i >= total:
                break
            if cancel is not None:
                cancel.check()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            a, b = topk_correct(out, y)
            c1, c5 = c1 + a, c5 + b
            loss = loss + loss_fn(out.float(), y)
            n += len(y)
            yield progress(i + 1, total, "evaluate")
    c1, c5, loss = _all_reduce_sum(c1, c5, loss)
    n = int(_all_reduce_sum(torch.tensor(float(n), device=device))[0])
    return {"top1": float(c1) / max(n, 1), "top5": float(c5) / max(n, 1),
            "loss": float(loss) / max(n, 1), "n": n}


def _all_reduce_sum(*ts):
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        out = []
        for t in ts:
            t = t.clone().to(torch.float64)
            dist.all_reduce(t)
            out.append(t)
        return out
    return list(ts)


@contextmanager
def _threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def measure_latency(model: nn.Module, input_size, batch_sizes=(1, 16), device="cpu",
                    threads: int | None = None, warmup: int = 5, repeats: int = 20,
                    min_seconds: float = 0.0) -> dict:
    """Median forward time in ms per batch size (CPU: fixed thread count; CUDA: synchronized).

    Returns ``{"device", "threads", "batch": {bs: {"median_ms", "p90_ms", "per_image_ms"}}}``.
    """
    device = torch.device(device)
    model = model.eval().to(device)
    res = {"device": str(device), "threads": threads or torch.get_num_threads(), "batch": {}}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with _threads(threads), torch.inference_mode():
        for bs in batch_sizes:
            x = torch.randn(bs, *input_size, device=device)
            for _ in range(warmup):
                model(x)
            sync()
            times = []
            t_end = time.perf_counter() + min_seconds
            while len(times) < repeats or time.perf_counter() < t_end:
                t0 = time.perf_counter()
                model(x)
                sync()
                times.append((time.perf_counter() - t0) * 1e3)
            times.sort()
            med = statistics.median(times)
            res["batch"][str(bs)] = {"median_ms": med,
                                     "p90_ms": times[int(0.9 * (len(times) - 1))],
                                     "per_image_ms": med / bs, "repeats": len(times)}
    return res


def compare_latency(original: nn.Module, pruned: nn.Module, input_size, flops_ratio: float,
                    **kw) -> dict:
    """Latency of both models, measured alternately (same conditions), with speed-up and
    *realisation* = measured speed-up / FLOPs reduction (1.0 is the physical ideal)."""
    a = measure_latency(original, input_size, **kw)
    b = measure_latency(pruned, input_size, **kw)
    a2 = measure_latency(original, input_size, **kw)  # bracket drift on shared machines
    out = {"original": a, "pruned": b, "flops_ratio": flops_ratio, "speedup": {},
           "realisation": {}}
    for bs in b["batch"]:
        base = min(a["batch"][bs]["median_ms"], a2["batch"][bs]["median_ms"])
        sp = base / b["batch"][bs]["median_ms"]
        out["original"]["batch"][bs]["median_ms"] = base
        out["speedup"][bs] = sp
        out["realisation"][bs] = sp * flops_ratio  # speed-up / (1 / flops_ratio)
    return out
