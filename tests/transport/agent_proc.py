"""A real agent process for fault tests: runs the Transport and emits numbered events.

Usage: python -m tests.transport.agent_proc CONFIG_JSON COUNT INTERVAL_S
Prints ``<boot> <seq>`` after each emit returned (the event is durable from then on), ``emitted`` when done,
and ``drained`` once the hub acknowledged everything; stops gracefully on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.transport.service import Transport
from hub_protocol.topics import Channel
from tests.transport.helpers import alarm_fields


def main() -> int:
    config = AgentConfig.model_validate_json(Path(sys.argv[1]).read_text())
    count, interval = int(sys.argv[2]), float(sys.argv[3])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    transport = Transport(config)
    transport.start()
    for n in range(count):
        if stop.is_set():
            break
        seq = transport.sink.emit(Channel.ALARM, alarm_fields(n))
        print(transport.boot, seq, flush=True)
        if interval:
            time.sleep(interval)
    print("emitted", flush=True)
    drained = False
    while not stop.wait(0.05):
        if not drained and transport.outbox.stats().depth == 0:
            print("drained", flush=True)
            drained = True
    transport.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
