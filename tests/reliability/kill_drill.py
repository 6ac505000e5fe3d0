"""The kill -9 drill: start a command that writes a result over an earlier one, kill it with
SIGKILL at a random moment, and check that the result folder holds either the earlier result
intact or the new one complete -- never half of one, never nothing -- and that no partial
folder outlives the next run."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "prune": lambda out, k: [
        "prune",
        "demo",
        "--flops-target",
        f"{0.3 + 0.05 * (k % 6):.2f}",
        "--out",
        str(out),
    ],
    "finetune": lambda out, k: [
        "finetune",
        "demo",
        "--data",
        "demo",
        "--epochs",
        "2",
        "--seed",
        str(k),
        "--out",
        str(out),
    ],
    "run": lambda out, k: ["run", "--recipe", str(out.parent / "recipe.json"), "--out", str(out)],
}
RECIPE = {
    "format": "pruning-studio/recipe",
    "version": 1,
    "model": {"spec": "demo"},
    "data": "demo",
    "steps": [{"target": {"flops": 0.5}}, {"finetune": {"epochs": 1, "max_steps": 6}}],
}


def _digest(folder: Path) -> str | None:
    """The identity of a complete result: its model.json and weights, or None."""
    try:
        meta = (folder / "model.json").read_bytes()
        weights = (folder / "weights.pt").read_bytes()
    except OSError:
        return None
    return hashlib.sha256(meta + weights).hexdigest()


def _cli(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen(
        [sys.executable, "-m", "studio", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def drill(command: str, kills: int, workdir: Path, seed: int = 0) -> list[dict]:
    """Returns one record per kill: when it landed, and what the folder held after."""
    from studio.core import load_model

    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "recipe.json").write_text(json.dumps(RECIPE))
    out = workdir / "result"
    t0 = time.perf_counter()
    p = _cli(COMMANDS[command](out, 0))
    _, err = p.communicate(timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{command} failed: {err.decode()[-500:]}")
    duration = time.perf_counter() - t0
    known = {_digest(out)}
    records = []
    for k in range(1, kills + 1):
        proc = _cli(COMMANDS[command](out, k))
        delay = rng.uniform(0.1, duration * 1.1)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        lm = load_model(str(out))  # the next run: restores or cleans what the kill left
        digest = _digest(out)
        state = "previous" if digest in known else "new"
        known.add(digest)
        partial = sorted(x.name for x in workdir.iterdir() if x.name.startswith(".result."))
        records.append(
            {
                "command": command,
                "kill": k,
                "delay_s": round(delay, 2),
                "killed": not finished,
                "state": state,
                "loads": lm is not None,
                "leftovers": partial,
            }
        )
    return records
