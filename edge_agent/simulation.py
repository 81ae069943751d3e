"""A simulated world around a real agent, for the demo: mock pins, doors that open, a resident who types.

Only ``edge-agent run --simulate`` uses this. The agent code is the real one; what is simulated is what a
Raspberry Pi would have around it: the wiring (gpiozero's MockFactory) and the people at the locker bank.
Codes arrive one per line on standard input (the demo hands over what the hub issued), so nothing is
reachable from the network that a real device would not have.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import IO, Any

from gpiozero.pins.mock import MockFactory

from edge_agent.config import AgentConfig
from edge_agent.lockers import sim

log = logging.getLogger(__name__)


class SimulatedWorld:
    def __init__(self, config: AgentConfig, codes: IO[str] | None = None) -> None:
        self.factory = MockFactory()
        self._codes = codes if codes is not None else sys.stdin
        self.doors: sim.MockDoors | None = None
        self.matrix: sim.KeyMatrix | None = None
        if config.lockers is not None:
            self.doors, self.matrix = sim.prepare(self.factory, config.lockers)
        self.resident: sim.ScriptedResident | None = None
        self._reader: threading.Thread | None = None

    @property
    def pin_factory(self) -> Any:
        return self.factory

    def close_doors(self) -> None:
        """Call after the bank claimed its pins (setting a pull-up resets a mock pin) and before it starts."""
        if self.doors is not None:
            self.doors.close_all()

    def start(self, bank: Any) -> None:
        if bank is None or self.doors is None:
            return
        self.resident = sim.ScriptedResident(bank, self.doors, self.matrix)
        self.resident.start()
        self._reader = threading.Thread(target=self._read_codes, name="sim-codes", daemon=True)
        self._reader.start()

    def _read_codes(self) -> None:
        for line in self._codes:
            code = line.strip()
            if code.isdigit() and self.resident is not None:
                self.resident.give(code)

    def stop(self) -> None:
        if self.resident is not None:
            self.resident.stop()
