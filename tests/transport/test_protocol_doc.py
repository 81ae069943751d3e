"""docs/protocol.md and the models of hub_protocol agree: tables regenerated from the models must match."""

from __future__ import annotations

import re
from typing import Annotated, get_args, get_origin

from pydantic import BaseModel

from hub_protocol.codec import PAYLOAD_TYPES
from hub_protocol.topics import Channel
from tests.transport import protocol_doc

FIX = "run `python -m tests.transport.protocol_doc --write` and review the prose around the change"


def _documented_types() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    for payload in PAYLOAD_TYPES.values():
        if get_origin(payload) is Annotated:
            found.update(get_args(get_args(payload)[0]))
        else:
            found.add(payload)
    return found


def test_every_generated_table_matches_the_models() -> None:
    text = protocol_doc.DOC.read_text(encoding="utf-8")
    in_doc = protocol_doc.blocks(text)
    for name, table in protocol_doc.rendered().items():
        assert name in in_doc, f"docs/protocol.md has no table for {name}: {FIX}"
        assert in_doc[name] == table, f"docs/protocol.md describes {name} differently from the model: {FIX}"
    stale = set(in_doc) - set(protocol_doc.rendered())
    assert not stale, f"docs/protocol.md documents what no longer exists: {sorted(stale)}"


def test_every_payload_of_every_channel_is_documented_with_a_heading() -> None:
    text = protocol_doc.DOC.read_text(encoding="utf-8")
    headings = set(re.findall(r"^### (\w+)$", text, re.M))
    missing = {t.__name__ for t in _documented_types()} - {m.__name__ for m in protocol_doc.MODELS}
    assert not missing, f"payload models missing from the document's list: {missing}"
    assert {m.__name__ for m in protocol_doc.MODELS} <= headings
    for channel in Channel:
        assert f"`{channel.value}`" in text


def test_the_check_notices_a_changed_field() -> None:
    """The comparison is not vacuous: a description edited in the doc is caught."""
    text = protocol_doc.DOC.read_text(encoding="utf-8")
    tampered = text.replace("Watermark: every sequence number <= upto is stored", "Watermark, roughly", 1)
    assert tampered != text
    assert protocol_doc.blocks(tampered)["Ack"] != protocol_doc.rendered()["Ack"]
    assert protocol_doc.refresh(tampered) == text
