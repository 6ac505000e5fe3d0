"""The user's own model code: ``FILE.py:NAME`` or ``package.module:NAME``, where NAME is an
``nn.Module`` class or a factory function, called with the request's ``model_args``.

Running code needs consent. Code the user names on the command line or in the window runs
(that is the consent); code a *file* names (a recipe, a saved folder, a recovery file) runs
only with ``trust``. A saved folder records the code as data -- module or file name, the
path it was given as, its sha256 and the arguments -- so it can be found again after a
move (``code_root``) and is refused if the file changed.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from studio.core.errors import LoadError, UntrustedFile
from studio.core.model.checkpoint import sha256_of


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:160]}" if text else type(e).__name__


def entries(path) -> list[str]:
    """Top-level classes and functions a code file defines, ``nn.Module`` subclasses first
    -- read with ``ast``, without running the file."""
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as e:
        raise LoadError(f"{path} cannot be read: {_first_line(e)}") from None
    except SyntaxError as e:
        raise LoadError(f"{path} is not valid Python (line {e.lineno}: {e.msg})") from None
    modules, others = [], []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            (modules if any("Module" in b for b in bases) else others).append(node.name)
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            others.append(node.name)
    return modules + others


def _on_path(folder: Path) -> None:
    f = str(folder)
    if f not in sys.path:
        sys.path.insert(0, f)  # the code's sibling imports must resolve


def _import_file(path: Path):
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"_studio_code_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    _on_path(path.parent)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"{path} cannot be imported as Python code")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(name, None)
        raise LoadError(f"{path} is not valid Python (line {e.lineno}: {e.msg})") from None
    except BaseException as e:  # noqa: BLE001 - user code may raise anything
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise LoadError(f"importing {path} failed: {_first_line(e)}") from None
    return module


def _call(obj, where: str, args: dict) -> nn.Module:
    if not callable(obj):
        raise LoadError(f"{where} is not a class or a function")
    try:
        model = obj(**args)
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        raise LoadError(f"{where}(**{args}) failed: {_first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise LoadError(f"{where} returned a {type(model).__name__}, not a torch nn.Module")
    return model


def resolve_file(record: dict, code_root: str | None) -> Path:
    """Find a recorded code file again: under ``code_root`` (by the path it was given as,
    then by name), then where it was; its sha256 must match."""
    given, name, where = record.get("file", ""), record.get("file_name", ""), record.get("abs")
    candidates = []
    if code_root:  # the file by its name, then by ever longer tails of its old path
        root = Path(code_root)
        parts = Path(where or given).parts
        candidates += [root.joinpath(*parts[-k:]) for k in range(1, len(parts))]
        candidates.append(root / given)
    if where:
        candidates.append(Path(where))
    candidates.append(Path(given))
    for c in candidates:
        if c.is_file():
            if record.get("sha256") and sha256_of(c) != record["sha256"]:
                raise LoadError(
                    f"{c} changed since the model was saved (sha256 differs): the weights "
                    f"are rebuilt only on the code they were saved with -- restore that "
                    f"file (e.g. from version control) or point at a copy of it",
                    fix="code_root",
                )
            return c
    raise LoadError(
        f"the model's code {name or given} was not found (it was at {where or given})"
        f"; point at the folder that holds it",
        fix="code_root",
    )


def build(record: dict, *, trust: bool, code_root: str | None, by_user: bool) -> nn.Module:
    """The model a code record describes. ``by_user``: the user named this code just now
    (else a file did, and ``trust`` is needed)."""
    args = dict(record.get("args") or {})
    entry = record["entry"]
    if record.get("module"):
        where = f"{record['module']}:{entry}"
        if not (by_user or trust):
            raise UntrustedFile(
                where, "is model code named by a file (recipe or folder), not by you"
            )
        if code_root:
            _on_path(Path(code_root))
        try:
            module = importlib.import_module(record["module"])
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            raise LoadError(
                f"importing {record['module']} failed: {_first_line(e)}", fix="code_root"
            ) from None
    else:
        path = resolve_file(record, code_root) if not by_user else Path(record["file"])
        where = f"{path}:{entry}"
        if not path.is_file():
            raise LoadError(f"code file not found: {path}")
        if not (by_user or trust):
            raise UntrustedFile(
                path, "is model code named by a file (recipe or folder), not by you"
            )
        module = _import_file(path.resolve())
    obj = getattr(module, entry, None)
    if obj is None:
        raise LoadError(f"{where}: the code defines no '{entry}'")
    return _call(obj, where, args)


def record_for(kind: str, target: str, entry: str, args: dict) -> dict:
    """The data that finds this code again (see the module docstring)."""
    if kind == "module":
        return {"kind": "code", "module": target, "entry": entry, "args": args}
    p = Path(target)
    if not p.is_file():
        raise LoadError(f"code file not found: {target}")
    return {
        "kind": "code",
        "file": target,
        "file_name": p.name,
        "abs": str(p.resolve()),
        "sha256": sha256_of(p),
        "entry": entry,
        "args": args,
    }
