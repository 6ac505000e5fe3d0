"""Fine-tuning that recovers a pruned model's accuracy, as a generator of progress events.

SGD (Nesterov) or AdamW, cosine schedule with linear warm-up, label smoothing, optional
knowledge distillation from the unpruned teacher, AMP on CUDA, seeds. It runs unchanged
under ``torchrun`` (DistributedDataParallel: gloo on CPU, nccl on GPU): a distributed
sampler shards the data, metrics are all-reduced, and only rank 0 should write files.
Cancellation is checked between batches; the model is then left with its best weights.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from studio.core.jobs import Cancelled, CancelToken, Events
from studio.core.train.data import DataSource, loader
from studio.core.train.evaluate import evaluate, pick_device


class FinetuneConfig(BaseModel):
    """Fine-tuning settings; checked when made (from the CLI, a recipe or the window)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    epochs: int = Field(5, ge=0, le=100_000)  # 0: no training (pipelines' empty rounds)
    lr: float = Field(0.05, gt=0, le=10)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    warmup_epochs: float = Field(0.5, ge=0, le=10_000)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    batch_size: int = Field(64, ge=1, le=65_536)
    kd_weight: float = Field(0.0, ge=0, le=1)  # share of the loss from the teacher (0 = off)
    kd_temperature: float = Field(4.0, gt=0, le=100)
    amp: bool = True  # used on CUDA only
    device: str = Field("auto", max_length=32)
    seed: int = Field(0, ge=0, lt=2**32)
    num_workers: int = Field(0, ge=0, le=64)
    log_every: int = Field(10, ge=1)  # steps between "step" events (each costs a sync)
    max_steps: int | None = Field(None, ge=1)  # stop early (tests, quick looks)
    keep_best: bool = True  # end with the best-validation weights (else the last ones)

    def as_dict(self) -> dict:
        return self.model_dump()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when run by torchrun."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def recalibrate_bn(
    model: nn.Module,
    data_loader,
    batches: int = 20,
    device="cpu",
    cancel: CancelToken | None = None,
) -> nn.Module:
    """Reset BatchNorm running statistics and re-estimate them on ``batches`` batches
    (a cumulative average, not a momentum one); the weights do not change."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train().to(device)
    with torch.no_grad():
        for i, (x, _) in enumerate(data_loader):
            if i >= batches:
                break
            if cancel is not None:
                cancel.check()
            model(x.to(device))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(total - warmup, 1)
    return base * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """Hinton et al.: KL between softened distributions, scaled by T^2."""
    return (
        F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean")
        * t
        * t
    )


class _Setup:
    """Everything one fine-tuning run needs: device, loaders (sharded under DDP), the
    wrapped model, optimizer, AMP scaler and the step budget."""

    def __init__(self, model: nn.Module, data: DataSource, cfg: FinetuneConfig, teacher):
        self.rank, self.world = distributed()
        seed_everything(cfg.seed + self.rank)
        device = pick_device(cfg.device)
        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        self.device = device
        self.model = model.to(device)
        self.teacher = teacher.eval().to(device) if teacher is not None else None
        self.sampler, val_ds = None, data.val
        if self.world > 1:
            from torch.utils.data import Subset
            from torch.utils.data.distributed import DistributedSampler

            self.sampler = DistributedSampler(
                data.train, self.world, self.rank, shuffle=True, seed=cfg.seed
            )
            val_ds = Subset(data.val, list(range(self.rank, len(data.val), self.world)))
        self.train_dl = loader(
            data.train,
            cfg.batch_size,
            shuffle=True,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
            sampler=self.sampler,
        )
        self.val_dl = loader(val_ds, max(cfg.batch_size, 128), num_workers=cfg.num_workers)
        self.net = model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optimizer == "adamw":
            self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.opt = torch.optim.SGD(
                params,
                lr=cfg.lr,
                momentum=cfg.momentum,
                nesterov=True,
                weight_decay=cfg.weight_decay,
            )
        self.amp = cfg.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        per_epoch = len(self.train_dl)
        self.total = cfg.epochs * per_epoch
        if cfg.max_steps is not None:
            self.total = min(self.total, cfg.max_steps)
        self.warmup = int(cfg.warmup_epochs * per_epoch)
        self.cfg = cfg
        self.step = 0

    def loss(self, x, y):
        cfg = self.cfg
        with torch.autocast(self.device.type, enabled=self.amp):
            out = self.net(x)
            loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
            if self.teacher is not None and cfg.kd_weight > 0:
                with torch.no_grad():
                    t_out = self.teacher(x)
                loss = (1 - cfg.kd_weight) * loss + cfg.kd_weight * kd_loss(
                    out.float(), t_out.float(), cfg.kd_temperature
                )
        return out, loss

    def epoch(self, epoch: int, cancel) -> Events:
        """One epoch of training (``self.step`` counts steps across epochs); returns (loss
        sum, correct, images, seconds). Raises ``StudioError`` when the loss stops being
        finite."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.net.train()
        dev, cfg = self.device, self.cfg
        seen, t0 = 0, time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev)
        for x, y in self.train_dl:
            step = self.step
            if step >= self.total:
                break
            if cancel is not None:
                cancel.check()
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            lr = _lr_at(step, self.total, self.warmup, cfg.lr)
            for pg in self.opt.param_groups:
                pg["lr"] = lr
            out, loss = self.loss(x, y)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            seen += len(y)
            self.step = step = step + 1
            if step % cfg.log_every == 0 or step == self.total:
                value = float(loss.detach())  # the one sync per logged step
                _check_finite(value, step, lr)
                yield {
                    "type": "step",
                    "step": step,
                    "total": self.total,
                    "epoch": epoch,
                    "loss": value,
                    "lr": lr,
                }
        return loss_sum, correct, seen, time.perf_counter() - t0

    def epoch_stats(self, loss_sum, correct, seen) -> tuple[float, float, float]:
        stats = torch.stack(
            [
                loss_sum,
                correct.double().to(loss_sum.dtype),
                torch.tensor(float(seen), device=self.device),
            ]
        )
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(stats)
        n = max(float(stats[2]), 1.0)
        return float(stats[0]) / n, float(stats[1]) / n, n


def _check_finite(loss: float, step: int, lr: float) -> None:
    if not math.isfinite(loss):
        from studio.core.errors import StudioError

        raise StudioError(
            f"fine-tuning diverged at step {step} (the loss became {loss}); "
            f"lower the learning rate (it was {lr:.3g})"
        )


def finetune(
    model: nn.Module,
    data: DataSource,
    cfg: FinetuneConfig | None = None,
    teacher: nn.Module | None = None,
    cancel: CancelToken | None = None,
) -> Events:
    """Train ``model`` in place. Yields ``step`` and ``epoch`` events; returns a summary
    with the best validation top-1 (the model ends holding the best weights)."""
    cfg = cfg or FinetuneConfig()
    run = _Setup(model, data, cfg, teacher)
    best, best_state, history = {"top1": -1.0, "epoch": -1}, None, []
    cancelled = False
    t_start = time.perf_counter()
    try:
        for epoch in range(cfg.epochs):
            loss_sum, correct, seen, dt = yield from run.epoch(epoch, cancel)
            step = run.step
            val = yield from evaluate(model, run.val_dl, run.device, cancel)
            train_loss, train_top1, n = run.epoch_stats(loss_sum, correct, seen)
            _check_finite(train_loss, step, run.opt.param_groups[0]["lr"])
            ev = {
                "type": "epoch",
                "epoch": epoch + 1,
                "epochs": cfg.epochs,
                "step": step,
                "train_loss": train_loss,
                "train_top1": train_top1,
                "val_top1": val["top1"],
                "val_top5": val["top5"],
                "val_loss": val["loss"],
                "lr": run.opt.param_groups[0]["lr"],
                "images_per_s": n / max(dt, 1e-9),
                "seconds": dt,
            }
            history.append(ev)
            if val["top1"] > best["top1"]:
                best = {
                    "top1": val["top1"],
                    "top5": val["top5"],
                    "loss": val["loss"],
                    "epoch": epoch + 1,
                }
                best_state = copy.deepcopy(model.state_dict())
            yield ev
            if step >= run.total:
                break
    except Cancelled:
        cancelled = True
    if best_state is not None and (cfg.keep_best or cancelled):
        model.load_state_dict(best_state)
    model.eval()
    return {
        "best": best,
        "history": history,
        "cancelled": cancelled,
        "steps": run.step,
        "world_size": run.world,
        "device": str(run.device),
        "config": cfg.as_dict(),
        "seconds": time.perf_counter() - t_start,
    }
