"""Evaluation by hand count, latency measurement and realisation."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from studio.core.jobs import Cancelled, CancelToken, run
from studio.core.train.evaluate import compare_latency, evaluate, measure_latency


class Fixed(nn.Module):
    """Returns the logits stored in its input's first 6 values."""

    def forward(self, x):
        return x[:, :6]


def test_top1_top5_loss_by_hand():
    logits = torch.tensor(
        [
            [5.0, 4, 3, 2, 1, 0],  # label 0: top-1 hit
            [0.0, 1, 2, 3, 4, 5],  # label 0: last -> not in top-5
            [1.0, 5, 0, 0, 0, 0],  # label 0: second -> top-5 hit
            [0.0, 0, 0, 0, 0, 9],
        ]
    )  # label 5: top-1 hit
    y = torch.tensor([0, 0, 0, 5])
    res = run(evaluate(Fixed(), DataLoader(TensorDataset(logits, y), batch_size=3)))
    assert res["n"] == 4
    assert res["top1"] == pytest.approx(2 / 4)
    assert res["top5"] == pytest.approx(3 / 4)
    assert res["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, y)), 1e-6)


def test_evaluate_can_be_cancelled():
    tok = CancelToken()
    x = torch.zeros(40, 6)
    gen = evaluate(
        Fixed(), DataLoader(TensorDataset(x, torch.zeros(40).long()), batch_size=4), cancel=tok
    )
    next(gen)
    tok.cancel()
    with pytest.raises(Cancelled):
        next(gen)


def test_latency_report_shape(demo):
    lat = measure_latency(demo.model, (1, 8, 8), batch_sizes=(1, 4), threads=1, repeats=5)
    assert set(lat["batch"]) == {"1", "4"} and lat["threads"] == 1
    assert all(v["median_ms"] > 0 and v["repeats"] >= 5 for v in lat["batch"].values())


def test_realisation_is_speedup_over_flops_reduction():
    big = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1))
    small = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1))
    r = compare_latency(
        big,
        small,
        (3, 32, 32),
        flops_ratio=0.1,
        batch_sizes=(2,),
        threads=1,
        rounds=5,
        round_seconds=0.02,
    )
    sp = r["speedup"]["2"]
    assert sp > 1
    assert r["realisation"]["2"] == pytest.approx(sp * 0.1)
    lo, hi = r["speedup_iqr"]["2"]
    assert lo <= sp <= hi
    b = r["pruned"]["batch"]["2"]
    assert b["p25_ms"] <= b["median_ms"] <= b["p75_ms"] and r["pruned"]["threads"] == 1


class _Jittery(nn.Module):
    """Every other call is slow: its times spread far around the median."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        import time

        self.calls += 1
        time.sleep(0.004 if (self.calls // 3) % 2 else 0.0005)
        return x


def test_latency_warns_when_the_spread_is_large_or_the_machine_busy(monkeypatch):
    steady = nn.Identity()
    r = compare_latency(
        steady,
        _Jittery(),
        (1, 4, 4),
        0.5,
        batch_sizes=(1,),
        threads=1,
        rounds=8,
        round_seconds=0.002,
    )
    assert any("spread" in w and "pruned" in w for w in r["warnings"])
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    r = compare_latency(
        steady, steady, (1, 4, 4), 0.5, batch_sizes=(1,), threads=1, rounds=3, round_seconds=0.001
    )
    assert any("busy" in w for w in r["warnings"])


def test_latency_warns_when_other_programs_or_the_hypervisor_take_the_cpus(monkeypatch):
    """What the load average misses (one competing program on two cores): the CPU time
    others used while timing, from /proc/stat against this process's own."""
    import studio.core.train.evaluate as ev

    real = ev._cpu_times()
    if real is not None:  # a real reading: busy covers this process's own time
        assert real[0] >= real[1] >= 0 and real[2] >= 0
    if real is not None and ev._allowed_cpus():  # the CPUs we may use, line by line
        assert ev._cpu_times(ev._allowed_cpus())[0] <= real[0] + 1.0

    def timed(threads):
        readings = iter([(100.0, 1.0, 10.0), (100.0 + 60.0, 1.0 + 30.0, 10.0 + 5.0)])
        monkeypatch.setattr(ev, "_cpu_times", lambda cpus=None: next(readings))
        monkeypatch.setattr(ev, "_allowed_cpus", lambda: [0, 1])
        ticks = iter([0.0, 50.0])  # the timing took 50 s of wall time on 2 CPUs: 100 CPU-s
        monkeypatch.setattr(ev, "_wall", lambda: next(ticks))
        steady = nn.Identity()
        return compare_latency(
            steady, steady, (1, 4, 4), 0.5, batch_sizes=(1,), threads=threads, rounds=2,
            round_seconds=0.001,
        )  # fmt: skip

    monkeypatch.setattr(ev, "_load", lambda: (0.1, 2))
    r = timed(2)
    # busy 60 = steal 30 + own 5 + others 25: others took 25% of what 2 threads needed,
    # the hypervisor 30% of the 100 CPU-seconds
    assert r["others_cpu_share"] == pytest.approx(0.25) and r["steal_share"] == pytest.approx(0.3)
    assert any("other programs took 25% of the CPU time the timing's 2" in w for w in r["warnings"])
    assert any("hypervisor took 30%" in w for w in r["warnings"])
    # timed on one thread, others' 25 CPU-seconds fit on the core it left idle
    assert timed(1)["others_cpu_share"] == 0.0


class _FixedBatch(nn.Module):
    """Traces to a graph whose batch is fixed at 1: exports, then fails at batch 2."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).reshape(int(x.shape[0]), -1)


class _FixedBatchCat(_FixedBatch):
    """Exports with a batch-1 constant that onnxruntime cannot concatenate at batch 2."""

    def forward(self, x):
        y = self.conv(x)
        return torch.cat([y, torch.zeros(int(x.shape[0]), *y.shape[1:])], 1).flatten(1)


class _Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x), x


def test_latency_in_each_runtime_gives_both_models_the_same_treatment(demo, demo_map):
    from studio.core import auto_plan
    from studio.core.errors import StudioError
    from studio.core.export.deploy import timing_calls
    from studio.core.plan.surgery import apply_plan

    pruned = apply_plan(
        demo.model, demo_map, auto_plan(demo, demo_map, "l1", flops_target=0.5, round_to=8)
    )
    size = demo_map.input_size
    x = torch.randn(3, *size)
    with torch.inference_mode():
        ref = {"original": demo.model.eval()(x), "pruned": pruned.eval()(x)}
    for runtime in ("torch", "deploy", "onnxruntime"):
        calls, rec = timing_calls({"original": demo.model, "pruned": pruned}, size, runtime)
        assert rec["runtime"] == runtime
        assert ("channels_last" in rec) == (runtime == "deploy")
        assert bool(rec.get("onnxruntime")) == (runtime == "onnxruntime")
        with torch.inference_mode():
            for k, f in calls.items():  # the treated models compute what the models do
                out = f(x.contiguous())
                assert isinstance(out, np.ndarray) == (runtime == "onnxruntime")
                assert torch.allclose(torch.as_tensor(out), ref[k], atol=1e-4), (runtime, k)
        r = compare_latency(
            demo.model, pruned, size, 0.5, batch_sizes=(1,), threads=1, rounds=3,
            round_seconds=0.001, runtime=runtime,
        )  # fmt: skip
        assert r["runtime"] == runtime and r["speedup"]["1"] > 0
    one = measure_latency(pruned, size, batch_sizes=(2,), threads=1, repeats=3, runtime="deploy")
    assert one["runtime"] == "deploy" and one["batch"]["2"]["median_ms"] > 0
    # the CPU runtimes run on the CPU whatever the device asked (a GPU model is copied)
    r = compare_latency(
        demo.model, pruned, size, 0.5, batch_sizes=(1,), device="cuda", rounds=1,
        round_seconds=0.001, runtime="onnxruntime",
    )  # fmt: skip
    assert r["original"]["device"] == "cpu"
    # widths off the runtime's blocks are named: onnxruntime runs such a model slowly
    odd = apply_plan(demo.model, demo_map, auto_plan(demo, demo_map, "l1", flops_target=0.5))
    assert "note" not in timing_calls({"o": demo.model, "p": pruned}, size, "onnxruntime")[1]
    rec = timing_calls({"o": demo.model, "p": odd}, size, "onnxruntime")[1]
    assert rec["note"].startswith("the p model:") and "not multiples of 8" in rec["note"]
    with pytest.raises(StudioError, match="runtime is one of"):
        timing_calls({"m": pruned}, size, "tensorrt")
    with pytest.raises(StudioError, match="the model returns a tuple, not one tensor.*torch"):
        timing_calls({"m": _Pair()}, (3, 8, 8), "onnxruntime")
    with pytest.raises(
        StudioError, match="the original model in onnxruntime gives an output of shape"
    ):
        timing_calls({"original": _FixedBatch(), "pruned": _FixedBatch()}, (3, 8, 8), "onnxruntime")
    with pytest.raises(StudioError, match=r"^the model in onnxruntime fails: \[ONNXRuntimeError\]"):
        timing_calls({"m": _FixedBatchCat()}, (3, 8, 8), "onnxruntime")
    with pytest.raises(StudioError, match="the model returns a tuple.*--runtime torch"):
        timing_calls({"m": _Pair()}, (3, 8, 8), "deploy")
