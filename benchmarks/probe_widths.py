"""Probe (not part of ``make bench``): how fast one convolution runs per FLOP as its widths
shrink -- ResNet-50's layer shapes at batch 16 (or the batch given), channels-last, 2
threads, each at full width and at 75/69/62/50% of its input and output channels rounded to
16. Explains batch-16 realisation: where a layer is bandwidth-bound, its time falls with
the width (linear), not with the FLOPs (quadratic). Run it with the machine to itself:

    python benchmarks/probe_widths.py [BATCH]
"""

from __future__ import annotations

import sys

import torch

from common import ROOT  # noqa: F401 - puts the repository on sys.path

from studio.core.export.deploy import _median_ms

# (in, out, kernel, stride, input height = width): one of each ResNet-50 conv shape
SHAPES = (
    (64, 64, 3, 1, 56),
    (64, 256, 1, 1, 56),
    (256, 64, 1, 1, 56),
    (128, 128, 3, 1, 28),
    (512, 128, 1, 1, 28),
    (256, 256, 3, 1, 14),
    (1024, 256, 1, 1, 14),
    (512, 512, 3, 1, 7),
    (2048, 512, 1, 1, 7),
)
SHARES = (1.0, 0.75, 0.6875, 0.625, 0.5)


def conv_ms(cin: int, cout: int, k: int, s: int, hw: int, batch: int, reps: int = 5):
    conv = torch.nn.Conv2d(cin, cout, k, s, k // 2).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, cin, hw, hw).to(memory_format=torch.channels_last)
    out = (hw + 2 * (k // 2) - k) // s + 1
    flops = 2 * cin * cout * k * k * out * out * batch
    return _median_ms(conv, x, reps), flops  # the deploy treatment's own timer


def main():
    torch.set_num_threads(2)
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    print(f"batch {batch}: ms and GFLOP/s (2 FLOPs per multiply-add) per width")
    for cin, cout, k, s, hw in SHAPES:
        cells = []
        for f in SHARES:
            a, b = max(16, round(cin * f / 16) * 16), max(16, round(cout * f / 16) * 16)
            ms, flops = conv_ms(a, b, k, s, hw, batch)
            cells.append(f"{a}x{b} {ms:6.2f} ms {flops / ms / 1e6:5.0f}")
        print(f"{k}x{k} at {hw}x{hw}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
