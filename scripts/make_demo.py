"""Reproduce the demo's data file and checkpoint, deterministically, on a CPU.

    python scripts/make_demo.py            # both (needs scikit-learn for the data)
    python scripts/make_demo.py --model    # retrain the checkpoint from the shipped data
    python scripts/make_demo.py --split 1 --out base1.pt   # a baseline for split 1
                                           # (load it with: --arch demo, data demo:1)
    python scripts/make_demo.py --clutter --epochs 30      # the harder task's checkpoint

The digits come from scikit-learn's bundled copy of the UCI "Optical Recognition of
Handwritten Digits" test set (1,797 images, 8x8, values 0..16).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from studio.core.model import clutter, demo  # noqa: E402

SPLIT_SEED = 0


def make_data() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.uint8)
    labels = d.target.astype(np.int64)
    train_idx, val_idx = demo.stratified_split(labels, SPLIT_SEED)
    demo.DIGITS_FILE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        demo.DIGITS_FILE, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx
    )
    print(f"wrote {demo.DIGITS_FILE}: {len(train_idx)} train, {len(val_idx)} val")


def make_model(
    epochs: int, split: int = 0, out: Path = demo.CHECKPOINT, trainer=demo.train_demo
) -> float:
    torch.set_num_threads(1)  # one thread: bit-identical results on every run
    model, acc = trainer(epochs=epochs, split=split)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(out)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    print(f"wrote {out}: split {split}, val top-1 {acc:.4f}, sha256 {sha}")
    return acc


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="store_true", help="only rebuild the data file")
    ap.add_argument("--model", action="store_true", help="only retrain the checkpoint")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument(
        "--split",
        type=int,
        default=0,
        help="train on another split of the shipped digits (needs --out)",
    )
    ap.add_argument("--out", type=Path, help="where to write that checkpoint")
    ap.add_argument(
        "--clutter",
        action="store_true",
        help="the harder task's checkpoint instead (wide ResNet-20 on cluttered digits)",
    )
    a = ap.parse_args()
    if a.clutter:
        out = a.out or clutter.CHECKPOINT
        make_model(a.epochs, a.split, out, clutter.train)
        sys.exit(0)
    if a.split:
        if not a.out:
            ap.error("--split needs --out (the demo checkpoint is split 0's)")
        make_model(a.epochs, a.split, a.out)
        sys.exit(0)
    if a.data or not a.model:
        make_data()
    if a.model or not a.data:
        make_model(a.epochs)
