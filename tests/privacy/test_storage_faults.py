"""Counting windows and the privacy budget on a bad storage day: a full disk, a damaged ledger file."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.events import MemorySink
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import BudgetLedger
from edge_agent.privacy.reporter import LEDGER_FILE, FlowReporter
from edge_agent.storage import StorageWatch
from hub_protocol.topics import Channel
from tests.storage_faults import FullDisk, damage_file

T0 = datetime(2026, 3, 2, 7, 58, 12, tzinfo=UTC)


def test_windows_closed_on_a_full_disk_are_published_once_it_has_room(tmp_path: Path) -> None:
    sink = MemorySink()
    watch = StorageWatch()
    reporter = FlowReporter(sink, PrivacyConfig(), ["door"], tmp_path, now=T0, rng=random.Random(3), watch=watch)
    assert reporter._ledger is not None
    disk = FullDisk(reporter._ledger._db)
    reporter._ledger._db = disk  # type: ignore[assignment]
    reporter.add_crossing("door", "in", "pedestrian", T0)
    disk.full = True
    assert reporter.tick(T0 + timedelta(minutes=20)) == [], "today: the ledger's error escapes and the window is gone"
    assert watch.disk_full and disk.refused >= 1 and reporter.pending == 0
    disk.full = False
    assert reporter.tick(T0 + timedelta(minutes=21)) == [1, 2]
    windows = sink.of(Channel.FLOW)
    assert [w.window_start.minute for w in windows] == [45, 0]
    assert [w.policy.spent_today for w in windows] == [1.0, 2.0], "each window paid for once"


def test_a_damaged_budget_ledger_spends_nothing_more_today(tmp_path: Path) -> None:
    today = datetime.now(UTC)
    for unreadable in (False, True):
        folder = tmp_path / f"unreadable-{unreadable}"
        ledger = BudgetLedger(folder / LEDGER_FILE)
        assert ledger.spend(today - timedelta(minutes=30), 1.0, 3.0).granted
        ledger.close()
        damage_file(folder / LEDGER_FILE)
        if unreadable:
            (folder / LEDGER_FILE).write_bytes(b"\xa5" * 8192)
        ledger = BudgetLedger(folder / LEDGER_FILE)  # today: sqlite3.DatabaseError, no counting at all
        try:
            assert list(folder.glob(f"{LEDGER_FILE}.damaged-*"))
            spend = ledger.spend(today, 1.0, 3.0)
            assert not spend.granted and "damaged" in spend.reason, "what today spent is unknown"
            assert ledger.spend(today + timedelta(days=2), 1.0, 3.0).granted
        finally:
            ledger.close()
