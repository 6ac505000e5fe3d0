"""Data sources: the demo digits, an ImageFolder directory, CIFAR-10/100 in torchvision's
on-disk format, or synthetic data of the model's input shape (structure-only runs: every
accuracy computed on it is labelled meaningless).

``load_data(spec)`` with ``spec`` one of ``demo``, ``clutter`` (the harder built-in task: the
digits rendered on a 32x32 canvas among clutter and noise; ``clutter:N`` on split N), ``demo:N``
(the same digits under another
stratified train/validation split, N >= 1; the shipped demo checkpoint was trained on split
0, so pair ``demo:N`` with a model trained on that split; for a model of another input
shape the digits are resized and repeated over its channels), ``synthetic``, ``cifar10:DIR``,
``cifar100:DIR``, or a directory (``train/`` and ``val/`` class subfolders, or one folder of
class subfolders split by a seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from studio.core.errors import DataError
from studio.core.train.spec import spec_problem

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
SYNTHETIC_NOTE = "synthetic data: accuracy and loss are meaningless, use for structure only"


@dataclass
class DataSource:
    name: str
    kind: str  # demo | imagefolder | cifar10 | cifar100 | synthetic
    train: Dataset
    val: Dataset
    num_classes: int
    input_size: tuple[int, ...]
    classes: list[str] = field(default_factory=list)
    note: str = ""  # e.g. the synthetic warning; shown next to every result
    train_eval: Dataset | None = None  # the training images without augmentation

    @property
    def calibration(self) -> Dataset:
        """Training images as the model sees them at test time: for scoring, BN
        recalibration and held-out scoring (never the validation split)."""
        return self.train_eval if self.train_eval is not None else self.train

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    def holdout(self, fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Split the *training* set into (fit, held-out) parts -- for pipelines that must
        never read the validation split."""
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self.train), generator=g).tolist()
        k = max(1, int(len(perm) * fraction))
        return Subset(self.train, perm[k:]), Subset(self.calibration, perm[:k])

    def check_model(self, model: torch.nn.Module, input_size) -> None:
        """One-line errors when the model cannot consume this data."""
        if tuple(input_size)[0] != self.input_size[0]:
            raise DataError(
                f"the model takes {input_size[0]}-channel input but {self.name} "
                f"has {self.input_size[0]} channels"
            )
        try:
            with torch.no_grad():
                out = model.eval()(torch.zeros(1, *input_size))
        except RuntimeError as e:
            raise DataError(
                f"the model does not run on {self.name}'s input "
                f"{list(input_size)}: {str(e).splitlines()[0][:120]}"
            ) from None
        if out.shape[-1] != self.num_classes:
            raise DataError(
                f"the model has {out.shape[-1]} outputs but {self.name} has "
                f"{self.num_classes} classes"
            )


class _Shift(Dataset):
    """Demo training augmentation: random translation by up to one pixel."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, fill: float):
        self.x, self.y, self.fill = x, y, fill

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        dy, dx = torch.randint(0, 3, (2,)).tolist()
        img = torch.nn.functional.pad(self.x[i], (1, 1, 1, 1), value=self.fill)
        return img[:, dy : dy + 8, dx : dx + 8], self.y[i]


class _Resized(Dataset):
    """The digits at another input size: each 8x8 image resized (bilinear) on read and
    repeated over the channels -- real handwritten digits for any CNN's input shape."""

    def __init__(self, ds: Dataset, size):
        self.ds, self.size = ds, tuple(size)

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        x = torch.nn.functional.interpolate(
            x[None], size=self.size[1:], mode="bilinear", align_corners=False
        )[0]
        return x.expand(self.size[0], -1, -1).contiguous(), y


def _demo(augment: bool, split: int = 0, input_size=None) -> DataSource:
    from studio.core.model import demo

    xtr, ytr = demo.split_tensors("train", split)
    xva, yva = demo.split_tensors("val", split)
    fill = -demo.PIXEL_MEAN / demo.PIXEL_STD
    plain = TensorDataset(xtr, ytr)
    train = _Shift(xtr, ytr, fill) if augment else plain
    val = TensorDataset(xva, yva)
    name = "demo digits" + (f" (split {split})" if split else "")
    return _digits(name, demo.INPUT_SIZE, input_size, train, val, plain)


def _digits(name, native, input_size, train, val, plain=None) -> DataSource:
    """A built-in digits source at its ``native`` size, or resized to ``input_size``."""
    size = tuple(native)
    if input_size is not None and tuple(input_size) != size:
        if len(input_size) != 3:
            raise DataError(f"the {name} are images; the model takes {list(input_size)}")
        size = tuple(int(v) for v in input_size)
        train, val = _Resized(train, size), _Resized(val, size)
        plain = _Resized(plain, size) if plain is not None else None
        name += f" at {'×'.join(map(str, size))}"
    classes = [str(i) for i in range(10)]
    return DataSource(name, "demo", train, val, 10, size, classes, train_eval=plain)


class _Synthetic(Dataset):
    """Random images made on demand: image ``i`` is the same on every read (seeded by
    ``seed`` and ``i``) and nothing is held in memory -- 384 ImageNet-sized images would
    otherwise be 230 MiB."""

    def __init__(self, n: int, input_size, num_classes: int, seed: int):
        self.n, self.size, self.seed = n, tuple(input_size), seed
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, num_classes, (n,), generator=g)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
        return torch.randn(self.size, generator=g), self.labels[i]


def _synthetic(
    input_size, num_classes: int, n_train: int = 256, n_val: int = 128, seed: int = 0
) -> DataSource:
    return DataSource(
        "synthetic",
        "synthetic",
        _Synthetic(n_train, input_size, num_classes, seed),
        _Synthetic(n_val, input_size, num_classes, seed + 1),
        num_classes,
        tuple(input_size),
        note=SYNTHETIC_NOTE,
    )


def _image_transforms(size, mean, std, train: bool, cifar: bool = False):
    from studio.core.model.tv import torchvision

    T = torchvision().transforms

    c, h, w = size
    ops = []
    if c == 1:
        ops.append(T.Grayscale(1))
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    if cifar and (h, w) == (32, 32):
        ops += [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
    elif train:
        ops += [T.RandomResizedCrop((h, w), antialias=True), T.RandomHorizontalFlip()]
    else:
        ops += [T.Resize(int(math.ceil(min(h, w) / 0.875)), antialias=True), T.CenterCrop((h, w))]
    return T.Compose(ops + [T.ToTensor(), T.Normalize(mean, std)])


def _checked_loader(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {type(e).__name__}") from None


def _image_folder(root: Path, size, val_split: float, seed: int) -> DataSource:
    from studio.core.model.tv import torchvision

    ImageFolder = torchvision().datasets.ImageFolder

    def folder(p: Path, train: bool):
        try:
            return ImageFolder(
                str(p),
                transform=_image_transforms(size, IMAGENET_MEAN, IMAGENET_STD, train),
                loader=_checked_loader,
            )
        except FileNotFoundError as e:
            raise DataError(
                f"no images found in {p}: expected one subfolder per class "
                f"holding .jpg/.png files ({str(e).splitlines()[0][:120]})"
            ) from None

    if (root / "train").is_dir() and (root / "val").is_dir():
        train, val = folder(root / "train", True), folder(root / "val", False)
        train_eval = folder(root / "train", False)
        if train.classes != val.classes:
            raise DataError(f"{root}/train and {root}/val have different classes")
    else:
        full_t, full_v = folder(root, True), folder(root, False)
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(full_t), generator=g).tolist()
        k = max(1, int(len(perm) * val_split))
        train, val = Subset(full_t, perm[k:]), Subset(full_v, perm[:k])
        train_eval = Subset(full_v, perm[k:])
        train.classes = full_t.classes  # type: ignore[attr-defined]
    classes = train.classes
    return DataSource(
        str(root),
        "imagefolder",
        train,
        val,
        len(classes),
        tuple(size),
        classes,
        train_eval=train_eval,
    )


def _cifar(kind: str, root: Path, size, download: bool) -> DataSource:
    from studio.core.model.tv import torchvision

    datasets = torchvision().datasets

    cls = datasets.CIFAR10 if kind == "cifar10" else datasets.CIFAR100
    folder = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
    try:
        tr = cls(
            str(root),
            train=True,
            download=download,
            transform=_image_transforms(size, CIFAR_MEAN, CIFAR_STD, True, cifar=True),
        )
        plain = _image_transforms(size, CIFAR_MEAN, CIFAR_STD, False, cifar=True)
        va = cls(str(root), train=False, download=download, transform=plain)
        tr_eval = cls(str(root), train=True, download=False, transform=plain)
    except RuntimeError as e:
        if "not found or corrupted" in str(e) or "Dataset not found" in str(e):
            raise DataError(
                f"{kind.upper()} not found in {root}: put the extracted "
                f"'{folder}' folder there (from {cls.url}), or add --download "
                f"where there is internet"
            ) from None
        raise DataError(f"{kind.upper()} in {root} is unreadable: {e}") from None
    return DataSource(
        f"{kind.upper()} ({root})",
        kind,
        tr,
        va,
        len(tr.classes),
        tuple(size),
        list(tr.classes),
        train_eval=tr_eval,
    )


def _clutter(split: int, input_size=None) -> DataSource:
    """The harder built-in task (``studio.core.model.clutter``): the digits rendered on a
    32x32 canvas with random affine transforms, clutter and noise."""
    from studio.core.model import clutter

    xtr, ytr = clutter.split_tensors("train", split)
    xva, yva = clutter.split_tensors("val", split)
    train, val = TensorDataset(xtr, ytr), TensorDataset(xva, yva)
    name = "cluttered digits" + (f" (split {split})" if split else "")
    return _digits(name, clutter.INPUT_SIZE, input_size, train, val)


def load_data(
    spec: str,
    input_size=None,
    *,
    num_classes: int | None = None,
    val_split: float = 0.2,
    seed: int = 0,
    augment: bool = True,
    download: bool = False,
) -> DataSource:
    """The data source named by ``spec`` (module docstring), images shaped ``input_size``."""
    spec = str(spec).strip()
    if input_size is not None and len(input_size) != 3 and spec != "synthetic":
        raise DataError(
            f"{spec}: this data source holds images, and the model takes "
            f"{list(input_size)} (a sequence model: use synthetic data here)"
        )
    kind, _, rest = spec.partition(":")
    if kind in ("cifar10", "cifar100") and rest:  # its folder may be made by the download
        return _cifar(kind, Path(rest).expanduser(), input_size or (3, 32, 32), download)
    problem = spec_problem(spec)  # the checks the window's dialog makes, in one place
    if problem:
        raise DataError(problem)
    if kind == "demo":
        return _demo(augment, int(rest or 0), input_size)
    if kind == "clutter":
        return _clutter(int(rest or 0), input_size)
    if spec == "synthetic":
        if input_size is None:
            raise DataError("synthetic data needs the model's input size")
        return _synthetic(input_size, num_classes or 10)
    root = Path(spec).expanduser()
    return _image_folder(root, input_size or (3, 224, 224), val_split, seed)


def loader(
    ds: Dataset,
    batch_size: int = 64,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    sampler=None,
    drop_last: bool = False,
) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        generator=g,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )
