"""Simulated edge agents for the demo: the real agent program, one child process each.

Each agent runs ``edge-agent run --simulate`` with gpiozero's mock pin factory, so the locker bank runs on
mock pins and the camera is a generated scene (or a video file). Children get SIGTERM on stop, which the
agent answers like a systemd stop: it publishes ``offline`` and exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread


@dataclass
class AgentProcess:
    device: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    _reader: Thread | None = None

    def start(self) -> None:
        env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(self.config_path), "--simulate"],
            stdin=subprocess.PIPE,  # codes for the scripted resident, one per line (see edge_agent.simulation)
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the demo only; the demo stops agents in order
        )
        self._reader = Thread(target=self._read_log, name=f"log-{self.device}", daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            for raw in self.process.stderr:
                line = raw.decode(errors="replace").rstrip()
                log.write(line + "\n")
                log.flush()
                self._tail.append(line)

    def type_code(self, code: str) -> None:
        """Hand a code to the simulated person at this agent's keypad."""
        if self.process is None or self.process.stdin is None:
            raise RuntimeError(f"agent {self.device} is not running")
        self.process.stdin.write(code.encode() + b"\n")
        self.process.stdin.flush()

    def failure(self) -> str | None:
        """A one-line reason when the agent died on its own (a crash, not a stop we asked for)."""
        if self.process is None or self.process.poll() is None:
            return None
        if self.process.returncode in (0, -signal.SIGTERM):
            return None
        last = next((line for line in reversed(self._tail) if line.strip()), "no output")
        return f"agent {self.device} exited with status {self.process.returncode}: {last}"

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
