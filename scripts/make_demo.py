"""Reproduce the demo's data file and checkpoint, deterministically, on a CPU.

    python scripts/make_demo.py            # both (needs scikit-learn for the data)
    python scripts/make_demo.py --model    # retrain the checkpoint from the shipped data

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
from studio.core import demo  # noqa: E402

VAL_FRACTION = 0.2
SPLIT_SEED = 0


def make_data() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.uint8)
    labels = d.target.astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    train_idx, val_idx = [], []
    for c in range(10):  # stratified: the same fraction of every class held out
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * VAL_FRACTION))
        val_idx += idx[:n_val].tolist()
        train_idx += idx[n_val:].tolist()
    demo.DIGITS_FILE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        demo.DIGITS_FILE, images=images, labels=labels,
        train_idx=np.sort(np.array(train_idx)), val_idx=np.sort(np.array(val_idx)),
    )
    print(f"wrote {demo.DIGITS_FILE}: {len(train_idx)} train, {len(val_idx)} val")


def make_model(epochs: int) -> None:
    torch.set_num_threads(1)  # one thread: bit-identical results on every run
    model, acc = demo.train_demo(epochs=epochs)
    demo.CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    tmp = demo.CHECKPOINT.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(demo.CHECKPOINT)
    sha = hashlib.sha256(demo.CHECKPOINT.read_bytes()).hexdigest()[:16]
    print(f"wrote {demo.CHECKPOINT}: val top-1 {acc:.4f}, sha256 {sha}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="store_true", help="only rebuild the data file")
    ap.add_argument("--model", action="store_true", help="only retrain the checkpoint")
    ap.add_argument("--epochs", type=int, default=40)
    a = ap.parse_args()
    if a.data or not a.model:
        make_data()
    if a.model or not a.data:
        make_model(a.epochs)
