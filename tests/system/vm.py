"""A Debian arm64 system booted in qemu-system-aarch64 (-M virt -cpu cortex-a72), driven over a serial channel.

The VM has no network. Commands reach it through a virtio serial port served by tests/system/exec_channel.py
inside (a test-only unit in the image), so tests/system/technician.py drives it exactly like the container.
A reboot inside ends qemu (-no-reboot); boot() starts it again on the same disk image.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.system.container import INSIDE_ENV, ContainerError, logged

CHANNEL_UNIT = """[Unit]
Description=Command channel of the pi-vm system test (test images only)

[Service]
ExecStart=/usr/bin/python3 /usr/local/sbin/nh-test-exec
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


def prepare_image(root: Path, image: Path, size: str = "6G") -> tuple[Path, Path]:
    """Add the boot pieces and the command channel to the tree, make the disk image; the kernel and initrd."""
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    channel = root / "usr/local/sbin/nh-test-exec"
    shutil.copy(Path(__file__).with_name("exec_channel.py"), channel)
    channel.chmod(0o755)
    (root / "etc/systemd/system/nh-test-exec.service").write_text(CHANNEL_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "nh-test-exec.service").symlink_to("/etc/systemd/system/nh-test-exec.service")
    kernel = image.with_name("vmlinuz")
    initrd = image.with_name("initrd.img")
    shutil.copy(sorted((root / "boot").glob("vmlinuz-*"))[-1], kernel)
    shutil.copy(sorted((root / "boot").glob("initrd.img-*"))[-1], initrd)
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), "-L", "root", str(image), size], check=True)
    return kernel, initrd


class VirtualMachine:
    def __init__(self, image: Path, kernel: Path, initrd: Path, log: Path, env: dict[str, str]) -> None:
        self.image, self.kernel, self.initrd, self.log = image, kernel, initrd, log
        self.env = dict(e.split("=", 1) for e in INSIDE_ENV) | env
        self.socket_path = image.with_name("exec.sock")
        self.qemu: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.ids = itertools.count(1)
        self.clock_note = "the VM has no network to reach an NTP server"

    def boot(self, timeout: float = 900) -> float:
        start = time.monotonic()
        self.socket_path.unlink(missing_ok=True)
        command = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048",
            "-accel", "tcg,thread=multi", "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{self.log.with_name('console.txt')}",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd),
            "-append", "root=/dev/vda rw console=ttyAMA0",
            "-drive", f"file={self.image},if=virtio,format=raw", "-nic", "none",
            "-device", "virtio-rng-pci", "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=exec,path={self.socket_path},server=on,wait=off",
            "-device", "virtserialport,chardev=exec,name=nh.exec",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.qemu = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while not self.socket_path.exists():
            self._alive()
            time.sleep(0.2)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.socket_path))
        self.buffer = b""
        while True:  # the channel answers once the system has started it
            self._alive()
            if time.monotonic() > deadline:
                raise ContainerError(f"the VM did not answer within {timeout:.0f} s (see console.txt)")
            try:
                self._call(["true"], None, "/", 10)
                break
            except TimeoutError:
                continue
        state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout).stdout.strip()
        if state not in ("running", "degraded"):
            raise ContainerError(f"the VM did not finish booting: {state!r}")
        return time.monotonic() - start

    def _alive(self) -> None:
        if self.qemu is None or self.qemu.poll() is not None:
            raise ContainerError(f"qemu is not running (see {self.log})")

    def _call(self, args: list[str], input: str | None, cwd: str, timeout: float) -> dict[str, object]:
        assert self.sock is not None
        ident = next(self.ids)
        request = {"id": ident, "args": args, "input": input, "cwd": cwd, "env": self.env, "timeout": timeout}
        self.sock.sendall((json.dumps(request) + "\n").encode())
        deadline = time.monotonic() + timeout + 30
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                reply: dict[str, object] = json.loads(line)
                if reply.get("id") == ident:
                    return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer to {args[:3]}")
            self.sock.settimeout(min(remaining, 5))
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                self._alive()
                continue
            if not chunk:
                raise ContainerError("the VM closed the command channel")
            self.buffer += chunk

    def run(self, *args: str, check: bool = True, timeout: float = 1800, input: str | None = None,
            cwd: str = "/root") -> subprocess.CompletedProcess[str]:  # fmt: skip
        reply = self._call(list(args), input, cwd, timeout)
        done = subprocess.CompletedProcess(
            list(args), int(str(reply["rc"])), str(reply["stdout"]), str(reply["stderr"])
        )
        return logged(done, args, self.log, check)

    def sh(self, script: str, check: bool = True, timeout: float = 1800) -> str:
        return self.run("bash", "-euo", "pipefail", "-c", script, check=check, timeout=timeout).stdout

    def wait_exit(self, timeout: float) -> int:
        assert self.qemu is not None
        code = self.qemu.wait(timeout=timeout)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        return code

    def stop(self, timeout: float = 120) -> None:
        """Power off through the channel; kill qemu only if it does not end in time."""
        if self.qemu is None or self.qemu.poll() is not None:
            return
        with contextlib.suppress(TimeoutError, ContainerError, OSError):
            self._call(["systemctl", "poweroff"], None, "/", 30)
        try:
            self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.qemu.kill()
            self.wait_exit(30)
