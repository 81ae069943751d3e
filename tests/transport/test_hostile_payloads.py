"""Hostile device payloads against the hub's real single writer: valid JSON of each channel with one number or time
pushed out of range. A refused message is counted and changes nothing else; whatever is accepted reads back; and
no message, however forged, takes other devices' messages of the same batch down with it."""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from edge_agent.events import build_event
from hub_protocol.accuracy import ValidationCell, ValidationLine, ValidationRecord
from hub_protocol.codec import decode, encode
from hub_protocol.envelope import CameraState, CommandResult, Health, OutboxGap, ResultStatus
from hub_protocol.flows import FlowCell, FlowWindow, PolicyKind, PrivacyPolicy, WindowQuality
from hub_protocol.lockers import CompartmentState, LockerEvent
from hub_protocol.register import RegisterEntry
from hub_protocol.topics import Channel, device_topic
from hub_server.config import IngestConfig
from hub_server.fleet import device_config
from hub_server.ingest.service import IngestCore
from hub_server.store import events, feed, readings, validations
from hub_server.store.db import Database
from tests.transport.helpers import alarm_fields
from tests.transport.test_ingest_core import _snapshot

PREFIX, SITE, DEVICE, OTHER = "cot", "test-street", "dev-x", "dev-ok"
NOW = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
AT = NOW - timedelta(minutes=20)


def _health() -> Health:
    return Health(
        device=DEVICE, boot="b1", at=AT, uptime_s=100, version="0.1.0", cpu_temp_c=51.5, load1=0.5,
        mem_used_fraction=0.3, disk_free_bytes=10**9, outbox_depth=3, outbox_oldest_age_s=12.0, dropped_total=0,
        camera_state=CameraState.OK, fps=7.0,
    )  # fmt: skip


def _flow() -> FlowWindow:
    return FlowWindow(
        device=DEVICE, boot="b1", seq=1, window_start=NOW - timedelta(minutes=30), window_seconds=900,
        cells=[FlowCell(line="door", direction="in", object_class="pedestrian", count=9)],
        quality=WindowQuality(observed_fraction=1.0, mean_fps=8.0, dropped_frames=0),
        policy=PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=5),
    )  # fmt: skip


def _gap() -> OutboxGap:
    return OutboxGap(device=DEVICE, boot="b1", seq=1, dropped_boot="b0", first_seq=2, last_seq=4, dropped_total=3)


def _locker() -> LockerEvent:
    return LockerEvent(
        device=DEVICE, boot="b1", seq=1, at=AT, compartment=3, state=CompartmentState.OCCUPIED,
        previous=CompartmentState.RESERVED, cause="dropoff", door_open=False,
    )  # fmt: skip


def _alarm() -> BaseModel:
    return build_event(Channel.ALARM, DEVICE, "b1", 1, {**alarm_fields(1), "at": AT})


def _result() -> CommandResult:
    return CommandResult(device=DEVICE, boot="b1", seq=1, command_id="cmd-1", status=ResultStatus.DONE, at=AT)


def _validation() -> ValidationRecord:
    return ValidationRecord(
        device=DEVICE, boot="b1", seq=1, started_at=AT.replace(second=0), minutes=10,
        cells=[ValidationCell(line="door", direction="in", object_class="pedestrian", counted=9, tallied=10)],
        lines=[ValidationLine(line="door", direction="in", counted=9, tallied=10, error=-0.1)],
        error=0.1, policy=PrivacyPolicy(kind=PolicyKind.NONE),
    )  # fmt: skip


def _register() -> RegisterEntry:
    return RegisterEntry(
        device=DEVICE, site=SITE, sensor_type="camera", measures=["crossings"], purpose="how busy",
        legal_ground="public task", organisation="us", contact="a@example.org", leaves_device=["counts"],
        never_leaves=["images"], privacy=PrivacyPolicy(kind=PolicyKind.DP, epsilon=1.0, daily_budget=5.0, spent_today=0.5),
        active_until=date(2027, 12, 31), location="here",
    )  # fmt: skip


MESSAGES: dict[Channel, Callable[[], BaseModel]] = {
    Channel.HEALTH: _health,
    Channel.FLOW: _flow,
    Channel.GAP: _gap,
    Channel.LOCKER: _locker,
    Channel.ALARM: _alarm,
    Channel.RESULT: _result,
    Channel.VALIDATION: _validation,
    Channel.REGISTER: _register,
}

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")
# Out of SQLite's 64-bit integers, out of datetime once the zone is applied, or next to its ends, and the
# numbers JSON readers take but arithmetic does not.
HOSTILE: list[Any] = [
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    "Infinity",
    "-Infinity",
    "NaN",
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01T00:00:00Z",
]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every number and every time in a JSON document."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    is_time = isinstance(value, str) and _TIME.match(value) is not None
    return [path] if is_number or is_time else []


def _payload(message: BaseModel, path: tuple[Any, ...], hostile: Any) -> bytes:
    data = json.loads(encode(message))
    target = data
    for part in path[:-1]:
        target = target[part]
    marker = "\u0000HOSTILE\u0000"
    target[path[-1]] = marker
    # Written by hand: json.dumps knows no NaN literal for a string and refuses integers it cannot round-trip.
    literal = hostile if isinstance(hostile, int) or hostile in ("Infinity", "-Infinity", "NaN") else f'"{hostile}"'
    return json.dumps(data).replace(json.dumps(marker), str(literal)).encode()


def _read_back(conn: sqlite3.Connection) -> None:
    """Every reader of what a device sends (those behind the API, the pages and the alarms)."""
    conn.row_factory = sqlite3.Row
    readings.list_devices(conn)
    readings.latest_health(conn, DEVICE)
    readings.health_history(conn, DEVICE, datetime(1970, 1, 1, tzinfo=UTC), None, 100)
    readings.flow_cells(conn, since=datetime(1970, 1, 1, tzinfo=UTC), until=datetime(9999, 1, 1, tzinfo=UTC))
    events.locker_events(conn, device=DEVICE)
    events.device_alarms(conn, device=DEVICE)
    events.command_results(conn, device=DEVICE)
    events.dropped_ranges(conn, device=DEVICE)
    events.watermarks(conn, DEVICE)
    device_config.outcome(conn, DEVICE, "cmd-1")
    validations.history(conn, DEVICE)
    feed.latest_health(conn)
    feed.device_statuses(conn)


def _partner(seq: int) -> tuple[str, bytes, float]:
    event = build_event(Channel.ALARM, OTHER, "b9", seq, {**alarm_fields(seq), "at": AT})
    return device_topic(PREFIX, SITE, OTHER, Channel.ALARM), encode(event), NOW.timestamp()


def test_every_message_of_the_generator_is_accepted_as_it_is() -> None:
    """The property below pushes one field of these out of range: unchanged, each one must be stored."""
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "hub.sqlite3"
        Database(db)
        core = IngestCore(db, PREFIX, IngestConfig(), clock=NOW.timestamp)
        try:
            for channel, make in MESSAGES.items():
                core.process([(device_topic(PREFIX, SITE, DEVICE, channel), encode(make()), NOW.timestamp())])
                assert core.counters.invalid == 0, channel
            _read_back(core.conn)
        finally:
            core.close()


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Channel, tuple[Any, ...], Any]:
    channel = draw(st.sampled_from(sorted(MESSAGES)))
    path = draw(st.sampled_from(_leaves(json.loads(encode(MESSAGES[channel]())))))
    return channel, path, draw(st.sampled_from(HOSTILE))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_cases())
@example(case=(Channel.HEALTH, ("disk_free_bytes",), 2**64))
@example(case=(Channel.FLOW, ("quality", "dropped_frames"), 2**63))
@example(case=(Channel.GAP, ("dropped_total",), 2**63))
@example(case=(Channel.HEALTH, ("at",), "9999-12-31T23:59:59-12:00"))
@example(case=(Channel.RESULT, ("at",), "0001-01-01T00:00:00+05:00"))
@example(case=(Channel.LOCKER, ("at",), "9999-12-31T23:59:59.999999Z"))
@example(case=(Channel.HEALTH, ("uptime_s",), "Infinity"))
def test_a_hostile_number_or_time_is_refused_or_readable_and_never_sinks_the_batch(
    case: tuple[Channel, tuple[Any, ...], Any],
) -> None:
    channel, path, hostile = case
    payload = _payload(MESSAGES[channel](), path, hostile)
    topic = device_topic(PREFIX, SITE, DEVICE, channel)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "hub.sqlite3"
        Database(db)
        core = IngestCore(db, PREFIX, IngestConfig(), clock=NOW.timestamp)
        try:
            core.process([_partner(1)])
            before = _snapshot(core.conn)
            core.process([(topic, payload, NOW.timestamp())])  # raises on the current code for 64-bit overflows
            if not isinstance(hostile, int):  # NaN, Infinity and times at or past datetime's ends mean nothing
                assert core.counters.invalid == 1, f"{channel.value}.{path}={hostile} was accepted"
            if core.counters.invalid:
                assert _snapshot(core.conn) == before, f"{channel.value}.{path}={hostile} was refused yet changed data"
                reason = core.conn.execute("SELECT last_reason FROM invalid_messages").fetchone()[0]
                assert str(path[-1]) in reason or "JSON" in reason, reason
            _read_back(core.conn)
            # Sent again beside another device's next event: that event is stored and acknowledged all the same.
            result = core.process([(topic, payload, NOW.timestamp()), _partner(2)])
            acks = {ack_topic.split("/")[-2]: decode(Channel.ACK, p).upto for ack_topic, p in result.acks}
            assert acks.get(OTHER) == 2
        finally:
            core.close()
