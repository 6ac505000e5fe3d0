"""The harder built-in task: the shipped handwritten digits on a 32x32 canvas, each one
rotated, scaled, sheared and moved at random, among fragments of other digits, over noise
-- and a wider network (ResNet-20, widths 24/48/96, stride-2 stem) trained on it.

On the plain 8x8 digits every criterion recovers within a point or two, so methods cannot
be told apart; here an unpruned model is clearly better than a pruned one before
fine-tuning, and small differences between methods are visible over seeds. Made only from
``studio/resources/digits/digits.npz`` (no download): every image is rendered
deterministically from a seed, in a fraction of a second. ``scripts/make_demo.py --clutter``
reproduces the shipped checkpoint.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch.nn import functional as F

from studio.core.model import demo

INPUT_SIZE = (1, 32, 32)
WIDTHS = (24, 48, 96)
STEM_STRIDE = 2
COPIES = 3  # renderings of every digit (train and validation alike)
FRAGMENTS = 4  # clutter pieces per image, cut from other digits of the same part
NOISE = 0.2
CHECKPOINT = demo.RESOURCES / "demo" / "clutter_resnet20w.pt"
VARIANT = "clutter"
ARCH = "demo_clutter"
# The rendered training images' mean and standard deviation (split 0), for normalising.
PIXEL_MEAN, PIXEL_STD = 0.160, 0.231


def build(num_classes: int = demo.NUM_CLASSES) -> demo.DemoResNet:
    return demo.DemoResNet(num_classes, widths=WIDTHS, stem_stride=STEM_STRIDE)


def checkpoint_state() -> dict:
    return demo.checkpoint_state(CHECKPOINT, "python scripts/make_demo.py --clutter")


def _affine(n: int, g: torch.Generator, rot: float, s_lo: float, s_hi: float, shift: float):
    """[n, 2, 3] thetas for ``affine_grid`` (output -> input coordinates) of random
    rotations (+-rot degrees), scales, shears (+-0.25) and translations (+-shift)."""
    u = torch.rand(n, 5, generator=g)
    a = (u[:, 0] * 2 - 1) * math.radians(rot)
    sc = s_lo + (s_hi - s_lo) * u[:, 1]
    sh = (u[:, 2] * 2 - 1) * 0.25
    t = (u[:, 3:5] * 2 - 1) * shift
    cos, sin = torch.cos(a), torch.sin(a)
    rot_m = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shear = torch.eye(2).repeat(n, 1, 1)
    shear[:, 0, 1] = sh
    fwd = sc[:, None, None] * rot_m @ shear  # canvas = fwd @ digit + t
    inv = torch.linalg.inv(fwd)
    return torch.cat([inv, -(inv @ t[:, :, None])], 2)


def _place(img16: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """16x16 images centred on a 32x32 canvas, then moved by ``theta``."""
    canvas = F.pad(img16, (8, 8, 8, 8))
    grid = F.affine_grid(theta, list(canvas.shape), align_corners=False)
    return F.grid_sample(canvas, grid, padding_mode="zeros", align_corners=False)


def render(images: torch.Tensor, copies: int, seed: int) -> torch.Tensor:
    """``images`` [N, 8, 8] (0..1) -> [N * copies, 1, 32, 32] (0..1), copy-major order."""
    g = torch.Generator().manual_seed(seed)
    x = images.float()[:, None].repeat(copies, 1, 1, 1)
    n = len(x)
    up = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    digit = _place(up, _affine(n, g, 25, 0.8, 1.35, 0.4))
    clutter = torch.zeros_like(digit)
    for _ in range(FRAGMENTS):  # a random 7x7 window of another digit, anywhere
        other = up[torch.randint(0, n, (n,), generator=g)]
        piece = _place(other, _affine(n, g, 180, 0.7, 1.2, 0.9))
        cy, cx = torch.randint(0, 26, (2, n), generator=g)
        ys = torch.arange(32)[None, :]
        win = ((ys >= cy[:, None]) & (ys < cy[:, None] + 7)).float()
        wx = ((ys >= cx[:, None]) & (ys < cx[:, None] + 7)).float()
        mask = (win[:, :, None] * wx[:, None, :])[:, None]
        level = 0.4 + 0.5 * torch.rand(n, 1, 1, 1, generator=g)
        clutter = torch.maximum(clutter, piece * mask * level)
    noise = NOISE * torch.randn(digit.shape, generator=g)
    return (torch.maximum(digit, clutter) + noise).clamp(0, 1)


@lru_cache(maxsize=4)
def split_tensors(part: str, split: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images and labels of ``part`` ("train" or "val") of split ``split`` of
    the digits, each digit rendered ``COPIES`` times (fixed seeds: the same set every time)."""
    d = demo.load_digits()
    idx = demo.split_indices(split)[0 if part == "train" else 1]
    images = torch.as_tensor(d["images"][idx], dtype=torch.float32) / 16.0
    seed = 1000 * split + (1 if part == "train" else 2)
    x = (render(images, COPIES, seed) - PIXEL_MEAN) / PIXEL_STD
    y = torch.as_tensor(d["labels"][idx], dtype=torch.long).repeat(COPIES)
    return x, y


def train(epochs: int = 30, seed: int = 0, log=print, split: int = 0):
    """Train the wide ResNet-20 from scratch on ``split`` (deterministic on a CPU with one
    thread; a few minutes). Returns (model, validation top-1)."""
    torch.manual_seed(seed)
    model = build()
    data = (*split_tensors("train", split), *split_tensors("val", split))
    return model, demo.fit(model, *data, epochs=epochs, seed=seed, log=log)
