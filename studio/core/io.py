"""Atomic file writes: a temporary file in the same folder, then a rename. Files get the
permissions the user's umask gives (not the 0600 of a temporary file), and a failed write
(disk full, read-only folder) becomes one ``OutputError`` line naming the file."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from studio.core.errors import OutputError


def _umask() -> int:
    mask = os.umask(0o022)  # read it: the only portable way is to set and restore it
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import (os.umask is process-wide, not thread-safe)
FILE_MODE = 0o666 & ~UMASK
DIR_MODE = 0o777 & ~UMASK


def os_error(e: OSError, path, doing: str = "write") -> OutputError:
    """One line for a failed write: what, where, why."""
    why = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EDQUOT: "disk quota exceeded",
        errno.ENAMETOOLONG: "file name too long",
        errno.EISDIR: "it is a folder",
        errno.ENOTDIR: "a part of the path is a file",
    }.get(e.errno, e.strerror or str(e) or type(e).__name__)
    return OutputError(f"cannot {doing} {path}: {why}")


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise os_error(e, path) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_text(path, what: str, limit: int) -> str:
    """A small input file as text, or one line saying why not (missing, a folder, too
    large to be what it claims, not UTF-8)."""
    from studio.core.errors import InputError

    path = Path(path)
    try:
        if path.is_dir():
            raise InputError(f"{path} is a folder, not a {what} file")
        size = path.stat().st_size
        if size > limit:
            raise InputError(
                f"{path} is {size / 2**20:.1f} MiB: too large for a {what} "
                f"(at most {limit / 2**20:.0f} MiB)"
            )
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a {what}: not UTF-8 text") from None
    except OSError as e:
        raise os_error(e, path, "read") from None
