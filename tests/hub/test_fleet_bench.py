"""The fleet benchmark at a tiny scale: a hub killed with SIGKILL and restarted loses and doubles nothing.

``bench/fleet.py`` runs real ``hub-server serve`` processes behind a private Mosquitto, with virtual devices
that keep an outbox, delete only what the hub acknowledged and send the rest again. Lost and doubled events
are counted from the store's ``events`` table against what the devices emitted, so this fails whenever the
hub acknowledges an event it did not store, or stores one event twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_killed_hub_loses_and_doubles_nothing() -> None:
    store = postgres.store_under_test()
    if store == "postgresql":
        postgres.require()
    command = [
        sys.executable,
        str(ROOT / "bench" / "fleet.py"),
        *("--store", store, "--hubs", "1", "--devices", "20", "--minutes", "0.4", "--rate", "40"),
        *("--profile", "synthetic", "--ack-timeout", "3", "--down-s", "1", "--drain-s", "30", "--workers", "1"),
        *("--reboots", "0.1", "--drops", "0.1", "--seed", "3"),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=140, check=False, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["events_sent"] >= 500, figures
    assert figures["lost"] == 0, figures
    assert figures["duplicates"] == 0, figures
    assert figures["events_stored"] == figures["events_sent"], figures
    assert figures["unacknowledged_at_end"] == 0, figures
    # The kill happened while devices were sending, and every one of them got its acks again.
    assert figures["devices_served_by_killed"] > 0, figures
    assert figures["failover_s"] is not None, figures
