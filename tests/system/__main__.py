"""`make system-test`: the hub and an edge agent installed on a real systemd, as docs/deploy.md tells a technician.

    python -m tests.system [--keep]

A Debian bookworm root filesystem (debootstrap, cached in /var/cache/neighbourhood-hub) is booted with systemd
in systemd-nspawn on a private network. Inside, scripts/install-hub.sh and scripts/install-edge-agent.sh run
as documented (the agent on the synthetic scene, no GPIO), then the checks below. Every step prints its time;
the last line is one JSON object; the exit status is 1 when a check fails, 0 when all pass or the host cannot
run the test (the reason is printed; SYSTEM_TEST_REQUIRED=1 turns that skip into a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from tests.system import rootfs
from tests.system.container import Container
from tests.system.steps import Steps, skip_reason
from tests.system.technician import Technician

CHECKOUT = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("SYSTEM_TEST_WORK", "/var/tmp"))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.system", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the container's folder for a look afterwards")
    args = parser.parse_args()
    arch = platform.machine()
    reason = skip_reason()
    if reason:
        print(f"system-test SKIPPED: {reason}")
        print(json.dumps({"arch": arch, "skipped": reason}))
        return 1 if os.environ.get("SYSTEM_TEST_REQUIRED") == "1" else 0

    work = Path(tempfile.mkdtemp(prefix="nh-system-test-", dir=WORK))
    log = work / "log.txt"
    print(f"system-test on {arch}: log in {log}", flush=True)
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
        if container is not None:
            steps.timed("shutdown", container.stop)
        shutil.copy(log, WORK / "nh-system-test-last.log")
        print(f"log: {WORK / 'nh-system-test-last.log'}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    print(json.dumps(steps.result(arch)))
    return 0 if steps.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
