"""A Debian system booted with systemd in systemd-nspawn, and commands run inside it.

On a host whose PID 1 is not systemd, nspawn needs --keep-unit --register=no (there is no host manager to
make a scope or register a machine), and machinectl cannot reach the container: commands enter its
namespaces with nsenter instead, aimed at the container's PID 1 (the child of the nspawn process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Protocol

# The environment of commands inside: nothing from the host's (proxies, CA bundles, pip settings) leaks in.
INSIDE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]


class ContainerError(RuntimeError):
    pass


class System(Protocol):
    """A booted system the technician's steps run in: this container, or the arm64 VM (tests/system/vm.py)."""

    clock_note: str  # why its clock cannot be NTP-synchronised here, or "" when it should be

    def boot(self, timeout: float = ...) -> float: ...
    def run(self, *args: str, check: bool = ..., timeout: float = ..., input: str | None = ...,
            cwd: str = ...) -> subprocess.CompletedProcess[str]: ...  # fmt: skip
    def sh(self, script: str, check: bool = ..., timeout: float = ...) -> str: ...
    def wait_exit(self, timeout: float) -> int: ...
    def stop(self, timeout: float = ...) -> None: ...


def host_clock_synchronised() -> bool:
    """adjtimex(2): TIME_ERROR (5) means the kernel clock is not NTP-synchronised."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return int(libc.adjtimex(ctypes.create_string_buffer(512))) != 5


class Container:
    def __init__(self, root: Path, log: Path, binds: dict[Path, str], env: dict[str, str]) -> None:
        self.root = root
        self.log = log
        self.binds = binds
        self.env = [f"{k}={v}" for k, v in env.items()]
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0
        synced = host_clock_synchronised()
        self.clock_note = "" if synced else "this host's kernel clock is not NTP-synchronised (the container shares it)"

    def boot(self, timeout: float = 120) -> float:
        """Boot, wait until the system has finished starting; the seconds it took."""
        start = time.monotonic()
        command = ["systemd-nspawn", "-D", str(self.root), "-b", "--keep-unit", "--register=no",
                   "--private-network", "--console=passive", "--machine=nh-system-test"]  # fmt: skip
        command += [f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()]
        with self.log.open("ab") as out:
            self.nspawn = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self.leader = self._find_leader(timeout)
        state = ""
        deadline = time.monotonic() + timeout
        while not state and time.monotonic() < deadline:  # empty while the system bus is not up yet
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout).stdout.strip()
            time.sleep(0 if state else 0.5)
        if state not in ("running", "degraded"):
            raise ContainerError(f"the container did not finish booting: {state!r} (see {self.log})")
        return time.monotonic() - start

    def _find_leader(self, timeout: float) -> int:
        assert self.nspawn is not None
        host_mnt = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited with {self.nspawn.returncode} (see {self.log})")
            for child in _children(self.nspawn.pid):
                # Only a process in another mount namespace is the container's init: entering anything else
                # (a helper process nspawn forks) would run the commands on the host.
                try:
                    if os.readlink(f"/proc/{child}/ns/mnt") != host_mnt and _comm(child) in ("systemd", "init"):
                        return child
                except OSError:
                    continue
            time.sleep(0.2)
        raise ContainerError("no container init appeared under systemd-nspawn")

    def run(self, *args: str, check: bool = True, timeout: float = 600, input: str | None = None,
            cwd: str = "/root") -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run a command inside (root, clean environment); output is captured and also written to the log."""
        if not self.leader:
            raise ContainerError("the container is not running")
        command = [
            "nsenter",
            "-t",
            str(self.leader),
            "-a",
            "-w",
            "env",
            "-i",
            f"--chdir={cwd}",
            *INSIDE_ENV,
            *self.env,
            *args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=input, check=False)
        return logged(done, args, self.log, check)

    def sh(self, script: str, check: bool = True, timeout: float = 600) -> str:
        return self.run("bash", "-euo", "pipefail", "-c", script, check=check, timeout=timeout).stdout

    def wait_exit(self, timeout: float) -> int:
        """Wait for nspawn to end (a reboot or poweroff inside ends it); its exit status."""
        assert self.nspawn is not None
        code = self.nspawn.wait(timeout=timeout)
        self.leader = 0
        return code

    def stop(self, timeout: float = 60) -> None:
        """Shut the container down cleanly (SIGTERM to nspawn), killing it only if that does not end it."""
        if self.nspawn is None or self.nspawn.poll() is not None:
            self.leader = 0
            return
        self.nspawn.send_signal(signal.SIGTERM)
        try:
            self.nspawn.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.nspawn.kill()
            self.nspawn.wait(timeout=30)
        self.leader = 0


def logged(
    done: subprocess.CompletedProcess[str], args: tuple[str, ...], log: Path, check: bool
) -> subprocess.CompletedProcess[str]:
    """A command run inside, written to the log; with `check`, a failure raised with the end of its output."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}  (exit {done.returncode})\n{done.stdout}{done.stderr}")
    if check and done.returncode != 0:
        tail = "\n".join(f"{done.stdout}{done.stderr}".splitlines()[-15:])
        raise ContainerError(f"{' '.join(args)[:200]} exited with {done.returncode}; the output ends:\n{tail}")
    return done


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()
