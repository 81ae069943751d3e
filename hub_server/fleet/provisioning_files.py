"""Files changed whole or not at all for provisioning: atomic writes, and an undo that puts everything back."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hub_protocol.atomic import write_atomic
from hub_server.store.provisioning import ProvisioningError


@contextlib.contextmanager
def io_step(what: str) -> Iterator[None]:
    """An expected I/O failure of ``what`` as a one-line ``ProvisioningError`` naming the file."""
    try:
        yield
    except (OSError, UnicodeError, subprocess.SubprocessError) as exc:
        if isinstance(exc, OSError) and exc.strerror:
            where = f" {exc.filename}" if exc.filename else ""
            reason = f"{exc.strerror}{where}"
        else:
            reason = str(exc) or type(exc).__name__
        raise ProvisioningError(f"cannot {what}: {reason}") from None


@dataclass(slots=True)
class Undo:
    """Files as they were before a change, put back if it fails; folders it created, removed again; and the
    steps that undo changes made elsewhere (accounts in the broker's plugin), run last first."""

    files: dict[Path, bytes | None] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)
    steps: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def keep(self, path: Path) -> None:
        if path not in self.files:
            with io_step(f"read {path}"):
                self.files[path] = path.read_bytes() if path.exists() else None

    def folder(self, path: Path) -> None:
        """Create ``path`` (private) and remember to remove it, unless it was there already."""
        if not path.exists():
            with io_step("create the folder for the device's files"):
                path.mkdir(parents=True, mode=0o700)
            self.folders.append(path)

    def step(self, what: str, action: Callable[[], object]) -> None:
        """Remember ``action`` to undo a change made elsewhere; ``what`` names it if the undo fails."""
        self.steps.append((what, action))

    def restore(self) -> None:
        failed: list[str] = []
        for what, action in reversed(self.steps):
            try:
                action()
            except Exception as exc:  # every step is tried, and the files put back, before reporting
                failed.append(f"cannot undo {what}: {exc}")
        for path, content in self.files.items():
            try:
                if content is None:
                    if path.exists():  # False too when a parent is not a folder: then there is nothing to remove
                        path.unlink()
                elif not path.exists() or path.read_bytes() != content:
                    write_atomic(path, content, 0o600, keep_mode=True)
            except OSError as exc:
                failed.append(f"cannot put back {path}: {exc}")
        for folder in reversed(self.folders):
            shutil.rmtree(folder, ignore_errors=True)
        if failed:
            raise ProvisioningError(f"after a failed change: {'; '.join(failed)}")
