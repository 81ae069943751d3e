"""The arm64 root filesystem for `make pi-vm-test`: debootstrap's second stage runs emulated (qemu-user-static)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.system import rootfs

KERNEL = "linux-image-cloud-arm64"  # virtio drivers as modules in its initrd; boots on qemu's virt machine
BINFMT = Path("/proc/sys/fs/binfmt_misc")


@contextlib.contextmanager
def aarch64_binaries() -> Iterator[None]:
    """Let this host run aarch64 programs through qemu-user-static, and undo exactly what was done."""
    mounted = enabled = False
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
        mounted = True
    try:
        if not (BINFMT / "qemu-aarch64").exists():
            subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
            enabled = True
        yield
    finally:
        if enabled:
            subprocess.run(["update-binfmts", "--disable", "qemu-aarch64"], check=False)
        if mounted:
            subprocess.run(["umount", str(BINFMT)], check=False)


def arm64_rootfs(log: Path) -> Path:
    """The cached arm64 tree with a kernel and initrd in /boot, built in two stages if missing."""
    root = rootfs.rootfs("aarch64", log, extra=(KERNEL, "e2fsprogs"))
    if (root.parent / ".complete").exists():
        return root
    with aarch64_binaries(), log.open("ab") as out:
        subprocess.run(["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"],
                       check=True, stdout=out, stderr=out)  # fmt: skip
    rootfs.mark_complete(root)
    return root
