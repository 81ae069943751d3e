"""The clock probe asks timedatectl and falls back to the kernel; a stand-in timedatectl shows both ways."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_agent.deploy.probes import SystemClock


def fake_timedatectl(folder: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = folder / "timedatectl"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(("answer", "synchronized"), [("yes", True), ("no", False)])
def test_timedatectl_answer_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, synchronized: bool
) -> None:
    fake_timedatectl(tmp_path, f'printf "NTP=yes\\nNTPSynchronized={answer}\\n"\n', monkeypatch)
    state = SystemClock().read()
    assert state.source == "timedatectl"
    assert state.synchronized is synchronized
    assert state.detail == "NTP service enabled: yes"


def test_without_systemd_the_kernel_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Like a container: timedatectl exists but cannot reach systemd.
    fake_timedatectl(tmp_path, 'echo "System has not been booted with systemd" >&2; exit 1\n', monkeypatch)
    state = SystemClock().read()
    assert state.source == "adjtimex"
    assert state.synchronized is not None and state.detail.startswith("kernel clock state ")
