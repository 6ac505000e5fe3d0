"""Probe (not part of ``make bench``): ResNet-50 at 50% of the FLOPs under the deploy
treatment (BatchNorm folded; channels-last as chosen for the dense model, used for all),
pruned with ``round_to`` 8, 16, 32 and 64; realisation at batch 1 and 16 against the
deployed dense model, interleaved rounds. Run it with the machine to itself:

    python benchmarks/probe_round_to.py
"""

from __future__ import annotations

import torch

from common import ROOT  # noqa: F401 - puts the repository on sys.path

from bench_realisation import interleaved
from studio.core import auto_plan, load_model, map_structure
from studio.core.export.deploy import deploy_model, run_input
from studio.core.plan.surgery import apply_plan
from studio.core.structure.counting import count_model


def main():
    torch.set_num_threads(2)
    lm = load_model("resnet50")
    s = map_structure(lm)
    size = s.input_size
    dense, dep = deploy_model(lm.model.eval(), size, channels_last="auto")
    fmt = "on" if dep["channels_last"] else "off"
    print("dense deployed: channels_last", dep["channels_last"], flush=True)
    variants, ratio = {"dense": dense}, {"dense": 1.0}
    for rt in (8, 16, 32, 64):
        plan = auto_plan(lm, s, "l1", flops_target=0.5, scope="uniform", round_to=rt)
        m = apply_plan(lm.model, s, plan).eval()
        ratio[rt] = count_model(m, size).flops / s.original.flops
        variants[rt] = deploy_model(m, size, channels_last=fmt)[0]
    calls = {k: (lambda x, m=m: m(run_input(dep, x))) for k, m in variants.items()}
    for batch, rounds, n in ((1, 7, 5), (16, 5, 1)):
        t = interleaved(calls, size, batch, rounds, n)
        for k in variants:
            if k != "dense":
                sp = t["dense"] / t[k]
                print(
                    f"batch {batch} round_to {k}: FLOPs {ratio[k]:.3f}  {t[k]:.1f} ms vs "
                    f"{t['dense']:.1f}  speed-up {sp:.2f}  realisation {sp * ratio[k]:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
