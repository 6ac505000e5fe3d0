"""Shared helpers for the benchmark scripts."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def machine() -> dict:
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def save(name: str, res: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(res, indent=1))
    return out


def demo_setup(split: int = 0):
    """The demo model and its data for ``split`` of the digits. Split 0 is the shipped
    demo; for another split a baseline is trained on that split's training part (same
    recipe as the demo, deterministic, ~30 s) and cached in benchmarks/.cache/."""
    from studio.core import load_model
    from studio.core.model import demo
    from studio.core.train.data import load_data

    if split == 0:
        return load_model("demo"), load_data("demo")
    ckpt = ROOT / "benchmarks" / ".cache" / f"demo_split{split}.pt"
    if not ckpt.exists():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # bit-identical on every machine run
        model, acc = demo.train_demo(split=split, log=lambda *_: None)
        torch.set_num_threads(threads)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(ckpt)
        print(f"trained the split-{split} baseline: val top-1 {acc:.4f} -> {ckpt}", flush=True)
    return load_model(str(ckpt), arch="demo"), load_data(f"demo:{split}")


def result_name(name: str, split: int) -> str:
    return name if split == 0 else f"{name}_split{split}"
