"""Opening a model does not load torch's compiler: torchvision through the studio's adapter
(studio/core/model/tv.py) and Torch-Pruning without timm (studio/core/structure/depgraph.py).
Each check runs in a fresh interpreter, since the test process has long loaded both."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fresh(code: str, drop=(), **env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in drop}
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **env},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_open_and_map_a_torchvision_model_without_dynamo_or_timm(tmp_path):
    out = fresh(
        """
        import sys
        from studio.core import verbs
        from studio.core.jobs import run
        from studio.core.model.request import ModelRequest
        opened = run(verbs.open_model(ModelRequest(spec="resnet18")))
        assert opened.structure.groups
        assert "torch_pruning" in sys.modules  # mapped by it (the cache is empty)
        import torch_pruning as tp
        print(sorted(m for m in ("torch._dynamo", "timm") if m in sys.modules))
        print(getattr(tp.utils.op_counter, "has_timm", False))
        """,
        PRUNING_STUDIO_CACHE=str(tmp_path),
    )
    assert out.split("\n")[:2] == ["[]", "False"]


def test_dynamo_and_roi_align_still_work_after_the_deferred_import():
    out = fresh(
        """
        import sys, torch
        from studio.core.model.tv import torchvision
        tv = torchvision()
        assert "torch._dynamo" not in sys.modules
        x, boxes = torch.rand(1, 3, 8, 8), torch.tensor([[0, 0, 0, 4, 4.0]])
        print(tuple(tv.ops.roi_align(x, boxes, 2).shape))
        lazy = sys.modules["torchvision.ops.roi_align"].is_compile_supported
        print(lazy("cpu"))  # imports the real dynamo
        import torch._dynamo.utils as real
        print(type(real).__name__, real.is_compile_supported("cpu"), torchvision() is tv)
        """
    )
    assert out.split("\n")[:3] == ["(1, 3, 2, 2)", "True", "module True True"]


def test_the_patched_module_never_reaches_the_bytecode_cache(tmp_path):
    """With bytecode written (to a fresh cache), the patched module is not among it, and a
    plain ``import torchvision`` afterwards (a user's script) is torchvision's own."""
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path)}
    fresh(
        """
        import torch, sys
        from studio.core.model.tv import torchvision, is_compile_supported
        torchvision()
        assert sys.modules["torchvision.ops.roi_align"].is_compile_supported is is_compile_supported
        """,
        drop=("PYTHONDONTWRITEBYTECODE",),
        **env,
    )
    written = {p.name.split(".")[0] for p in tmp_path.rglob("*.pyc") if "torchvision" in p.parts}
    assert {"roi_align", "roi_pool"} & written == {"roi_pool"}  # its sibling was cached
    out = fresh(
        """
        import sys, torchvision
        print("torch._dynamo" in sys.modules)
        """,
        drop=("PYTHONDONTWRITEBYTECODE",),
        **env,
    )
    assert out.split("\n")[0] == "True"


def test_a_source_without_the_line_loads_unchanged(tmp_path):
    from studio.core.model import tv

    src = tmp_path / "roi_align.py"
    src.write_text("import math\nVALUE = math.pi\n")
    code = tv._Loader("x", str(src)).get_code("x")
    ns = {}
    exec(code, ns)
    assert ns["VALUE"] > 3.14
    src.write_text("from torch._dynamo.utils import is_compile_supported\n")
    ns = {}
    exec(tv._Loader("x", str(src)).get_code("x"), ns)
    assert ns["is_compile_supported"] is tv.is_compile_supported


def test_timm_is_refused_only_to_torch_pruning():
    """Another thread importing timm while Torch-Pruning is imported gets it; a timm model
    opened afterwards maps and prunes; Torch-Pruning's counter then hooks timm's attention
    as if it had imported timm itself."""
    out = fresh(
        """
        import sys, threading
        import studio.core.structure.depgraph
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("timm", __import__("timm")))
        t.start()
        import torch_pruning as tp
        t.join()
        print(type(got["timm"]).__name__)
        """
    )
    assert out.split("\n")[0] == "module"
    out = fresh(
        """
        import sys, torch
        import studio.core.structure.depgraph
        import torch_pruning as tp
        assert "timm" not in sys.modules
        from studio.core import auto_plan, load_model, map_structure
        from studio.core.plan.surgery import apply_plan
        lm = load_model("timm:resnet18", input_size=(3, 64, 64))
        s = map_structure(lm)
        pruned = apply_plan(lm.model, s, auto_plan(lm, s, "l1", flops_target=0.5))
        print(pruned(torch.zeros(1, 3, 64, 64)).shape[1])
        import timm
        print(timm.models.vision_transformer.Attention in tp.utils.op_counter.MODULES_MAPPING)
        """
    )
    assert out.split("\n")[:2] == ["1000", "True"]
