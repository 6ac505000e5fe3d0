"""The studio's fine-tuning loop vs a bare PyTorch loop: training images/s, same model, data,
batch size and optimizer, alternating runs in one process. Goal: ratio >= 0.95."""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch.nn import functional as F

from common import machine, save

from studio.core import load_model
from studio.core.data import load_data, loader
from studio.core.finetune import FinetuneConfig, finetune
from studio.core.jobs import run


def bare(model, data, epochs, bs):
    dl = loader(data.train, bs, shuffle=True, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    rates = []
    for _ in range(epochs):
        model.train()
        n, t0 = 0, time.perf_counter()
        for x, y in dl:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        rates.append(n / (time.perf_counter() - t0))
    return rates


def studio(model, data, epochs, bs):
    res = run(finetune(model, data, FinetuneConfig(epochs=epochs, lr=0.01, batch_size=bs,
                                                   warmup_epochs=0)))
    return [h["images_per_s"] for h in res["history"]]


def main():
    torch.set_num_threads(2)
    lm = load_model("demo")
    data = load_data("demo")
    rounds, epochs, bs = 3, 3, 64
    b, s = [], []
    for _ in range(rounds):  # alternate so drift hits both alike
        b += bare(copy.deepcopy(lm.model), data, epochs, bs)
        s += studio(copy.deepcopy(lm.model), data, epochs, bs)
    res = {"model": "demo ResNet-20", "batch": bs, "bare_images_per_s": statistics.median(b),
           "studio_images_per_s": statistics.median(s)}
    res["ratio"] = res["studio_images_per_s"] / res["bare_images_per_s"]
    print(res)
    save("finetune_overhead", {**res, **machine()})


if __name__ == "__main__":
    main()
