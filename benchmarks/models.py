"""Which models open, prune and reload: timm CNN families (random weights, 3x96x96) and,
when present, public CIFAR model zoos' own code (3x32x32) -- regenerates docs/models.md.

    python benchmarks/models.py [--zoo DIR] [--only NAME ...] [--timeout S]

Each model runs in its own process with a time limit (a hang counts as a failure): load,
map the channel groups, select 50% of the FLOPs by L1, prune physically, save the folder,
move it to another directory, reload it there, and compare its output with the pruned
model's. A refusal is a one-line reason; anything else that fails is a failure.

The zoos are not part of the repository (their code stays theirs): clone
https://github.com/kuangliu/pytorch-cifar and https://github.com/weiaicunzai/pytorch-cifar100
and point --zoo at a folder holding them as kuangliu/ and weiaicunzai/ (default:
benchmarks/.cache/zoo).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "models.json"
DOC = ROOT / "docs" / "models.md"

# One architecture per timm family (module), CNNs first, then models that are not CNNs and
# must be refused with a reason. Family names follow timm's model modules.
TIMM = [
    ("resnet", "resnet18"),
    ("resnet (deep stem)", "resnet50d"),
    ("senet", "seresnext26d_32x4d"),
    ("resnet (ECA)", "ecaresnet26t"),
    ("sknet", "skresnet18"),
    ("resnest", "resnest14d"),
    ("res2net", "res2net50_26w_4s"),
    ("cspnet", "cspresnet50"),
    ("cspnet (darknet)", "cs3darknet_s"),
    ("byobnet (ResNeXt-ts)", "resnext26ts"),
    ("byobnet (RepVGG)", "repvgg_a2"),
    ("byobnet (MobileOne)", "mobileone_s0"),
    ("byobnet (GENet)", "gernet_s"),
    ("efficientnet", "efficientnet_b0"),
    ("efficientnet (V2)", "tf_efficientnetv2_b0"),
    ("efficientnet (MixNet)", "mixnet_s"),
    ("efficientnet (MnasNet)", "mnasnet_100"),
    ("efficientnet (TinyNet)", "tinynet_a"),
    ("mobilenetv3", "mobilenetv3_large_100"),
    ("mobilenetv3 (LCNet)", "lcnet_050"),
    ("mobilenetv4 (conv)", "mobilenetv4_conv_small"),
    ("hardcorenas", "hardcorenas_a"),
    ("ghostnet", "ghostnet_100"),
    ("repghost", "repghostnet_050"),
    ("rexnet", "rexnet_100"),
    ("regnet (X)", "regnetx_002"),
    ("regnet (Y)", "regnety_016"),
    ("densenet", "densenet121"),
    ("dla", "dla34"),
    ("dpn", "dpn68"),
    ("hrnet", "hrnet_w18_small"),
    ("vgg", "vgg11_bn"),
    ("nfnet", "nf_resnet26"),
    ("nfnet (regnet)", "nf_regnet_b0"),
    ("selecsls", "selecsls42b"),
    ("vovnet", "ese_vovnet19b_dw"),
    ("convnext", "convnext_atto"),
    ("inception_v3", "inception_v3"),
    ("xception", "xception41"),
    ("tresnet", "tresnet_m"),
    ("resnetv2 (pre-act)", "resnetv2_50"),
    ("rdnet", "rdnet_tiny"),
    ("starnet", "starnet_s1"),
    ("fasternet", "fasternet_t0"),
    ("inception_next", "inception_next_atto"),
    ("fastvit (RepMixer)", "fastvit_t8"),
]
NOT_CNN = [
    ("vision_transformer", "vit_tiny_patch16_224"),
    ("deit", "deit_tiny_patch16_224"),
    ("levit", "levit_128s"),
    ("efficientvit_mit", "efficientvit_b0"),
    ("byoanet (BoTNet, 256 px)", "botnet26t_256"),
    ("edgenext", "edgenext_xx_small"),
]
# (zoo, file, entry, model_args)
ZOO = [
    ("kuangliu", f, e, a)
    for f, e, a in [
        ("resnet.py", "ResNet18", {}),
        ("preact_resnet.py", "PreActResNet18", {}),
        ("vgg.py", "VGG", {"vgg_name": "VGG11"}),
        ("mobilenet.py", "MobileNet", {}),
        ("mobilenetv2.py", "MobileNetV2", {}),
        ("densenet.py", "densenet_cifar", {}),
        ("dla.py", "DLA", {}),
        ("dla_simple.py", "SimpleDLA", {}),
        ("dpn.py", "DPN26", {}),
        ("efficientnet.py", "EfficientNetB0", {}),
        ("googlenet.py", "GoogLeNet", {}),
        ("lenet.py", "LeNet", {}),
        ("pnasnet.py", "PNASNetA", {}),
        ("pnasnet.py", "PNASNetB", {}),
        ("regnet.py", "RegNetX_200MF", {}),
        ("regnet.py", "RegNetY_400MF", {}),
        ("resnext.py", "ResNeXt29_2x64d", {}),
        ("senet.py", "SENet18", {}),
        ("shufflenet.py", "ShuffleNetG2", {}),
        ("shufflenetv2.py", "ShuffleNetV2", {"net_size": 1}),
    ]
] + [
    ("weiaicunzai", f, e, {})
    for f, e in [
        ("resnet.py", "resnet18"),
        ("preactresnet.py", "preactresnet18"),
        ("vgg.py", "vgg11_bn"),
        ("mobilenet.py", "mobilenet"),
        ("mobilenetv2.py", "mobilenetv2"),
        ("densenet.py", "densenet121"),
        ("googlenet.py", "googlenet"),
        ("inceptionv3.py", "inceptionv3"),
        ("inceptionv4.py", "inceptionv4"),
        ("inceptionv4.py", "inception_resnet_v2"),
        ("nasnet.py", "nasnet"),
        ("resnext.py", "resnext50"),
        ("senet.py", "seresnet18"),
        ("shufflenet.py", "shufflenet"),
        ("shufflenetv2.py", "shufflenetv2"),
        ("squeezenet.py", "squeezenet"),
        ("wideresidual.py", "wideresnet"),
        ("xception.py", "xception"),
        ("attention.py", "attention56"),
        ("rir.py", "resnet_in_resnet"),
        ("stochasticdepth.py", "stochastic_depth_resnet18"),
    ]
]

CHILD = r"""
import json, shutil, sys, tempfile, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
from studio.core import load_model, map_structure, auto_plan, prune, save_pruned
from studio.core.errors import StudioError
spec, size, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rec = {"spec": spec}
t0 = time.perf_counter()
try:
    lm = load_model(spec, input_size=size, model_args=args)
    t1 = time.perf_counter()
    s = map_structure(lm)
    t2 = time.perf_counter()
    plan = auto_plan(lm, s, "l1", flops_target=0.5)
    pruned, report = prune(lm, s, plan)
    t3 = time.perf_counter()
    tmp = tempfile.mkdtemp()
    save_pruned(f"{tmp}/a/model", lm, pruned, plan, report)
    shutil.move(f"{tmp}/a/model", f"{tmp}/moved")  # a folder must reload from anywhere
    back = load_model(f"{tmp}/moved", code_root=sys.argv[4] or None, trust=True)
    x = torch.randn(2, *lm.input_size)
    with torch.no_grad():
        same = torch.allclose(back.model(x), pruned.eval()(x), atol=1e-4, rtol=1e-4)
    if not same:
        raise RuntimeError("the reloaded model computes something else")
    groups = sum(g.prunable for g in s.groups)
    rec.update(status="ok", flops=report["after"]["flops"] / report["before"]["flops"],
               params=report["before"]["params"], gflops=report["before"]["flops"] / 1e9,
               groups=len(s.groups), prunable=groups, load_s=t1 - t0, map_s=t2 - t1,
               prune_s=t3 - t2)
except StudioError as e:
    rec.update(status="refused", reason=str(e).splitlines()[0])
except Exception as e:
    rec.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
rec["seconds"] = time.perf_counter() - t0
print("RESULT " + json.dumps(rec))
"""


def run_one(spec: str, size: str, args: dict, timeout: float, code_root: str = "") -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            [sys.executable, "-c", CHILD, spec, size, json.dumps(args), code_root],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {
            "spec": spec,
            "status": "failed",
            "reason": f"hang: no result in {timeout:.0f} s",
            "seconds": timeout,
        }
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {
        "spec": spec,
        "status": "failed",
        "seconds": time.perf_counter() - t0,
        "reason": f"crashed (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}",
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", default=str(ROOT / "benchmarks" / ".cache" / "zoo"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    rows = []
    jobs = [("timm", fam, f"timm:{n}", "3,96,96", {"num_classes": 10}, "") for fam, n in TIMM]
    jobs += [
        (
            "not a CNN",
            fam,
            f"timm:{n}",
            "3,256,256" if "256" in n else "3,224,224",
            {"num_classes": 10},
            "",
        )
        for fam, n in NOT_CNN
    ]
    zoo = Path(a.zoo)
    for z, f, e, args in ZOO:
        path = zoo / z / "models" / f
        if path.is_file():
            jobs.append((f"zoo:{z}", f"{f[:-3]}", f"{path}:{e}", "3,32,32", args, str(path.parent)))
    for kind, fam, spec, size, args, root in jobs:
        if a.only and not any(o in spec for o in a.only):
            continue
        r = run_one(spec, size, args, a.timeout, root)
        r.update(kind=kind, family=fam)
        rows.append(r)
        print(
            f"{r['status']:8s} {spec[-60:]:60s} {r.get('flops', 0):.3f} "
            f"{r['seconds']:6.1f}s {r.get('reason', '')[:120]}",
            flush=True,
        )
    if a.only:
        return 0
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1))
    render(rows)
    return 0


def _cells(r: dict) -> list[str]:
    if r["status"] != "ok":
        return ["", "", "", "", ""]
    return [
        f"{r['flops']:.1%}",
        f"{r['params'] / 1e6:.1f}M",
        f"{r['groups']} ({r['prunable']})",
        f"{r['map_s']:.2f}",
        f"{r['prune_s']:.2f}",
    ]


def _table(rows: list[dict]) -> str:
    out = [
        "| family | model | result | FLOPs after | params | groups (prunable) | map s | "
        "prune s | reason |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        name = r["spec"].replace("timm:", "").split("/")[-1]
        reason = r.get("reason", "").replace("|", "/")
        out.append(
            f"| {r['family']} | `{name}` | {r['status']} | "
            + " | ".join(_cells(r))
            + f" | {reason} |"
        )
    return "\n".join(out)


def render(rows: list[dict]) -> None:
    def summary(kind: str) -> str:
        rs = [r for r in rows if r["kind"].startswith(kind)]
        ok = sum(r["status"] == "ok" for r in rs)
        ref = sum(r["status"] == "refused" for r in rs)
        bad = sum(r["status"] == "failed" for r in rs)
        slow = max((r["seconds"] for r in rs), default=0)
        return (
            f"{len(rs)} models: **{ok} prune to ≤ 50% of their FLOPs and reload** "
            f"({ok / max(len(rs), 1):.0%}), {ref} refused with a one-line reason, {bad} "
            f"failed; the slowest took {slow:.0f} s"
        )

    zoos = sorted({r["kind"] for r in rows if r["kind"].startswith("zoo:")})
    doc = (
        f"""# Models: what opens, prunes and reloads

Generated by `make models` (`benchmarks/models.py`): every model runs in its own process
with a 120 s limit (a hang is a failure) -- load with random weights, map its channel
groups, select 50% of the FLOPs by L1 (global), prune physically, save the folder, **move
it to another directory and reload it there**, and check that the reloaded model computes
what the pruned one does. A *refusal* is a one-line reason the studio gives on purpose;
a *failure* is anything else.

## timm CNN families (3×96×96, 10 classes)

{summary("timm")}.

{_table([r for r in rows if r["kind"] == "timm"])}

## Not CNNs: refused by design

{summary("not a CNN")} (transformers and hybrids: attention couples channels across
tokens, which the channel dependency graph does not follow).

{_table([r for r in rows if r["kind"] == "not a CNN"])}

## A public CIFAR model zoo's own code (3×32×32)

The models as their authors wrote them, opened as `FILE.py:NAME` (the user's own code);
the saved folders record the code as file name, sha256 and arguments and reload from
another directory with `--code-root`. The zoos' code is not part of this repository (see
the script's docstring).
"""
        + "\n".join(
            f"\n### {z[4:]}\n\n{summary(z)}.\n\n" + _table([r for r in rows if r["kind"] == z])
            for z in zoos
        )
        + """

## What the refusals and partial groups mean

- *A split into chunks of fixed size* / *a slice of fixed bounds*: the model's code fixes
  how many channels go where (`torch.split(x, self.width)`, `x[:, :self.out_chs]`);
  removing channels there would change what the code computes, so those groups are left
  whole and the others pruned. When too little is left to reach the target, the plan says
  so: "FLOPs target 0.5 is out of reach: … keeps at least 0.75 of its FLOPs".
- *A channel shuffle*, *a pixel shuffle*, *self-attention*: wiring the dependency graph
  cannot follow; found in one forward pass, before any graph walk, naming the layer.
- *Channels that reach a layer twice* (Ghost modules: a concat and an add) are removed
  together, like the positions of a grouped convolution.
"""
    )
    DOC.write_text(doc)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    raise SystemExit(main())
