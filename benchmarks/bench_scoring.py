"""Cost of each data-driven criterion vs a plain forward pass over the same batches.

ResNet-18 at 3x64x64, 512 synthetic images in batches of 64 (the statistics' cost does not
depend on what the pixels are). Goal: APoZ / mean activation <= 1.3x a plain forward.
"""

from __future__ import annotations

import statistics
import time

import torch

from common import machine, save

from studio.core import load_model, map_structure
from studio.core.train.data import load_data, loader
from studio.core.criteria.activations import ACTIVATION_CRITERIA, score_data
from studio.core.criteria.kl import KL_IMAGES, score_kl
from studio.core.jobs import run


def main():
    torch.set_num_threads(2)
    lm = load_model("resnet18", input_size=(3, 64, 64))
    s = map_structure(lm)
    data = load_data("synthetic", (3, 64, 64), num_classes=1000)
    data.train = torch.utils.data.TensorDataset(
        torch.randn(512, 3, 64, 64), torch.randint(0, 1000, (512,))
    )
    dl = loader(data.train, 64)
    model = lm.model.eval()

    def plain():
        with torch.no_grad():
            for x, _ in dl:
                model(x)

    def timed(fn, reps=3):
        fn()  # warm-up
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    res = {"model": "resnet18 3x64x64", "images": 512, "batch": 64, "criteria": {}}
    res["plain_forward_s"] = timed(plain)
    for c in ACTIVATION_CRITERIA:
        t = timed(lambda c=c: run(score_data(model, s, c, dl, batches=8)))
        base = timed(plain, reps=1)  # re-measure the baseline next to each criterion
        res["criteria"][c] = {"seconds": t, "ratio": t / base}
        print(f"{c:16s} {t:.3f}s  {t / base:.2f}x a plain forward", flush=True)
    # KL: one forward of KL_IMAGES images per structure (channel or chunk), not a pass
    # over the 512 images; its ratio is still against the same plain forward of 512
    x = data.train.tensors[0][:KL_IMAGES]
    t = timed(lambda: run(score_kl(model, s, x)), reps=1)
    base = timed(plain, reps=1)
    res["criteria"]["kl"] = {"seconds": t, "ratio": t / base, "images": KL_IMAGES}
    print(f"{'kl':16s} {t:.3f}s  {t / base:.2f}x a plain forward of 512 images", flush=True)
    save("scoring", {**res, **machine()})


if __name__ == "__main__":
    main()
