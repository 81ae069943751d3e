"""The hub's single writer without a broker: watermarks, duplicates, gaps, availability, invalid input."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.events import build_event
from hub_protocol.codec import decode, encode
from hub_protocol.envelope import Ack, Availability, AvailabilityState, OutboxGap
from hub_protocol.topics import Channel, device_topic
from hub_server.config import IngestConfig
from hub_server.ingest.service import IngestCore
from hub_server.store.db import Database
from hub_server.store.engine import DatabaseError
from tests.transport.helpers import alarm_fields

PREFIX, SITE = "cot", "test-street"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _core(tmp_path: Path, clock: Clock | None = None, **settings: Any) -> IngestCore:
    db = tmp_path / "hub.sqlite3"
    Database(db)
    return IngestCore(db, PREFIX, IngestConfig(**settings), clock=clock or Clock())


def _event(seq: int, boot: str = "b1", device: str = "dev-a") -> tuple[str, bytes, float]:
    model = build_event(Channel.ALARM, device, boot, seq, alarm_fields(seq))
    return device_topic(PREFIX, SITE, device, Channel.ALARM), encode(model), 1.0


def _status(state: AvailabilityState, boot: str, graceful: bool = False) -> tuple[str, bytes, float]:
    payload = encode(Availability(device="dev-a", boot=boot, state=state, graceful=graceful))
    return device_topic(PREFIX, SITE, "dev-a", Channel.STATUS), payload, 1.0


def _acks(result: Any) -> dict[str, int]:
    return {a.boot: a.upto for a in (decode(Channel.ACK, payload) for _, payload in result.acks)}


def test_watermark_waits_for_holes_and_duplicates_are_acknowledged_again(tmp_path: Path) -> None:
    core = _core(tmp_path)
    assert _acks(core.process([_event(1), _event(2), _event(4)])) == {"b1": 2}
    result = core.process([_event(2), _event(3)])
    assert _acks(result) == {"b1": 4}
    assert core.counters.duplicates == 1 and core.counters.stored == 4
    assert _acks(core.process([_event(1)])) == {"b1": 4}, "a duplicate is answered with the current watermark"
    rows = core.conn.execute("SELECT seq FROM events ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert core.conn.execute("SELECT COUNT(*) FROM device_alarms").fetchone()[0] == 4


def test_state_is_rebuilt_from_the_database_after_a_restart(tmp_path: Path) -> None:
    core = _core(tmp_path)
    core.process([_event(1), _event(3)])
    core.close()
    again = _core(tmp_path)
    assert _acks(again.process([_event(3)])) == {"b1": 1}
    assert again.counters.duplicates == 1, "seq 3 (above the watermark) is remembered across the restart"
    assert _acks(again.process([_event(2)])) == {"b1": 3}


def test_declared_drops_move_the_watermark_and_a_late_copy_is_still_stored(tmp_path: Path) -> None:
    core = _core(tmp_path)
    core.process([_event(1), _event(5)])
    gap = OutboxGap(device="dev-a", boot="b1", seq=6, dropped_boot="b1", first_seq=2, last_seq=4, dropped_total=3)
    result = core.process([(device_topic(PREFIX, SITE, "dev-a", Channel.GAP), encode(gap), 1.0)])
    assert _acks(result) == {"b1": 6}
    assert core.conn.execute("SELECT dropped_total FROM devices").fetchone()[0] == 3
    core.process([_event(3)])  # was in flight when the outbox dropped it: keep it
    assert core.conn.execute("SELECT COUNT(*) FROM events WHERE seq = 3").fetchone()[0] == 1


def test_exact_ranges_stop_the_watermark_at_the_events_still_held(tmp_path: Path) -> None:
    """The notice comes first (the held events were lost in transit): the hub passes only what was dropped."""
    core = _core(tmp_path)
    gap = OutboxGap(
        device="dev-a", boot="b1", seq=9, dropped_boot="b1", first_seq=1, last_seq=8, dropped_total=5,
        ranges=[(1, 2), (4, 4), (6, 8)],
    )  # fmt: skip
    result = core.process([(device_topic(PREFIX, SITE, "dev-a", Channel.GAP), encode(gap), 1.0)])
    assert _acks(result) == {"b1": 2}, "3 and 5 are held by the device: never acknowledged unseen"
    assert _acks(core.process([_event(5)])) == {"b1": 2}
    assert _acks(core.process([_event(3)])) == {"b1": 9}
    rows = core.conn.execute("SELECT first_seq, last_seq, dropped_total FROM dropped_ranges ORDER BY first_seq")
    assert [tuple(r) for r in rows] == [(1, 2, 5), (4, 4, 5), (6, 8, 5)]
    assert core.conn.execute("SELECT COUNT(*) FROM events WHERE seq IN (3, 5)").fetchone()[0] == 2


def test_a_notice_with_ranges_that_disagree_is_refused_with_a_reason(tmp_path: Path) -> None:
    core = _core(tmp_path)
    header = '{"v":1,"device":"dev-a","boot":"b1","seq":9,"dropped_boot":"b1","dropped_total":1,'
    bad = {
        '"first_seq":1,"last_seq":8,"ranges":[[1,4],[4,8]]}': "overlaps or touches",
        '"first_seq":1,"last_seq":9,"ranges":[[1,2],[4,8]]}': "first and last number of the ranges",
        '"first_seq":5,"last_seq":4}': "after last_seq",
        '"first_seq":1,"last_seq":8,"ranges":[[1,8]]}': "at least 2",
    }
    topic = device_topic(PREFIX, SITE, "dev-a", Channel.GAP)
    for text, reason in bad.items():
        result = core.process([(topic, (header + text).encode(), 1.0)])
        assert result.acks == []
        last = core.conn.execute("SELECT last_reason FROM invalid_messages WHERE kind = 'payload'").fetchone()[0]
        assert reason in last
    assert core.conn.execute("SELECT COUNT(*) FROM dropped_ranges").fetchone()[0] == 0


def test_a_hole_that_stays_open_becomes_a_gap_and_is_resolved_when_filled(tmp_path: Path) -> None:
    clock = Clock()
    core = _core(tmp_path, clock, gap_after_s=5)
    core.process([_event(1), _event(2), _event(5)])
    core.tick()
    clock.now += 6
    notes = core.tick().notes
    assert [n[0] for n in notes] == ["sequence-gap"]
    gaps = core.conn.execute("SELECT first_seq, last_seq, resolved_at FROM sequence_gaps").fetchall()
    assert [tuple(g) for g in gaps] == [(3, 4, None)]
    core.process([_event(3), _event(4)])
    assert core.conn.execute("SELECT resolved_at FROM sequence_gaps").fetchone()[0] is not None


def test_availability_from_status_will_silence_and_stale_wills(tmp_path: Path) -> None:
    clock = Clock()
    core = _core(tmp_path, clock, offline_after_s=10)

    def device() -> tuple[int, str | None]:
        row = core.conn.execute("SELECT online, offline_reason FROM devices").fetchone()
        return row[0], row[1]

    core.process([_status(AvailabilityState.ONLINE, "b1")])
    assert device() == (1, None)
    core.process([_status(AvailabilityState.OFFLINE, "b1")])
    assert device() == (0, "will")
    core.process([_status(AvailabilityState.ONLINE, "b2")])
    result = core.process([_status(AvailabilityState.OFFLINE, "b1")])
    assert device() == (1, None), "the will of an earlier boot must not take a restarted device offline"
    assert result.notes == []
    clock.now += 11
    assert [n[0] for n in core.tick().notes] == ["silent"]
    assert device() == (0, "silent")
    core.process([_event(1, boot="b2")])
    assert device() == (1, None), "a silent device that speaks again is online"
    core.process([_status(AvailabilityState.OFFLINE, "b2", graceful=True)])
    assert device() == (0, "graceful")


def _snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: sorted(tuple(r) for r in conn.execute(f"SELECT * FROM {t}")) for t in tables if t != "invalid_messages"}


VALID_TOPICS = [device_topic(PREFIX, SITE, "dev-a", ch) for ch in Channel]
topics = st.one_of(
    st.text(max_size=80),
    st.sampled_from(VALID_TOPICS),
    st.builds(
        lambda a, b, c: f"{PREFIX}/v1/{a}/{b}/{c}", st.text(max_size=10), st.text(max_size=10), st.text(max_size=8)
    ),
)
payloads = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=20).map(lambda b: b'{"v": 1, "pad": "' + b"x" * 70_000 + b'"}' + b),  # over the cap
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8) | st.none(), max_size=5).map(
        lambda d: __import__("json").dumps(d).encode()
    ),
    st.just(encode(Availability(device="dev-b", boot="b9", state=AvailabilityState.ONLINE))),  # wrong device
    st.just(encode(Ack(boot="b1", upto=99))),
)


@pytest.fixture(scope="module")
def fuzz_core(tmp_path_factory: pytest.TempPathFactory) -> IngestCore:
    core = _core(tmp_path_factory.mktemp("fuzz"))
    core.conn.execute("PRAGMA synchronous=OFF")  # hundreds of commits; durability is not what this test is about
    core.process([_status(AvailabilityState.ONLINE, "b1"), _event(1), _event(2)])
    return core


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=5))
def test_fuzz_invalid_input_is_counted_never_crashes_and_changes_nothing(
    fuzz_core: IngestCore, messages: list[tuple[str, bytes]]
) -> None:
    before = _snapshot(fuzz_core.conn)
    invalid_before = fuzz_core.conn.execute("SELECT COALESCE(SUM(count), 0) FROM invalid_messages").fetchone()[0]
    result = fuzz_core.process([(topic, payload, 2.0) for topic, payload in messages])
    assert _snapshot(fuzz_core.conn) == before
    assert result.notes == []
    invalid_after = fuzz_core.conn.execute("SELECT COALESCE(SUM(count), 0) FROM invalid_messages").fetchone()[0]
    assert invalid_after - invalid_before == len(messages)
    reasons = fuzz_core.conn.execute("SELECT last_reason FROM invalid_messages").fetchall()
    assert all(r[0] for r in reasons), "every refusal carries its reason"


def test_invalid_reasons_are_specific(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    core = _core(tmp_path)
    topic = device_topic(PREFIX, SITE, "dev-a", Channel.ALARM)
    bad = _event(1)[1].replace(b'"sensor-fault"', b'"melting"')
    core.process([("elsewhere/x", b"{}", 1.0), (topic, bad, 1.0), (topic, b"\xff", 1.0)])
    rows = {
        (r[0], r[1]): (r[2], r[3])
        for r in core.conn.execute("SELECT device, kind, count, last_reason FROM invalid_messages")
    }
    assert rows[("", "topic")][0] == 1
    assert rows[("dev-a", "payload")][0] == 2
    assert "invalid" in rows[("dev-a", "payload")][1].lower() or "json" in rows[("dev-a", "payload")][1].lower()
    assert any("melting" in r.message or "alarm" in r.message for r in caplog.records)
    assert datetime.now(UTC)  # the core never raised


def test_flow_windows_and_cells_are_stored_as_typed_rows(tmp_path: Path) -> None:
    from bench.ingest import flow_payloads

    core = _core(tmp_path)
    payload = flow_payloads("dev-a", "b1", 1, 0)[0]
    window = decode(Channel.FLOW, payload)
    suppressed = payload.replace(b'"count":7', b'"count":null', 1)
    second = decode(Channel.FLOW, suppressed.replace(b'"seq":1', b'"seq":2'))
    topic = device_topic(PREFIX, SITE, "dev-a", Channel.FLOW)
    core.process([(topic, payload, 5.0), (topic, encode(second), 5.0), (topic, payload, 6.0)])
    row = core.conn.execute(
        "SELECT site, window_start, window_seconds, observed_fraction, policy_kind, policy FROM flow_windows WHERE seq = 1"
    ).fetchone()
    assert tuple(row[:5]) == (SITE, window.window_start.timestamp(), 60, 1.0, "threshold")
    assert decode_policy(row[5]) == window.policy.model_dump()
    cells = core.conn.execute(
        "SELECT seq, line, direction, object_class, count, window_start FROM flow_cells ORDER BY seq, line, direction, object_class"
    ).fetchall()
    assert len(cells) == 16
    expected = sorted((c.line, c.direction.value, c.object_class.value, c.count) for c in window.cells)
    assert [tuple(c[1:5]) for c in cells[:8]] == expected
    assert {c[5] for c in cells} == {window.window_start.timestamp()}
    assert sum(c[4] is None for c in cells[8:]) == 1, "a suppressed cell stays NULL, not zero"
    assert core.counters.duplicates == 1


def decode_policy(text: str) -> dict[str, Any]:
    import json

    return dict(json.loads(text))


def test_store_readers_return_what_the_core_stored(tmp_path: Path) -> None:
    from hub_server.store import devices, events

    clock = Clock()
    core = _core(tmp_path, clock, gap_after_s=1)
    gap = OutboxGap(device="dev-a", boot="b1", seq=5, dropped_boot="b0", first_seq=1, last_seq=9, dropped_total=9)
    core.process(
        [
            _status(AvailabilityState.ONLINE, "b1"),
            _event(1),
            _event(3),
            (device_topic(PREFIX, SITE, "dev-a", Channel.GAP), encode(gap), 1.0),
            ("nope", b"", 1.0),
        ]
    )
    core.tick()
    clock.now += 2
    core.tick()
    conn = core.conn
    open_gaps = sorted((g.boot, g.first_seq, g.last_seq, g.resolved_at) for g in events.gaps(conn, open_only=True))
    assert open_gaps == [("b1", 2, 2, None), ("b1", 4, 4, None)]
    assert [(d.boot, d.first_seq, d.last_seq, d.dropped_total) for d in events.dropped_ranges(conn)] == [
        ("b0", 1, 9, 9)
    ]
    assert [(c.device, c.kind, c.count) for c in events.invalid_counters(conn)] == [("", "topic", 1)]
    assert events.event_counts(conn) == {("dev-a", "alarm"): 2, ("dev-a", "gap"): 1}
    assert sorted(a.detail for a in events.device_alarms(conn, device="dev-a")) == ["n=1", "n=3"]
    assert {(w.boot, w.upto) for w in events.watermarks(conn, "dev-a")} == {("b1", 1), ("b0", 9)}
    (state,) = devices.availability(conn)
    assert (state.device, state.online, state.boot, state.dropped_total) == ("dev-a", True, "b1", 9)
    assert events.locker_events(conn) == [] and devices.register_entries(conn) == []


def test_flow_cells_view_follows_windows_and_refuses_writes(tmp_path: Path) -> None:
    from bench.ingest import flow_payloads

    core = _core(tmp_path)
    topic = device_topic(PREFIX, SITE, "dev-a", Channel.FLOW)
    core.process([(topic, payload, 1.0) for payload in flow_payloads("dev-a", "b1", 3, 0)])
    conn = core.conn
    assert conn.execute("SELECT COUNT(*) FROM flow_cells").fetchone()[0] == 24
    conn.execute("DELETE FROM flow_windows WHERE seq = 2")
    assert [r[0] for r in conn.execute("SELECT DISTINCT seq FROM flow_cells ORDER BY seq")] == [1, 3]
    with pytest.raises(DatabaseError, match="view"):
        conn.execute("DELETE FROM flow_cells WHERE seq = 1")
