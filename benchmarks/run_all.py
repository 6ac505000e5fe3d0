"""`make bench`: every benchmark in one run, then docs/benchmarks.md from the results.

Timing benchmarks run one at a time with the machine to themselves. The accuracy tables
(criteria and pipelines, on the demo's split and on a second split of the digits; every
method on the cluttered digits at two targets) only
count correct images, so they run as two lanes in parallel, one thread each: on two cores
that is ~1.7x the throughput of running them one after the other (their "seconds per run"
columns are per lane). Durations go to benchmarks/results/bench_run.json.

    python benchmarks/run_all.py [--only NAME,...] [--skip NAME,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMING = [
    "bench_counting",
    "bench_mapping",
    "bench_scoring",
    "bench_finetune",
    "bench_gui",
    "bench_memory",
    "bench_realisation",
    "bench_latency_aware",
    "bench_sensitivity",
]
LANES = [  # each lane runs its steps in order; the lanes run side by side
    [
        ("demo_split1", ["-c", "from common import demo_setup; demo_setup(1)"]),
        ("bench_criteria --split 1", ["bench_criteria.py", "--split", "1"]),
        ("bench_criteria", ["bench_criteria.py"]),
        ("bench_methods --targets 0.25", ["bench_methods.py", "--targets", "0.25"]),
    ],
    [
        ("bench_pipelines", ["bench_pipelines.py"]),
        ("bench_pipelines --split 1", ["bench_pipelines.py", "--split", "1"]),
        ("bench_methods --targets 0.15", ["bench_methods.py", "--targets", "0.15"]),
    ],
]


def _run(args, env=None, log=None):
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        cwd=HERE,
        env=env,
        check=True,
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
    )
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--skip", default="")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    skip = set(filter(None, a.skip.split(",")))
    want = lambda name: (not only or name.split()[0] in only) and name.split()[0] not in skip  # noqa: E731
    t_all = time.perf_counter()
    times = {}
    for name in TIMING:
        if want(name):
            print(f"== {name}", flush=True)
            times[name] = _run([f"{name}.py"])
    lanes = [[step for step in lane if want(step[0]) or step[0] == "demo_split1"] for lane in LANES]
    lanes = [lane for lane in lanes if any(n != "demo_split1" for n, _ in lane)]
    if lanes:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        print(f"== accuracy lanes: {[[n for n, _ in lane] for lane in lanes]}", flush=True)
        logs = [open(HERE / "results" / f"lane{i}.log", "w") for i in range(len(lanes))]  # noqa: SIM115
        script = (
            "import subprocess, sys, time, json\n"
            "out = {}\n"
            "for name, args in json.loads(sys.argv[1]):\n"
            "    t0 = time.perf_counter()\n"
            "    subprocess.run([sys.executable, *args], check=True)\n"
            "    out[name] = time.perf_counter() - t0\n"
            "    print('LANE', json.dumps({name: out[name]}), flush=True)\n"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, json.dumps(lane)],
                cwd=HERE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for lane, log in zip(lanes, logs)
        ]
        t0 = time.perf_counter()
        codes = [p.wait() for p in procs]
        times["accuracy lanes (parallel)"] = time.perf_counter() - t0
        for log in logs:
            log.close()
        for i, _ in enumerate(lanes):
            for line in (HERE / "results" / f"lane{i}.log").read_text().splitlines():
                if line.startswith("LANE "):
                    times.update({f"  {k}": v for k, v in json.loads(line[5:]).items()})
        if any(codes):
            sys.exit(f"an accuracy lane failed: see benchmarks/results/lane*.log ({codes})")
    times["render_docs"] = _run(["render_docs.py"])
    total = time.perf_counter() - t_all
    res = {"total_s": total, "steps_s": times, "partial": bool(only or skip)}
    if not res["partial"]:
        (HERE / "results" / "bench_run.json").write_text(json.dumps(res, indent=1))
        _run(["render_docs.py"])  # again, with the run's own duration
    print(json.dumps(res, indent=1))
    print(f"make bench: {total / 60:.1f} min")


if __name__ == "__main__":
    main()
