"""The one file writer both sides use: modes, and a failed replace that leaves the old file and no debris."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub_protocol.atomic import write_atomic


def test_a_new_file_gets_the_mode_and_text_is_utf8(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "agent.toml"
    write_atomic(target, 'name = "Straße"\n', 0o600)
    assert target.read_bytes() == 'name = "Straße"\n'.encode()
    assert target.stat().st_mode & 0o777 == 0o600


def test_keep_mode_keeps_an_existing_files_mode_and_plain_writes_reset_it(tmp_path: Path) -> None:
    target = tmp_path / "acl"
    target.write_text("old")
    target.chmod(0o604)
    write_atomic(target, b"new", 0o600, keep_mode=True)
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o604
    write_atomic(target, b"newer", 0o640)
    assert target.read_text() == "newer" and target.stat().st_mode & 0o777 == 0o640


def test_a_failed_replace_leaves_the_old_content_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "grant.json"
    target.write_text("old")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grant.json"]
