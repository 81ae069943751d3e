"""A full disk as SQLite shows it, injected into one connection: writes fail with "database or disk is
full" and SQLite has already rolled the transaction back, so a following ROLLBACK fails as well."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FULL = "database or disk is full"


@contextlib.contextmanager
def tiny_tmpfs(mount: Path, size: int) -> Iterator[Path]:
    """A real small disk (tmpfs of ``size`` bytes) at ``mount``: needs the right to mount (root in CI's
    container); the test is skipped with the reason otherwise."""
    mount.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here ({done.stderr.strip() or done.returncode}): run as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class FullDisk:
    """Wraps a connection; set ``full`` to make its writes fail until it is cleared again."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.full = False
        self.refused = 0

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self._run(self.conn, sql, params)

    def cursor(self) -> _Cursor:
        return _Cursor(self.conn.cursor(), self)

    def _run(self, target: Any, sql: str, params: Any) -> sqlite3.Cursor:
        if self.full:
            statement = sql.lstrip().upper()
            if statement.startswith("COMMIT") or (statement.startswith(_WRITES) and not self.conn.in_transaction):
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                self.refused += 1
                raise sqlite3.OperationalError(FULL)
        result: sqlite3.Cursor = target.execute(sql, params)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor, disk: FullDisk) -> None:
        self._cursor = cursor
        self._disk = disk

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self._disk._run(self._cursor, sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def damage_file(path: Path) -> None:
    """What a failing card leaves after a power cut: every page of a database partly overwritten."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file first
    conn.close()
    data = bytearray(path.read_bytes())
    for offset in range(0, len(data), 4096):
        data[offset + 16 : offset + 116] = b"\xa5" * 100
    path.write_bytes(bytes(data))
