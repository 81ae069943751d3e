"""The outbox on a bad storage day: a full disk burns no sequence number, a damaged file is replaced."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.storage import StorageWatch
from edge_agent.transport.commands import CommandRouter
from edge_agent.transport.config import OutboxConfig
from edge_agent.transport.outbox import OUTBOX_FILENAME, Outbox
from edge_agent.transport.service import Transport
from hub_protocol.alarms import AlarmKind
from hub_protocol.codec import decode
from hub_protocol.commands import LockerOpen, command_header
from hub_protocol.envelope import ResultStatus
from hub_protocol.topics import Channel
from tests.conftest import BrokerSetup, agent_config, wait_until
from tests.storage_faults import FullDisk, damage_file, tiny_tmpfs
from tests.transport.helpers import alarm_fields, start_ingest


def _box(tmp_path: Path, watch: StorageWatch | None = None, boot: str | None = None) -> Outbox:
    return Outbox(tmp_path / OUTBOX_FILENAME, "dev-a", OutboxConfig(max_events=1000), boot=boot, watch=watch)


def _stored(path: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(path) as conn:
        return [(b, s, c) for b, s, c in conn.execute("SELECT boot, seq, channel FROM events ORDER BY id")]


def test_a_full_disk_burns_no_sequence_number_when_the_rollback_fails_too(tmp_path: Path) -> None:
    """SQLite rolls back by itself on SQLITE_FULL, so the outbox's own ROLLBACK errors; the number must
    still be given back, or the hub's watermark sticks below the hole for the rest of the boot."""
    watch = StorageWatch()
    box = _box(tmp_path, watch)
    disk = FullDisk(box._conn)
    box._conn = disk  # type: ignore[assignment]
    assert [box.emit(Channel.ALARM, alarm_fields(n)) for n in range(3)] == [1, 2, 3]
    disk.full = True
    for n in range(5):  # every retry during the full period fails, none uses a number
        try:
            box.emit(Channel.ALARM, alarm_fields(100 + n))
        except sqlite3.OperationalError as exc:
            assert "disk is full" in str(exc)
        else:
            raise AssertionError("the write should have failed")
    assert watch.disk_full and watch.failures == 5
    assert box.stats().depth == 3
    disk.full = False
    assert box.emit(Channel.ALARM, alarm_fields(4)) == 4
    assert [s for _, s, _ in _stored(box.path)] == [1, 2, 3, 4]
    assert box.ack(box.boot, 4) == 4 and box.stats().depth == 0


def test_the_disk_full_alarm_is_raised_and_cleared_once_across_a_restart(tmp_path: Path) -> None:
    now = [0.0]
    watch = StorageWatch(monotonic=lambda: now[0], quiet_s=30)
    box = _box(tmp_path, watch)
    watch.failed("lockers", sqlite3.OperationalError("database or disk is full"))
    assert box.sync_disk_alarm(watch.disk_full, watch.detail())
    assert not box.sync_disk_alarm(watch.disk_full, watch.detail()), "raised once only"
    box.close()
    box = _box(tmp_path, watch)
    watch.succeeded("lockers")
    assert not box.sync_disk_alarm(watch.disk_full, watch.detail()), "not cleared within the quiet time"
    now[0] = 31.0
    assert box.sync_disk_alarm(watch.disk_full, watch.detail())
    alarms = [decode(Channel.ALARM, p) for (p,) in sqlite3.connect(box.path).execute("SELECT payload FROM events")]
    assert [(a.alarm, a.active) for a in alarms] == [(AlarmKind.DISK_FULL, True), (AlarmKind.DISK_FULL, False)]
    assert "lockers" in alarms[0].detail


def test_a_damaged_outbox_is_moved_aside_and_its_lost_events_declared(tmp_path: Path) -> None:
    old = _box(tmp_path, boot="old-boot")
    for n in range(40):
        old.emit(Channel.ALARM, alarm_fields(n))
    old.ack("old-boot", 10)
    old.close()
    damage_file(tmp_path / OUTBOX_FILENAME)

    box = _box(tmp_path, boot="new-boot")  # today: sqlite3.DatabaseError and no agent at all
    moved = list(tmp_path.glob(f"{OUTBOX_FILENAME}.damaged-*"))
    assert len(moved) == 1, "the damaged file is kept for a post-mortem"
    rows = _stored(box.path)
    alarms = [
        decode(Channel.ALARM, p) for (p,) in box._conn.execute("SELECT payload FROM events WHERE channel='alarm'")
    ]
    assert [a.alarm for a in alarms if a.boot == "new-boot"] == [AlarmKind.STATE_DAMAGED]
    gaps = [decode(Channel.GAP, p) for (p,) in box._conn.execute("SELECT payload FROM events WHERE channel='gap'")]
    assert [(g.dropped_boot, g.first_seq, g.last_seq) for g in gaps] == [("old-boot", 1, 40)]
    assert gaps[0].dropped_total >= 30 - sum(1 for b, _, c in rows if b == "old-boot")
    assert box.stats().dropped_total == gaps[0].dropped_total > 0
    assert box.emit(Channel.ALARM, alarm_fields(0)) == 3, "the new boot numbers on after the alarm and notice"


def test_a_damaged_outbox_reaches_the_hub_as_a_counted_drop(broker: BrokerSetup, tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db)
    config = agent_config(broker, "dev-a", tmp_path)
    first = Transport(config)
    try:
        first.start()
        sent = [first.sink.emit(Channel.ALARM, alarm_fields(n)) for n in range(10)]
        assert wait_until(lambda: first.outbox.stats().depth == 0, 15), "first events not acknowledged"
        first.link.stop()  # the hub stops hearing from this boot; these stay unacknowledged
        unsent = [first.sink.emit(Channel.ALARM, alarm_fields(n)) for n in range(10, 30)]
    finally:
        first.stop()
    state = Path(config.device.state_dir) / OUTBOX_FILENAME
    damage_file(state)

    second = Transport(config)
    second.start()
    try:
        assert wait_until(lambda: second.outbox.stats().depth == 0, 20), "the fresh outbox did not drain"
        with sqlite3.connect(db) as conn:
            ranges = conn.execute("SELECT boot, first_seq, last_seq FROM dropped_ranges").fetchall()
            dropped = conn.execute("SELECT dropped_total FROM devices WHERE device = 'dev-a'").fetchone()[0]
            alarms = conn.execute("SELECT alarm FROM device_alarms WHERE device = 'dev-a'").fetchall()
            stored = {s for (s,) in conn.execute("SELECT seq FROM events WHERE boot = ?", (first.boot,))}
        assert ranges == [(first.boot, 1, max(unsent))]
        assert set(sent) <= stored
        lost = set(unsent) - stored
        assert 0 < len(lost) <= dropped, "every event lost with the file is counted as dropped"
        assert ("state-damaged",) in alarms
    finally:
        second.stop()
        ingest.stop()


def test_a_small_disk_is_not_filled_by_the_outbox_s_own_journal(tmp_path: Path) -> None:
    """A 2 MiB disk and an outbox that is always emptied: SQLite's default WAL (checkpoint at 4 MiB, never
    shrunk) filled the disk by itself after about a hundred events, and then every write failed for ever."""
    with tiny_tmpfs(tmp_path / "disk", 2 * 1024 * 1024) as disk:
        watch = StorageWatch()
        box = _box(disk, watch, boot="b1")
        for n in range(3000):  # about 12 MiB through the journal, six times the disk
            seq = box.emit(Channel.ALARM, alarm_fields(n))
            assert box.ack("b1", seq) == 1, f"event {n}: the delete failed ({watch.detail()})"
        assert watch.failures == 0 and box.stats().depth == 0
        box.close()


def test_acks_refused_by_a_full_disk_are_earned_again_by_the_resend(broker: BrokerSetup, tmp_path: Path) -> None:
    """The hub stored everything, but deleting needs room too: the acks that met the full disk are lost, and
    only the resend after ``ack_timeout_s`` brings the acknowledgements that empty the outbox."""
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db)
    transport = Transport(agent_config(broker, "dev-a", tmp_path))
    disk = FullDisk(transport.outbox._conn)
    transport.outbox._conn = disk  # type: ignore[assignment]
    try:
        for n in range(10):
            transport.sink.emit(Channel.ALARM, alarm_fields(n))
        disk.full = True  # before the link starts: every ack's delete is refused
        transport.start()
        assert wait_until(lambda: _hub_events(db) == 10, 10), "the hub stored the events"
        assert wait_until(lambda: disk.refused > 0, 10), "an ack met the full disk"
        assert transport.outbox.stats().depth > 0
        disk.full = False
        assert wait_until(lambda: transport.outbox.stats().depth == 0, 15), "the outbox did not drain"
        assert len(_stored(transport.outbox.path)) == 0 and transport.link.stats.resends >= 1
        assert _hub_events(db) == 10
    finally:
        transport.stop()
        ingest.stop()


def _hub_events(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def _damage_all_but(path: Path, table: str) -> None:
    """A failing card that spared the schema page and ``table``'s one page: every other page partly overwritten."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)).fetchone()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    for number in range(2, len(data) // page_size + 1):
        if number != root:
            offset = (number - 1) * page_size
            data[offset : offset + page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(data))


def test_a_damaged_outbox_keeps_the_hand_over_marks_it_can_still_read(tmp_path: Path) -> None:
    """Without its mark a source hands over again what it had handed over but not yet deleted: stored twice."""
    old = _box(tmp_path, boot="old-boot")
    for key in range(1, 31):
        old.emit(Channel.ALARM, alarm_fields(key), handoff=("lockers-a1", key))
    old.close()
    _damage_all_but(tmp_path / OUTBOX_FILENAME, "handoffs")

    box = _box(tmp_path, boot="new-boot")
    assert box.salvage is not None, "the damage was found"
    assert box.handed_upto("lockers-a1") == 30
    box.close()

    damage_file(tmp_path / OUTBOX_FILENAME)  # now the marks are gone too: the alarm says what that means
    box = _box(tmp_path, boot="third-boot")
    assert box.handed_upto("lockers-a1") == 0
    alarms = [
        decode(Channel.ALARM, p) for (p,) in box._conn.execute("SELECT payload FROM events WHERE channel='alarm'")
    ]
    assert [a.alarm for a in alarms] == [AlarmKind.STATE_DAMAGED]
    assert "hand-over marks lost" in alarms[0].detail


def _burn(box: Outbox, numbers: int) -> None:
    """What the version before this one did on a full disk: each failed retry used up a number."""
    box._next_seq += numbers


def test_numbers_burned_by_an_earlier_version_are_declared_when_the_hub_acks_below_them(tmp_path: Path) -> None:
    box = _box(tmp_path, boot="old-boot")
    box.emit(Channel.ALARM, alarm_fields(1))
    _burn(box, 113)
    assert [box.emit(Channel.ALARM, alarm_fields(n)) for n in range(3)] == [115, 116, 117]
    box.close()
    box = _box(tmp_path, boot="new-boot")
    box.ack("old-boot", 1)  # the hub has 1 and waits for 2, which nobody holds
    gaps = [decode(Channel.GAP, p) for (p,) in box._conn.execute("SELECT payload FROM events WHERE channel='gap'")]
    assert [(g.dropped_boot, g.first_seq, g.last_seq, g.dropped_total) for g in gaps] == [("old-boot", 2, 114, 0)]
    box.ack("old-boot", 1)  # the same ack again: nothing new to declare
    assert box._conn.execute("SELECT COUNT(*) FROM events WHERE channel='gap'").fetchone()[0] == 1


def test_an_outbox_with_burned_numbers_drains_after_an_upgrade(broker: BrokerSetup, tmp_path: Path) -> None:
    """The issue's run: numbers 2..114 burned, the hub's watermark stuck at 1, everything re-sent every 30 s,
    and the old boot's events still re-sent after a restart."""
    config = agent_config(broker, "dev-a", tmp_path)
    state = Path(config.device.state_dir) / OUTBOX_FILENAME
    old = Outbox(state, "dev-a", config.outbox, boot="old-boot")
    old.emit(Channel.ALARM, alarm_fields(1))
    _burn(old, 113)
    for n in range(20):
        old.emit(Channel.ALARM, alarm_fields(n))
    old.close()
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db)
    transport = Transport(config)
    transport.start()
    try:
        assert wait_until(lambda: transport.outbox.stats().depth == 0, 20), "the old boot's events never left"
        with sqlite3.connect(db) as conn:
            upto = conn.execute("SELECT upto FROM boot_watermarks WHERE boot = 'old-boot'").fetchone()[0]
            stored = conn.execute("SELECT COUNT(*) FROM events WHERE boot = 'old-boot'").fetchone()[0]
        assert upto == 134 and stored == 21
    finally:
        transport.stop()
        ingest.stop()


def test_a_damaged_command_id_file_is_replaced_with_an_alarm(tmp_path: Path) -> None:
    box = _box(tmp_path)
    path = tmp_path / "commands.sqlite3"
    first = CommandRouter("dev-a", box, path)
    header = command_header("dev-a", timedelta(hours=1), "op-anna", prefix="cmd", now=datetime.now(UTC))
    command = LockerOpen(action="locker-open", **header, compartment=1).model_dump_json().encode()
    first.register("locker-open", lambda _c: (ResultStatus.DONE, "opened"))
    assert first.handle(command).status is ResultStatus.DONE
    first.close()
    damage_file(path)
    path.write_bytes(b"\xa5" * 8192)

    router = CommandRouter("dev-a", box, path)  # today: sqlite3.DatabaseError, no transport at all
    try:
        assert list(tmp_path.glob("commands.sqlite3.damaged-*"))
        alarms = [
            decode(Channel.ALARM, p) for (p,) in box._conn.execute("SELECT payload FROM events WHERE channel='alarm'")
        ]
        assert [a.alarm for a in alarms] == [AlarmKind.STATE_DAMAGED]
        router.register("locker-open", lambda _c: (ResultStatus.DONE, "opened"))
        other = LockerOpen(action="locker-open", **{**header, "id": "cmd-other"}, compartment=1)
        assert router.handle(other.model_dump_json().encode()).status is ResultStatus.DONE
    finally:
        router.close()
