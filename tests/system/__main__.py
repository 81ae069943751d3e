"""`make system-test`: the hub and an edge agent installed on a real systemd, as docs/deploy.md tells a technician.

    python3 -m tests.system [--keep]

A Debian bookworm root filesystem (debootstrap, cached in /var/cache/neighbourhood-hub) is booted with systemd
in systemd-nspawn on a private network. Inside, scripts/install-hub.sh and scripts/install-edge-agent.sh run
as documented (the agent on the synthetic scene, no GPIO), then the checks below. Every step prints its time;
the last line is one JSON object; the exit status is 1 when a check fails, 0 when all pass or the host cannot
run the test (the reason is printed; SYSTEM_TEST_REQUIRED=1 turns that skip into a failure).
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from tests.system import rootfs
from tests.system.container import Container
from tests.system.steps import NSPAWN_TOOLS, Steps, begin, close_run
from tests.system.technician import Technician

CHECKOUT = Path(__file__).resolve().parents[2]


def main() -> int:
    arch = platform.machine()
    started = begin("system-test", __doc__.splitlines()[0], arch, NSPAWN_TOOLS)
    if isinstance(started, int):
        return started
    work, keep = started
    log = work / "log.txt"
    steps = Steps()
    container: Container | None = None
    try:
        base = steps.timed("root filesystem (debootstrap, cached)", lambda: rootfs.rootfs(arch, log))
        wheels = steps.timed("wheels (pip download, cached)", lambda: rootfs.wheels(CHECKOUT, arch, log))
        root = work / "root"
        steps.timed("copy of the root filesystem", lambda: rootfs.working_copy(base, root, CHECKOUT))
        container = Container(
            root, log, binds={wheels: "/var/cache/pip-wheels"},
            env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/var/cache/pip-wheels"},
        )  # fmt: skip
        steps.timed("boot", container.boot)
        Technician(container, steps).run_all()
    except Exception as error:  # any failure ends the run with its reason and a failing status
        steps.fail(f"{type(error).__name__}: {error}")
    finally:
        close_run(steps, container, work, keep)
    print(json.dumps(steps.result(arch)))
    return 0 if steps.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
