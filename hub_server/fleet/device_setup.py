"""Opening a device's setup page from the hub: a one-time code for the operator, its hash for the device.

The code is returned once (to the API caller or the device page) and never stored or logged; the device
gets ``open-setup`` with the code's SHA-256 and the page's duration. Audited as ``device.open-setup``.
"""

from __future__ import annotations

from datetime import timedelta

from hub_protocol.commands import OpenSetup, command_header, new_setup_code, setup_code_hash
from hub_server.accounts import audit
from hub_server.ingest.service import Ingest
from hub_server.store.db import Database

COMMAND_TTL = timedelta(minutes=10)
DEFAULT_MINUTES = 30


def open_setup(ingest: Ingest, db: Database, device: str, minutes: int, actor: str) -> tuple[OpenSetup, str]:
    """Send ``open-setup``; returns the command and the code to show. Raises LookupError (unknown device),
    RuntimeError (broker not connected). Blocks on the database: call from a worker thread."""
    code = new_setup_code()
    header = command_header(device, COMMAND_TTL, actor, prefix="setup")
    command = OpenSetup(action="open-setup", **header, minutes=minutes, code_sha256=setup_code_hash(code))
    ingest.publish_command(command)
    with db.write() as conn:
        audit.record(conn, actor, "device.open-setup", f"device:{device}", {"command": command.id, "minutes": minutes})
    return command, code
