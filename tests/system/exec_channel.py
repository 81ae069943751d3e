"""Inside the pi-vm test's VM: runs the commands the host sends over a virtio serial port, one JSON line each.

The VM has no network; this is how the host drives it (what nsenter does for the nspawn container). Installed
as /usr/local/sbin/nh-test-exec by tests/system/vm.py, started by nh-test-exec.service. Test images only.
"""

import json
import os
import subprocess
import time

PORT = "/dev/virtio-ports/nh.exec"


def answer(request: dict) -> dict:
    try:
        done = subprocess.run(
            request["args"], input=request.get("input"), capture_output=True, text=True,
            cwd=request.get("cwd", "/root"), env=request["env"], timeout=request.get("timeout", 600), check=False,
        )  # fmt: skip
        return {"id": request["id"], "rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    except Exception as error:  # the host must get an answer whatever happened
        return {"id": request["id"], "rc": 127, "stdout": "", "stderr": f"{type(error).__name__}: {error}"}


def main() -> None:
    while not os.path.exists(PORT):
        time.sleep(0.5)
    fd = os.open(PORT, os.O_RDWR)
    pending = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:  # the host is not connected
            time.sleep(0.2)
            continue
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            data = (json.dumps(answer(json.loads(line))) + "\n").encode()
            while data:
                data = data[os.write(fd, data) :]


if __name__ == "__main__":
    main()
