"""Honest evaluation: top-1/top-5/loss on the validation split, and measured latency."""

from __future__ import annotations

import copy
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from studio.core.jobs import CancelToken, Events, progress


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` prefers cuda, then mps, then cpu. A device that is not there is a one-line
    ``StudioError``."""
    from studio.core.errors import StudioError

    if name != "auto":
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise StudioError(f"unknown device '{name}' (auto, cpu, cuda, cuda:N or mps)") from None
        if dev.type == "cuda" and (
            not torch.cuda.is_available()
            or (dev.index is not None and dev.index >= torch.cuda.device_count())
        ):
            raise StudioError(
                f"device '{name}' is not available here (no CUDA GPU"
                f"{'' if not torch.cuda.is_available() else ' with that index'})"
            )
        if dev.type == "mps" and not (
            getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        ):
            raise StudioError(f"device '{name}' is not available here")
        if dev.type not in ("cpu", "cuda", "mps"):
            raise StudioError(f"device '{name}' is not supported (auto, cpu, cuda or mps)")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def topk_correct(logits: torch.Tensor, y: torch.Tensor, ks=(1, 5)) -> list[torch.Tensor]:
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hit = pred.eq(y[:, None])
    return [hit[:, : min(k, maxk)].any(1).sum() for k in ks]


def evaluate(
    model: nn.Module,
    data_loader,
    device="cpu",
    cancel: CancelToken | None = None,
    max_batches: int | None = None,
) -> Events:
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
    return {
        "top1": float(c1) / max(n, 1),
        "top5": float(c5) / max(n, 1),
        "loss": float(loss) / max(n, 1),
        "n": n,
    }


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


def _timing_calls(
    models: dict, input_size, runtime: str, device: torch.device, cancel=None, layout="auto"
):
    """The models as functions of the input under ``runtime``, the record of the
    treatment, and the device they run on: ``device`` for torch; the CPU for the deploy and
    onnxruntime runtimes (CPU treatments; a model on a GPU is copied, never moved)."""
    from studio.core.export.deploy import timing_calls

    if runtime == "torch":
        models = {k: m.eval().to(device) for k, m in models.items()}
    else:
        device = torch.device("cpu")
        models = {k: _on_cpu(m) for k, m in models.items()}
    calls, record = timing_calls(
        models, input_size, runtime, torch.get_num_threads(), cancel, layout
    )
    return calls, record, device


def _on_cpu(model: nn.Module) -> nn.Module:
    p = next(iter(model.parameters()), None)
    if p is None or p.device.type == "cpu":
        return model
    return copy.deepcopy(model).cpu()


def measure_latency(
    model: nn.Module,
    input_size,
    batch_sizes=(1, 16),
    device="cpu",
    threads: int | None = None,
    warmup: int = 5,
    repeats: int = 20,
    min_seconds: float = 0.0,
    runtime: str = "torch",
    channels_last: str = "auto",
) -> dict:
    """Median forward time in ms per batch size (CPU: fixed thread count; CUDA: synchronized)
    under ``runtime`` (see ``export.deploy.timing_calls``).

    Returns ``{"device", "threads", "runtime", "treatment", "batch": {bs: {"median_ms",
    "p90_ms", "per_image_ms"}}}``.
    """
    with _threads(threads):
        calls, treatment, device = _timing_calls(
            {"model": model}, input_size, runtime, torch.device(device), layout=channels_last
        )
    res = {"device": str(device), "threads": threads or torch.get_num_threads(), "batch": {}}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = calls["model"]
    res["runtime"], res["treatment"] = runtime, treatment
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
            res["batch"][str(bs)] = {
                "median_ms": med,
                "p90_ms": times[int(0.9 * (len(times) - 1))],
                "per_image_ms": med / bs,
                "repeats": len(times),
            }
    return res


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def _load() -> tuple[float | None, int]:
    import os

    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        load = None
    return load, os.cpu_count() or 1


def _allowed_cpus() -> list[int] | None:
    """The CPUs this process may run on (a container's cpuset, taskset), where known."""
    import os

    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _cpu_times(cpus: list[int] | None = None) -> tuple[float, float, float] | None:
    """(CPU seconds all programs were busy on ``cpus`` (all CPUs if None), of which the
    hypervisor stole, this process's own), from /proc/stat and os.times(); None where there
    is no /proc/stat."""
    import os

    try:
        with open("/proc/stat") as f:
            rows = [line.split() for line in f if line.startswith("cpu")]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    names = {"cpu"} if cpus is None else {f"cpu{n}" for n in cpus}
    rows = [r for r in rows if r and r[0] in names and len(r) >= 9]
    if not rows:
        return None
    busy = steal = 0
    for r in rows:
        user, nice, system, _idle, _iowait, irq, softirq, st = (int(v) for v in r[1:9])
        busy += user + nice + system + irq + softirq + st
        steal += st
    own = os.times()
    return busy / tick, steal / tick, own.user + own.system


def _wall() -> float:
    return time.perf_counter()


OTHERS_WARN = 0.2  # other programs' (or the hypervisor's) share of the CPUs while timing


def _others_share(
    before, after, seconds: float, cpus: int, threads: int | None = None
) -> tuple[float, float] | None:
    """Between two ``_cpu_times`` readings ``seconds`` apart: the share of the CPU time our
    ``threads`` needed that other programs took (their work on the cores our threads left
    idle does not count), and the share of all ``cpus`` the hypervisor stole."""
    if before is None or after is None or seconds <= 0:
        return None
    busy, steal, own = (a - b for a, b in zip(after, before))
    threads = min(threads or cpus, cpus)
    others = max(0.0, busy - steal - own - (cpus - threads) * seconds)
    return others / (threads * seconds), max(0.0, steal) / (cpus * seconds)


def _quantiles(v: list[float]) -> tuple[float, float, float]:
    s = sorted(v)

    def q(f):
        x = f * (len(s) - 1)
        lo, hi = int(x), min(int(x) + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (x - lo)

    return q(0.25), q(0.5), q(0.75)


SPREAD_WARN = 0.15  # IQR over median above this: the numbers are not trustworthy


def compare_latency(
    original: nn.Module,
    pruned: nn.Module,
    input_size,
    flops_ratio: float,
    batch_sizes=(1, 16),
    device="cpu",
    threads: int | None = None,
    rounds: int = 9,
    round_seconds: float = 0.08,
    warmup: int = 3,
    cancel: CancelToken | None = None,
    runtime: str = "torch",
    channels_last: str = "auto",
) -> dict:
    """Latency of both models measured *interleaved*: in each of ``rounds`` rounds the two
    models run back to back (in alternating order) for about ``round_seconds`` each, so a
    busy machine slows both alike. Reports per model the median and the quartiles of the
    per-round times, the speed-up (median of the per-round ratios, with its quartiles) and
    the *realisation* = speed-up / FLOPs reduction (1.0 is the physical ideal), the thread
    count and the load, and warnings when the spread is large or the machine busy.
    ``runtime``: both models get the same treatment before they are timed (``torch``: none;
    ``deploy``, ``onnxruntime``: see ``export.deploy.timing_calls``; on the CPU)."""
    with _threads(threads):
        models, treatment, device = _timing_calls(
            {"original": original, "pruned": pruned},
            input_size,
            runtime,
            torch.device(device),
            cancel,
            channels_last,
        )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    load_before, cpus = _load()
    allowed = _allowed_cpus()
    cpu_before, t_before = _cpu_times(allowed), _wall()
    n_threads = threads or torch.get_num_threads()
    out = {
        "flops_ratio": flops_ratio,
        "speedup": {},
        "speedup_iqr": {},
        "realisation": {},
        "rounds": rounds,
        "warnings": [],
    }
    for key in models:
        out[key] = {"device": str(device), "threads": n_threads, "batch": {}}
    out["runtime"], out["treatment"] = runtime, treatment
    with _threads(threads), torch.inference_mode():
        for bs in batch_sizes:
            x = torch.randn(bs, *input_size, device=device)
            reps = {}
            for key, m in models.items():  # warm up, and size a round
                for _ in range(warmup):
                    m(x)
                sync()
                t0 = time.perf_counter()
                m(x)
                sync()
                reps[key] = max(1, int(round_seconds / max(time.perf_counter() - t0, 1e-6)))
            times = {k: [] for k in models}
            for r in range(rounds):
                order = list(models) if r % 2 == 0 else list(models)[::-1]
                for key in order:
                    if cancel is not None:
                        cancel.check()
                    m = models[key]
                    t0 = time.perf_counter()
                    for _ in range(reps[key]):
                        m(x)
                    sync()
                    times[key].append((time.perf_counter() - t0) * 1e3 / reps[key])
            for key in models:
                q1, med, q3 = _quantiles(times[key])
                out[key]["batch"][str(bs)] = {
                    "median_ms": med,
                    "p25_ms": q1,
                    "p75_ms": q3,
                    "per_image_ms": med / bs,
                    "repeats": rounds * reps[key],
                }
                if med > 0 and (q3 - q1) / med > SPREAD_WARN:
                    out["warnings"].append(
                        f"{key} at batch {bs}: times spread {(q3 - q1) / med:.0%} around the "
                        f"median (another program is using the machine?)"
                    )
            ratios = [a / b for a, b in zip(times["original"], times["pruned"])]
            r1, sp, r3 = _quantiles(ratios)
            out["speedup"][str(bs)] = sp
            out["speedup_iqr"][str(bs)] = [r1, r3]
            out["realisation"][str(bs)] = sp * flops_ratio
    load_after, _ = _load()
    out["load_average"] = load_after
    out["cpus"] = cpus
    ncpu = len(allowed) if allowed else cpus
    shares = _others_share(cpu_before, _cpu_times(allowed), _wall() - t_before, ncpu, n_threads)
    if device.type == "cpu" and shares is not None:
        out["others_cpu_share"], out["steal_share"] = shares
        if shares[0] > OTHERS_WARN:
            out["warnings"].append(
                f"other programs took {shares[0]:.0%} of the CPU time the timing's "
                f"{min(n_threads, ncpu)} threads needed: latency numbers are unreliable"
            )
        if shares[1] > OTHERS_WARN:
            out["warnings"].append(
                f"the hypervisor took {shares[1]:.0%} of the {ncpu} CPUs (steal time) while "
                f"timing: latency numbers are unreliable"
            )
    busy = (
        max(v for v in (load_before, load_after) if v is not None)
        if (load_before is not None or load_after is not None)
        else None
    )
    if device.type == "cpu" and busy is not None and busy > cpus + 0.5:
        out["warnings"].append(
            f"the machine is busy (load average {busy:.1f} on {cpus} "
            f"cores): latency numbers are unreliable"
        )
    return out
