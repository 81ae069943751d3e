"""`make pi-vm-test`: the system test's checks on arm64, in a Debian bookworm VM under qemu-system-aarch64.

    python3 -m tests.system.pi_vm [--keep]

What a Raspberry Pi OS Bookworm device runs, as near as a machine without a Pi gets: Debian bookworm arm64 with
linux-image-cloud-arm64 on qemu's virt machine with a Cortex-A72 (the Pi 4's core). The root filesystem is
built by debootstrap --arch=arm64 with the second stage emulated by qemu-user-static and cached; one full run
takes tens of minutes (everything is emulated, about 20x slower than a real Cortex-A72), so it is not in CI.
Also records `edge-agent count` frames per second inside the VM: that proves it runs, not how fast a Pi is.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from tests.system import arm64, rootfs
from tests.system.steps import Steps, begin, close_run
from tests.system.technician import Technician
from tests.system.vm import VirtualMachine, prepare_image

CHECKOUT = Path(__file__).resolve().parents[2]
ARCH = "aarch64"
# Measured on these machines: emulated code runs about 19x slower than native overall, 3.5x to 255x by operation.
EMULATION_NOTE = (
    "emulated: about 20x slower than a real Cortex-A72 overall (3.5x to 255x by operation), "
    "so it proves it runs, not how fast a Pi is"
)
COUNT_FRAMES = 150


def main() -> int:
    tools = ("debootstrap", "qemu-system-aarch64", "qemu-aarch64-static", "update-binfmts", "mke2fs")
    started = begin("pi-vm-test", __doc__.splitlines()[0], ARCH, tools)
    if isinstance(started, int):
        return started
    work, keep = started
    log = work / "log.txt"
    print(f"VM console: {work / 'console.txt'}", flush=True)
    steps = Steps()
    vm: VirtualMachine | None = None
    try:
        base = steps.timed("arm64 root filesystem (debootstrap, emulated 2nd stage; cached)",
                           lambda: arm64.arm64_rootfs(log))  # fmt: skip
        wheels = steps.timed("aarch64 wheels (pip download, cached)", lambda: rootfs.wheels(CHECKOUT, ARCH, log))
        root = work / "root"
        image = work / "disk.img"

        def make_image() -> tuple[Path, Path]:
            rootfs.working_copy(base, root, CHECKOUT)
            shutil.copytree(wheels, root / "var/cache/pip-wheels")
            kernel_initrd = prepare_image(root, image)
            shutil.rmtree(root)
            return kernel_initrd

        kernel, initrd = steps.timed("disk image (mke2fs -d)", make_image)
        env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/var/cache/pip-wheels"}
        vm = VirtualMachine(image, kernel, initrd, log, env)
        steps.timed("boot (qemu-system-aarch64 -M virt -cpu cortex-a72)", vm.boot)
        technician = Technician(vm, steps, patience=4)
        technician.run_all()
        steps.timed("edge-agent count frames/s (information)", lambda: count_speed(vm, steps))
    except Exception as error:  # any failure ends the run with its reason and a failing status
        steps.fail(f"{type(error).__name__}: {error}")
    finally:
        close_run(steps, vm, work, keep)
    print(json.dumps(steps.result(ARCH)))
    return 0 if steps.passed() else 1


def count_speed(vm: VirtualMachine, steps: Steps) -> None:
    """Frames per second of `edge-agent count` on the synthetic scene (640x480, motion detector), agent stopped."""
    vm.run("systemctl", "stop", "edge-agent")
    try:
        vm.run("/opt/edge-agent/venv/bin/python", "neighbourhood-hub/tests/system/scene_video.py", "/root/scene.avi",
               str(COUNT_FRAMES))  # fmt: skip
        out = vm.run("edge-agent", "count", "--line", "a=40,300,600,300", "--json", "/root/scene.avi").stdout
        fps = float(json.loads(out)["fps"])
    finally:
        vm.run("systemctl", "start", "edge-agent")
    steps.info["count_fps"] = {
        "emulated_cortex_a72": fps,
        "note": EMULATION_NOTE,
        "frames": COUNT_FRAMES,
        "size": "640x480",
        "detector": "motion",
    }
    print(f"   edge-agent count: {fps:.2f} frames/s ({EMULATION_NOTE})")


if __name__ == "__main__":
    sys.exit(main())
