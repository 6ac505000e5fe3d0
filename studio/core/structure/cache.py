"""A cache of structure maps, keyed by what the map depends on, so opening an architecture
the studio has mapped before costs a file read instead of a trace.

The key (``structure_key``) hashes, without running the model: the input size; every
module's name, class, ``extra_repr`` (kernel, stride, groups ...) and simple settings
(``self.use_shortcut = False``: numbers, strings, flags); every parameter's and
buffer's name and shape; for each class, its forward's bytecode and the size and
modification time of the file that defines it (a helper function edited next to the class
changes the key); the versions of the studio, torch and Torch-Pruning, and the
studio's own mapping code (file sizes and times). Weights are not
in it: the map does not depend on them.

Entries are JSON (``StructureMap.to_state``; arrays as base64 of int32), never pickles: a
cache file is data, whoever wrote it. One that does not parse or does not describe the model
is a miss, and is overwritten. The cache lives in ``$PRUNING_STUDIO_CACHE`` (``off``
disables it), else ``$XDG_CACHE_HOME/pruning-studio/structure`` (``~/.cache/...``); it keeps
the ``MAX_ENTRIES`` most recently used maps and removes only its own files. A small
in-memory cache serves reopening in the same process.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path

from torch import nn

from studio.core.io import atomic_write_text
from studio.core.structure.map import StructureMap

log = logging.getLogger(__name__)
MAX_ENTRIES = 64
_MEMORY: OrderedDict[str, dict] = OrderedDict()
_MEMORY_ENTRIES = 8
_NAME = re.compile(r"^map-[0-9a-f]{32}\.json$")  # the cache's own files, and nothing else


def cache_dir() -> Path | None:
    env = os.environ.get("PRUNING_STUDIO_CACHE")
    if env:
        return None if env.lower() in ("off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pruning-studio" / "structure"


def _code_digest(code, h) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        if inspect.iscode(c):
            _code_digest(c, h)
        else:
            h.update(repr(c).encode()[:200])


def _class_digest(cls: type, seen: dict) -> str:
    if cls in seen:
        return seen[cls]
    h = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}".encode())
    fwd = getattr(cls, "forward", None)
    if fwd is not None and hasattr(fwd, "__code__"):
        _code_digest(fwd.__code__, h)
    try:
        f = inspect.getsourcefile(cls)
        st = os.stat(f) if f else None
        if st is not None:
            h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    except (TypeError, OSError):
        pass
    seen[cls] = h.hexdigest()
    return seen[cls]


_PLAIN = (bool, int, float, str, type(None))


def _plain(v, depth: int = 0):
    """``v`` if it is simple data (numbers, strings, flags, and short lists, tuples and
    dicts of them), else None."""
    if isinstance(v, _PLAIN):
        return v
    if depth >= 3:
        return None
    if isinstance(v, (tuple, list)) and len(v) <= 64:
        items = [_plain(x, depth + 1) for x in v]
        return items if all(i is not None or x is None for i, x in zip(items, v)) else None
    if isinstance(v, dict) and len(v) <= 64 and all(isinstance(k, str) for k in v):
        items = {k: _plain(x, depth + 1) for k, x in v.items()}
        ok = all(items[k] is not None or v[k] is None for k in v)
        return dict(sorted(items.items())) if ok else None
    return None


def _plain_attrs(m: nn.Module) -> str:
    """A module's own simple settings (``self.use_shortcut = False``, ``self.cfg = {...}``):
    forward code may branch on them although no shape shows it."""
    out = []
    for k, v in sorted(vars(m).items()):
        if k.startswith("_") or k == "training":
            continue
        p = _plain(v)
        if p is not None or v is None:
            out.append(f"{k}={p!r}")
    return ",".join(out)


def _studio_code() -> str:
    """The mapping code itself (size and time of each file), so a changed studio never
    reads maps an older one wrote."""
    here = Path(__file__).resolve().parents[1]
    parts = []
    for folder in ("structure", "plan"):
        for f in sorted((here / folder).glob("*.py")):
            try:
                st = f.stat()
            except OSError:
                continue
            parts.append(f"{folder}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def structure_key(model: nn.Module, input_size) -> str:
    """What the structure map of ``model`` at ``input_size`` depends on, hashed."""
    import torch

    import studio
    from studio.core.structure.depgraph import library_version

    h = hashlib.sha256()
    h.update(
        json.dumps(
            [
                list(int(v) for v in input_size),
                getattr(studio, "__version__", ""),
                torch.__version__,
                library_version(),
                _studio_code(),
            ]
        ).encode()
    )
    seen: dict = {}
    for name, m in model.named_modules():
        try:
            extra = m.extra_repr()
        except Exception:  # noqa: BLE001 - a user's extra_repr may fail; the rest still keys
            extra = "?"
        h.update(f"|{name}|{_class_digest(type(m), seen)}|{extra}|{_plain_attrs(m)}".encode())
        for pn, p in m.named_parameters(recurse=False):
            h.update(f"p{pn}{tuple(p.shape)}{p.requires_grad}".encode())
        for bn, b in m.named_buffers(recurse=False):
            h.update(f"b{bn}{tuple(b.shape) if b is not None else None}".encode())
    return h.hexdigest()[:32]


def _path(key: str) -> Path | None:
    d = cache_dir()
    return None if d is None else d / f"map-{key}.json"


def lookup(model: nn.Module, input_size, arch: str, key: str | None = None):
    """The cached map of ``model`` (relabelled ``arch``), or None."""
    key = key or structure_key(model, input_size)
    state = _MEMORY.get(key)
    if state is None:
        p = _path(key)
        if p is None or not p.is_file():
            return None
        try:
            state = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
            return None  # a miss: the map is built again and this entry rewritten
    try:
        s = StructureMap.from_state(state)
    except Exception as e:  # noqa: BLE001 - a damaged entry is a miss, rebuilt and rewritten
        log.info("structure cache entry %s unusable: %s", key, e)
        return None
    if not _fits(s, model, input_size):
        return None
    _remember(key, state)
    p = _path(key)
    if p is not None and p.is_file():
        try:
            os.utime(p)  # most recently used
        except OSError:
            pass
    s.arch = arch
    return s


def _fits(s: StructureMap, model: nn.Module, input_size) -> bool:
    """Checks that the entry describes this model: its input size, exactly the layers and
    loose parameters the model has, with their widths, and the model's parameter count."""
    from studio.core.structure.counting import _static_rows

    if tuple(s.input_size) != tuple(int(v) for v in input_size):
        return False
    rows = _static_rows(model, s.loose_dims)
    if [r.name for r in s.table.rows] != list(rows):
        return False
    for r in s.table.rows:
        want = rows[r.name]
        if (r.kind, r.cin, r.cout, r.groups, r.fixed, r.per_ch) != (
            want.kind,
            want.cin,
            want.cout,
            want.groups,
            want.fixed,
            want.per_ch,
        ):
            return False
    return s.original.params == sum(p.numel() for p in model.parameters())


def _remember(key: str, state: dict) -> None:
    _MEMORY[key] = state
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > _MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)


def store(s: StructureMap, model: nn.Module, key: str | None = None) -> None:
    """Keep ``s`` for the next time this structure is opened. Never fails the caller."""
    key = key or structure_key(model, s.input_size)
    state = s.to_state()
    _remember(key, state)
    p = _path(key)
    if p is None:
        return
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p, json.dumps(state, separators=(",", ":")))
        _trim(p.parent)
    except Exception as e:  # noqa: BLE001 - a cache that cannot be written is only slower
        log.info("structure cache not written (%s): %s", p, e)


def _trim(folder: Path) -> None:
    own = [f for f in folder.iterdir() if _NAME.match(f.name) and f.is_file()]
    if len(own) <= MAX_ENTRIES:
        return
    own.sort(key=lambda f: f.stat().st_mtime_ns)
    for f in own[: len(own) - MAX_ENTRIES]:
        try:
            f.unlink()
        except OSError:
            pass


def clear_memory() -> None:
    _MEMORY.clear()
