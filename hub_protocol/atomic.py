"""One way to replace a file on both sides: readers see the old content or the new, never half, and after a
power cut the new content is there or the old is (written to a temporary file beside it, flushed, renamed,
and the folder flushed so the rename itself survives)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, mode: int = 0o640, *, keep_mode: bool = False) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8). New files get ``mode``; with ``keep_mode`` an
    existing file keeps its own (an operator may have widened or narrowed it on purpose)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_mode and path.exists():
        mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
