"""Typed rows: each typed device message (flow window, locker event, alarm, command result, validation) as
the tuple of its table's insert in ``hub_server.store.ingest``."""

from __future__ import annotations

import functools
import json
from typing import Any

from hub_protocol.flows import PrivacyPolicy
from hub_protocol.topics import Channel
from hub_server.store.retention import ALL


@functools.lru_cache(maxsize=256)
def _policy_json_cached(values: tuple[Any, ...]) -> str:
    return json.dumps(dict(zip(_POLICY_FIELDS, values, strict=True)), separators=(",", ":"))


_POLICY_FIELDS = tuple(PrivacyPolicy.model_fields)  # the order of a model instance's __dict__


def _policy_json(policy: PrivacyPolicy) -> str:
    """A device's policy repeats window after window: serialise each distinct one once."""
    try:
        return _policy_json_cached(tuple(policy.__dict__.values()))
    except TypeError:  # a field pydantic serialises and json does not (or an unhashable one)
        return policy.model_dump_json()


def typed_rows(rows: dict[str, list[tuple[Any, ...]]], channel: Channel, msg: Any, site: str, t: float) -> None:
    if channel is Channel.FLOW:
        # The bulk of traffic: plain tuples, enum members bound as their text (no .value lookups).
        quality, policy = msg.quality, msg.policy
        rows["flows"].append(
            (msg.device, msg.boot, msg.seq, site, msg.window_start.timestamp(), msg.window_seconds,
             quality.observed_fraction, quality.mean_fps, quality.dropped_frames, policy.kind,
             _policy_json(policy), t)
        )  # fmt: skip
        key = (msg.device, msg.boot, msg.seq)
        rows["cells"].extend((*key, c.line, c.direction, c.object_class, c.count) for c in msg.cells)
        rows["totals"].extend((*key, t.line, t.direction or ALL, t.object_class or ALL, t.count) for t in msg.totals)
    elif channel is Channel.LOCKER:
        rows["lockers"].append(
            (
                msg.device,
                msg.boot,
                msg.seq,
                site,
                msg.at.timestamp(),
                msg.compartment,
                msg.state.value,
                msg.previous.value if msg.previous else None,
                msg.cause,
                msg.reservation,
                msg.operator,
                int(msg.door_open),
                t,
            )
        )
    elif channel is Channel.ALARM:
        rows["alarms"].append(
            (
                msg.device,
                msg.boot,
                msg.seq,
                site,
                msg.at.timestamp(),
                msg.alarm.value,
                int(msg.active),
                msg.compartment,
                msg.detail,
                t,
            )
        )
    elif channel is Channel.RESULT:
        rows["results"].append(
            (msg.device, msg.boot, msg.seq, msg.command_id, msg.status.value, msg.detail, msg.at.timestamp(), t)
        )
    elif channel is Channel.VALIDATION:
        rows["validations"].append(
            (msg.device, msg.boot, msg.seq, site, msg.started_at.timestamp(), msg.minutes, msg.error,
             msg.policy.kind.value, msg.model_dump_json(), t)
        )  # fmt: skip
