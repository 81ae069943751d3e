"""The wire contract: topic tree, identifiers, size cap, and refusal of anything off-contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub_protocol import MAX_PAYLOAD_BYTES
from hub_protocol.codec import PAYLOAD_TYPES, ProtocolError, decode, encode
from hub_protocol.envelope import Ack
from hub_protocol.topics import (
    DEVICE_CHANNELS,
    HUB_CHANNELS,
    Channel,
    device_acl,
    device_topic,
    parse_topic,
)


def test_topic_round_trip_and_layout() -> None:
    topic = device_topic("cot", "oosterpark", "lamp-12", Channel.FLOW)
    assert topic == "cot/v1/oosterpark/lamp-12/flow"
    parts = parse_topic("cot", topic)
    assert parts is not None
    assert (parts.site, parts.device, parts.channel) == ("oosterpark", "lamp-12", Channel.FLOW)


@pytest.mark.parametrize(
    "topic",
    [
        "cot/v2/site/dev/flow",  # another major version
        "cot/v1/site/dev/unknown",
        "cot/v1/site/dev/flow/extra",
        "cot/v1/Site/dev/flow",  # upper case is not an id
        "other/v1/site/dev/flow",
        "cot/v1/site/+/flow",
    ],
)
def test_off_contract_topics_are_not_parsed(topic: str) -> None:
    assert parse_topic("cot", topic) is None


@given(st.text(max_size=200))
def test_parse_topic_never_raises(topic: str) -> None:
    parse_topic("cot", topic)


@pytest.mark.parametrize("bad", ["", "A", "a_b", "a/b", "a" * 65, "#", "+", "é"])
def test_identifiers_are_restricted(bad: str) -> None:
    with pytest.raises(ValueError, match=r"\[a-z0-9-\]"):
        device_topic("cot", "site", bad, Channel.FLOW)


def test_device_acl_grants_only_own_topics() -> None:
    lines = device_acl("cot", "s1", "d1")
    assert lines[0] == "user d1"
    writes = {line.split()[-1] for line in lines if line.startswith("topic write")}
    reads = {line.split()[-1] for line in lines if line.startswith("topic read")}
    assert writes == {f"cot/v1/s1/d1/{c.value}" for c in DEVICE_CHANNELS}
    assert reads == {f"cot/v1/s1/d1/{c.value}" for c in HUB_CHANNELS}
    assert not any("#" in line or "+" in line for line in lines)


def test_every_channel_has_a_payload_model() -> None:
    assert set(PAYLOAD_TYPES) == set(Channel)


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="exceeds the cap"):
        decode(Channel.ACK, b" " * (MAX_PAYLOAD_BYTES + 1))


def test_decode_explains_what_is_wrong() -> None:
    with pytest.raises(ProtocolError) as info:
        decode(Channel.ACK, b'{"boot": "b1", "upto": -3, "surprise": true}')
    assert "upto" in info.value.reason
    assert "surprise" in info.value.reason
    assert decode(Channel.ACK, encode(Ack(boot="b1", upto=7))) == Ack(boot="b1", upto=7)


def test_commands_need_an_expiry_after_issue() -> None:
    now = datetime.now(UTC)
    base = {"id": "c1", "device": "d1", "issued_at": now.isoformat(), "action": "reload-config"}
    ok = decode(Channel.COMMAND, encode_json({**base, "expires_at": (now + timedelta(minutes=5)).isoformat()}))
    assert ok.action == "reload-config"
    with pytest.raises(ProtocolError, match="expires_at"):
        decode(Channel.COMMAND, encode_json({**base, "expires_at": (now - timedelta(seconds=1)).isoformat()}))
    with pytest.raises(ProtocolError):
        decode(Channel.COMMAND, encode_json({**base, "action": "self-destruct", "expires_at": now.isoformat()}))


def encode_json(data: dict[str, object]) -> bytes:
    return json.dumps(data).encode()
