"""Debian root filesystems and pip wheels for the system tests, built once and cached outside the checkout.

Each cache entry's name is a hash of everything that goes into it (suite, architecture, mirror, package list,
dependency list), so a change of any of them builds a new entry and an old one is never silently reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

CACHE = Path(os.environ.get("SYSTEM_TEST_CACHE", "/var/cache/neighbourhood-hub/system-test"))
SUITE = "bookworm"
# What install-hub.sh and install-edge-agent.sh would fetch with apt on a networked machine; the container
# runs on a private network, so they must already be there (the scripts then report them as present).
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "ca-certificates", "sudo",
    "mosquitto", "mosquitto-clients", "openssl", "procps",
]  # fmt: skip
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def host_mirror() -> str:
    """The Debian archive this host's apt already uses (deb822 or one-line sources), else deb.debian.org."""
    texts = [p.read_text(errors="replace") for p in sorted(Path("/etc/apt").glob("sources.list*/**/*")) if p.is_file()]
    main = Path("/etc/apt/sources.list")
    if main.is_file():
        texts.append(main.read_text(errors="replace"))
    for text in texts:
        for match in re.finditer(r"(?:URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            uri = match.group(1).rstrip("/")
            if "security" not in uri and "/debian" in uri:
                return uri
    return DEFAULT_MIRROR


def prune(keep: Path) -> None:
    """Older entries of the same kind (rootfs-ARCH-*, wheels-ARCH-*): a changed input made them obsolete."""
    kind = keep.name.rsplit("-", 1)[0]
    for entry in CACHE.glob(f"{kind}-*"):
        if entry != keep:
            shutil.rmtree(entry, ignore_errors=True)


def key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def rootfs(arch: str, log: Path, extra: tuple[str, ...] = ()) -> Path:
    """A cached minbase root filesystem for `arch` (x86_64 or aarch64), built with debootstrap if missing."""
    mirror = host_mirror()
    packages = sorted({*PACKAGES, *extra})
    entry = CACHE / f"rootfs-{arch}-{key(SUITE, arch, mirror, packages, 1)}"
    done = entry / ".complete"
    if done.exists():
        return entry / "root"
    shutil.rmtree(entry, ignore_errors=True)  # an unfinished build
    prune(entry)
    entry.mkdir(parents=True)
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", f"--arch={DEBIAN_ARCH[arch]}"]
    if arch != platform.machine():
        command.append("--foreign")  # the second stage runs emulated, see pi_vm.py
    with log.open("ab") as out:
        subprocess.run([*command, SUITE, str(entry / "root"), mirror], check=True, stdout=out, stderr=out)
    if arch == platform.machine():
        done.write_text(mirror + "\n")
    return entry / "root"


def mark_complete(root: Path) -> None:
    (root.parent / ".complete").write_text("built\n")


def dependencies(checkout: Path) -> list[str]:
    project = tomllib.loads((checkout / "pyproject.toml").read_text())
    build: list[str] = project["build-system"]["requires"]
    runtime: list[str] = project["project"]["dependencies"]
    return [*runtime, *build, "pip", "wheel"]


def wheels(checkout: Path, arch: str, log: Path) -> Path:
    """Wheels of every dependency for CPython 3.11 on `arch`: the container installs offline from them."""
    requirements = dependencies(checkout)
    entry = CACHE / f"wheels-{arch}-{key(requirements, arch, 1)}"
    if (entry / ".complete").exists():
        return entry
    shutil.rmtree(entry, ignore_errors=True)  # an unfinished build
    prune(entry)
    entry.mkdir(parents=True)
    command = ["python3", "-m", "pip", "download", "--quiet", "--dest", str(entry), "--only-binary=:all:"]
    if arch != platform.machine():
        command += ["--python-version", "3.11", "--implementation", "cp"]
        command += [f"--platform={tag}_{arch}" for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014")]
    # setuptools is pure Python; --only-binary works for it too (it ships wheels).
    with log.open("ab") as out:
        subprocess.run([*command, *requirements], check=True, stdout=out, stderr=out)
    (entry / ".complete").write_text("\n".join(requirements) + "\n")
    return entry


def working_copy(base: Path, root: Path, checkout: Path) -> None:
    """A private copy of the cached tree, the hub's name, and this checkout as a technician's clone."""
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
    (root / "etc/hostname").write_text("nh-system-test\n")
    with (root / "etc/hosts").open("a") as hosts:
        hosts.write("127.0.1.1 nh-system-test\n127.0.0.1 hub.test\n")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=checkout, capture_output=True, check=True,
    ).stdout  # fmt: skip
    clone = root / "root/neighbourhood-hub"
    clone.mkdir(parents=True)
    for name in filter(None, files.decode().split("\0")):
        source = checkout / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
