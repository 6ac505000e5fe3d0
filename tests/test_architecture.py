"""studio.core must stay usable without Qt (the GUI is only a view of it)."""

import subprocess
import sys

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'superqt'):
            raise ImportError('Qt is blocked in this test: ' + name)
sys.meta_path.insert(0, Block())
import studio.core, studio.core.structure.fvcore_count, studio.cli
from studio.core import load_model, map_structure, auto_plan, prune
lm = load_model('demo'); s = map_structure(lm)
pruned, report = prune(lm, s, auto_plan(lm, s, flops_target=0.5))
assert report['after']['flops'] <= 0.5 * report['before']['flops']
print('ok')
"""


def test_core_imports_and_works_with_qt_blocked():
    r = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok")


def test_only_the_adapters_import_their_libraries():
    import re
    from pathlib import Path

    core = Path(__file__).resolve().parents[1] / "studio"
    for f in core.rglob("*.py"):
        text = f.read_text()
        if f.name != "depgraph.py":
            assert not re.search(r"^\s*(from|import)\s+torch_pruning\b", text, re.M), f
        if f.name != "fvcore_count.py":
            assert not re.search(r"^\s*(from|import)\s+fvcore\b", text, re.M), f


def test_help_does_not_import_torch():
    code = (
        "import sys, studio.cli\n"
        "try:\n    studio.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported for --help'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
