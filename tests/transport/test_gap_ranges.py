"""Drop ranges are exact: random emit / transmit / ack / restart runs of a small outbox against the hub's real
single writer (no broker: delivery order and losses are chosen by the run). Fixed seeds, so a failure repeats."""

from __future__ import annotations

import itertools
import random
import sqlite3
from pathlib import Path

import pytest

from edge_agent.transport.config import OutboxConfig
from edge_agent.transport.outbox import Outbox, merge_range, subtract_held
from hub_protocol.codec import decode, encode
from hub_protocol.envelope import OutboxGap
from hub_protocol.topics import Channel, device_topic
from hub_server.config import IngestConfig
from hub_server.ingest.service import IngestCore
from hub_server.store.db import Database
from tests.transport.helpers import alarm_fields

PREFIX, SITE, DEVICE = "cot", "test-street", "dev-a"
SEEDS = list(range(1, 25))


class Run:
    def __init__(self, tmp_path: Path, rng: random.Random) -> None:
        self.tmp_path = tmp_path
        self.rng = rng
        self.config = OutboxConfig(max_events=rng.randint(10, 16), overflow=rng.choice(["drop-oldest", "drop-newest"]))
        self.boots = 0
        self.box = self._open()
        Database(tmp_path / "hub.sqlite3")
        self.now = 1_800_000_000.0
        self.hub = IngestCore(tmp_path / "hub.sqlite3", PREFIX, IngestConfig(), clock=lambda: self.now)
        self.emitted: set[tuple[str, int]] = set()
        self.dropped: set[tuple[str, int]] = set()
        self.held = self._held()

    def _open(self) -> Outbox:
        self.boots += 1
        return Outbox(self.tmp_path / "outbox.sqlite3", DEVICE, self.config, boot=f"boot-{self.boots}")

    def _rows(self) -> list[tuple[str, int, Channel, bytes]]:
        return [(r.boot, r.seq, r.channel, r.payload) for r in self.box.pending_after(0, 10_000)]

    def _held(self) -> set[tuple[str, int]]:
        return {(b, s) for b, s, c, _ in self._rows() if c is Channel.ALARM}

    def emit(self) -> None:
        seq = self.box.emit(Channel.ALARM, alarm_fields(len(self.emitted)))
        self.emitted.add((self.box.boot, seq))
        if (self.box.boot, seq) not in self._held():
            self.dropped.add((self.box.boot, seq))  # drop-newest at the cap
        self._settle({})

    def restart(self) -> None:
        self.box.close()
        self.box = self._open()
        self._settle({})

    def transmit(self, lossy: bool) -> None:
        """Some of the stored rows reach the hub, in any order; the hub's acks come back."""
        rows = self._rows()
        if lossy:
            rows = [r for r in rows if self.rng.random() < 0.6]
            self.rng.shuffle(rows)
        self.now += 60.0  # the hub's budget of gap notices refills: these runs declare many
        batch = [(device_topic(PREFIX, SITE, DEVICE, c), p, self.now) for _, _, c, p in rows]
        acks: dict[str, int] = {}
        for _, payload in self.hub.process(batch).acks:
            ack = decode(Channel.ACK, payload)
            acks[ack.boot] = max(acks.get(ack.boot, 0), ack.upto)
        for boot, upto in acks.items():
            # Nothing lost: every event the device holds and will delete now is stored at the hub.
            deleting = {(b, s) for b, s in self.held if b == boot and s <= upto}
            missing = deleting - self._stored()
            assert not missing, f"the hub acknowledged {boot} up to {upto} without storing {sorted(missing)}"
            self.box.ack(boot, upto)
        self._settle(acks)

    def _stored(self) -> set[tuple[str, int]]:
        rows = self.hub.conn.execute("SELECT boot, seq FROM events WHERE device = ? AND channel = 'alarm'", (DEVICE,))
        return {(b, s) for b, s in rows}

    def _settle(self, acks: dict[str, int]) -> None:
        """Account for what left the outbox, then check that no declaration covers a held number."""
        held = self._held()
        for boot, seq in self.held - held:
            if seq > acks.get(boot, 0):
                self.dropped.add((boot, seq))
        self.held = held
        rows = self._rows()
        stored = {(b, s) for b, s, _, _ in rows}
        assert self.box.stats().dropped_total == len(self.dropped), "dropped count differs from what went"
        for _, _, channel, payload in rows:
            if channel is Channel.GAP:
                notice: OutboxGap = decode(Channel.GAP, payload)
                for first, last in notice.declared():
                    covered = {s for b, s in stored if b == notice.dropped_boot and first <= s <= last}
                    assert not covered, f"notice {notice.seq} declares held numbers {sorted(covered)}"
        for boot, ranges in self.box._drops.items():
            assert ranges == sorted(ranges) and all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ranges))
            assert not any(f <= s <= la for b, s in stored if b == boot for f, la in ranges), "held number recorded"

    def drain(self) -> None:
        for _ in range(200):
            if self.box.stats().depth == 0:
                return
            self.transmit(lossy=False)
        raise AssertionError(f"outbox did not drain: {self._rows()[:5]}")


@pytest.mark.parametrize("seed", SEEDS)
def test_declared_ranges_never_cover_a_held_number_and_nothing_is_lost(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    run = Run(tmp_path, rng)
    try:
        for _ in range(300):
            action = rng.random()
            if action < 0.7:
                run.emit()
            elif action < 0.97:
                run.transmit(lossy=rng.random() < 0.7)
            else:
                run.restart()
        run.drain()
        stored = run._stored()
        assert stored <= run.emitted, "the hub stored an event nobody emitted"
        lost = run.emitted - stored
        assert lost <= run.dropped, f"lost without being dropped by policy: {sorted(lost - run.dropped)}"
        # A drop-oldest event can reach the hub and still be dropped before its ack: stored, yet counted.
        assert len(lost) <= run.box.stats().dropped_total == len(run.dropped)
        # Notices carry the count when written; the last declared loss is counted in a notice written after it.
        # Events the hub had when they were dropped need no notice: health messages bring the rest of the count.
        row = run.hub.conn.execute("SELECT dropped_total FROM devices WHERE device = ?", (DEVICE,)).fetchone()
        hub_total = 0 if row is None else row[0]
        assert len(lost) <= hub_total <= run.box.stats().dropped_total
        gaps = run.hub.conn.execute("SELECT COUNT(*) FROM sequence_gaps").fetchone()[0]
        assert gaps == 0
    finally:
        run.box.close()
        run.hub.close()


def test_range_helpers_keep_ranges_exact() -> None:
    assert subtract_held(1, 10, [0, 3, 4, 10, 12]) == [(1, 2), (5, 9)]
    assert subtract_held(5, 5, [5]) == []
    assert merge_range([(1, 2), (6, 7)], 4, 4) == ([(1, 2), (4, 4), (6, 7)], 4, 4)
    assert merge_range([(1, 2), (6, 7)], 3, 5) == ([(1, 7)], 1, 7), "adjacent ranges merge"
    assert merge_range([(1, 2), (9, 9)], 4, 12) == ([(1, 2), (4, 12)], 4, 12)


def test_an_earlier_versions_wide_range_keeps_only_the_numbers_not_held(tmp_path: Path) -> None:
    """A file written before exact ranges: one range per boot, spanning held events; after the upgrade the
    notice declares only what is not held."""
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path, DEVICE, OutboxConfig(max_events=100), boot="old-boot")
    for n in range(6):
        box.emit(Channel.ALARM, alarm_fields(n))
    box.ack("old-boot", 1)
    box.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE drop_ranges")
        conn.execute(
            "CREATE TABLE drops (boot TEXT PRIMARY KEY, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO drops VALUES ('old-boot', 1, 9)")
    box = Outbox(path, DEVICE, OutboxConfig(max_events=100), boot="new-boot")
    assert box._drops == {"old-boot": [(1, 1), (7, 9)]}
    box.ack("old-boot", 1)  # the hub waits for 2: held, nothing to declare
    assert not box._conn.execute("SELECT 1 FROM events WHERE channel = 'gap'").fetchall()
    box.ack("old-boot", 6)
    gaps = [decode(Channel.GAP, p) for (p,) in box._conn.execute("SELECT payload FROM events WHERE channel='gap'")]
    assert [(g.dropped_boot, g.declared()) for g in gaps] == [("old-boot", [(7, 9)])]
    encode(gaps[0])


def test_more_ranges_than_one_notice_holds_are_declared_as_the_hub_acks(tmp_path: Path) -> None:
    """An earlier version's overflow left every other number held under one wide range: after the upgrade that
    is 200 exact ranges, declared a hundred at a time, and every held event reaches the hub."""
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path, DEVICE, OutboxConfig(max_events=1000), boot="old-boot")
    for n in range(400):
        box.emit(Channel.ALARM, alarm_fields(n))
    box.close()
    with sqlite3.connect(path) as conn:  # what the earlier version left: notices gone, one range over all
        conn.execute("DELETE FROM events WHERE seq % 2 = 0")
        conn.execute("DROP TABLE drop_ranges")
        conn.execute(
            "CREATE TABLE drops (boot TEXT PRIMARY KEY, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO drops VALUES ('old-boot', 1, 400)")
    box = Outbox(path, DEVICE, OutboxConfig(max_events=1000), boot="new-boot")
    held = {r.seq for r in box.pending_after(0, 1000) if r.boot == "old-boot"}
    assert len(box._drops["old-boot"]) == 200 and len(held) == 200
    Database(tmp_path / "hub.sqlite3")
    now = [1_800_000_000.0]
    hub = IngestCore(tmp_path / "hub.sqlite3", PREFIX, IngestConfig(), clock=lambda: now[0])
    notices = 0
    try:
        for _ in range(20):
            now[0] += 60.0  # each held event opens a hole at the hub and spends its budget, refilled over time
            rows = box.pending_after(0, 2000)
            if not rows:
                break
            notices += sum(1 for r in rows if r.channel is Channel.GAP)
            batch = [(device_topic(PREFIX, SITE, DEVICE, r.channel), r.payload, now[0]) for r in rows]
            for _, payload in hub.process(batch).acks:
                ack = decode(Channel.ACK, payload)
                box.ack(ack.boot, ack.upto)
        assert box.stats().depth == 0, "the outbox did not drain"
        stored = {
            s for (s,) in hub.conn.execute("SELECT seq FROM events WHERE boot = 'old-boot' AND channel = 'alarm'")
        }
        assert stored == held
        assert notices >= 2, "200 ranges do not fit one notice"
        assert hub.conn.execute("SELECT COUNT(*) FROM sequence_gaps").fetchone()[0] == 0
    finally:
        box.close()
        hub.close()
