"""The built-in demo: a CIFAR-style ResNet-20 trained on real handwritten digits.

The data are the 1,797 8x8 grey-scale digits that scikit-learn ships (UCI "Optical
Recognition of Handwritten Digits", test part), stored in ``studio/resources/digits/digits.npz``
with a fixed stratified train/validation split. ``scripts/make_demo.py`` reproduces both the
data file and the checkpoint.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from torch import nn

RESOURCES = Path(str(files("studio") / "resources"))  # package data (pip-installed too)
DIGITS_FILE = RESOURCES / "digits" / "digits.npz"
CHECKPOINT = RESOURCES / "demo" / "demo_resnet20.pt"
INPUT_SIZE = (1, 8, 8)
NUM_CLASSES = 10
# Digits hold values 0..16; this maps them to roughly zero mean, unit variance.
PIXEL_MEAN, PIXEL_STD = 4.88, 6.02


def checkpoint_state(path: Path = CHECKPOINT, remake: str = "make demo-model") -> dict:
    """The shipped demo weights (a plain state_dict)."""
    from studio.core.errors import LoadError

    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise LoadError(
            f"the demo checkpoint is missing ({path}); reinstall "
            f"pruning-studio or run '{remake}' in a checkout"
        ) from None


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn plus a shortcut (1x1 conv + bn when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class DemoResNet(nn.Module):
    """ResNet-20 (He et al. 2016, CIFAR variant): 3 stages x 3 blocks, widths 16/32/64."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        widths=(16, 32, 64),
        blocks: int = 3,
        stem_stride: int = 1,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(INPUT_SIZE[0], widths[0], 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        c = widths[0]
        for s, w in enumerate(widths):
            layers = []
            for b in range(blocks):
                layers.append(BasicBlock(c, w, stride=2 if (s > 0 and b == 0) else 1))
                c = w
            setattr(self, f"layer{s + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_digits() -> dict[str, np.ndarray]:
    """The shipped digits: ``images`` (N,8,8 uint8, 0..16), ``labels``, ``train_idx``,
    ``val_idx`` (the fixed split the demo checkpoint was trained on)."""
    with np.load(DIGITS_FILE) as f:
        return {k: f[k] for k in f.files}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
    return (x - PIXEL_MEAN) / PIXEL_STD


VAL_FRACTION = 0.2


def split_indices(split: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices of split ``split``. Split 0 is the fixed one stored
    with the data (the demo checkpoint was trained on it); split k > 0 is another
    stratified split, the same 20% of every class held out, drawn with seed k -- a second
    real data set for checking that a result is not an accident of one split."""
    d = load_digits()
    if split == 0:
        return d["train_idx"], d["val_idx"]
    if split < 0:
        raise ValueError(f"split must be >= 0, not {split}")
    return stratified_split(d["labels"], split)


def stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and validation indices, ``VAL_FRACTION`` of every class held out.
    With seed 0 this is how the stored split was drawn (scripts/make_demo.py)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * VAL_FRACTION))
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return np.sort(np.array(train)), np.sort(np.array(val))


def split_tensors(part: str, split: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images and labels of ``part`` ("train" or "val") of split ``split``."""
    d = load_digits()
    idx = split_indices(split)[0 if part == "train" else 1]
    return to_tensor(d["images"][idx]), torch.as_tensor(d["labels"][idx], dtype=torch.long)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def _shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to one pixel (pad with background, crop back to 8x8)."""
    padded = nn.functional.pad(x, (1, 1, 1, 1), value=float(-PIXEL_MEAN / PIXEL_STD))
    out = torch.empty_like(x)
    offs = torch.randint(0, 3, (x.shape[0], 2), generator=gen)
    for i, (dy, dx) in enumerate(offs.tolist()):
        out[i] = padded[i, :, dy : dy + 8, dx : dx + 8]
    return out


def train_demo(
    epochs: int = 40, seed: int = 0, log=print, split: int = 0
) -> tuple[DemoResNet, float]:
    """Train the demo model from scratch on ``split`` of the digits, deterministically on a
    CPU (about a minute)."""
    torch.manual_seed(seed)
    model = DemoResNet()
    data = (*split_tensors("train", split), *split_tensors("val", split))
    return model, fit(model, *data, epochs=epochs, seed=seed, log=log, augment=_shift)


def fit(model, xtr, ytr, xva, yva, *, epochs: int, seed: int, log=print, augment=None) -> float:
    """The demos' training recipe: SGD + Nesterov, one-cycle LR 0.1, label smoothing 0.05,
    batch 64, ``augment(x, generator)`` per batch; returns the validation top-1."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True
    )
    steps_per_epoch = (len(xtr) + 63) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        for b in range(steps_per_epoch):
            idx = perm[b * 64 : (b + 1) * 64]
            x = xtr[idx] if augment is None else augment(xtr[idx], gen)
            loss = loss_fn(model(x), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 5 == 0:
            log(
                f"epoch {epoch + 1:3d}  loss {loss.item():.3f}  "
                f"val top-1 {accuracy(model, xva, yva):.4f}"
            )
    return accuracy(model, xva, yva)
