"""Field and topic tables of docs/protocol.md, generated from the models of ``hub_protocol``.

    python -m tests.transport.protocol_doc --write    # refresh the tables in docs/protocol.md

The document's prose is written by hand; everything between ``<!-- generated:NAME -->`` and
``<!-- end:NAME -->`` comes from here, and the test fails when the two disagree.
"""

from __future__ import annotations

import enum
import re
import sys
import types
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AnyUrl, BaseModel

from hub_protocol.accuracy import ValidationCell, ValidationLine, ValidationRecord
from hub_protocol.alarms import DeviceAlarm
from hub_protocol.codec import PAYLOAD_TYPES
from hub_protocol.commands import (
    CodeHash,
    LockerOpen,
    LockerSetService,
    OpenSetup,
    PushConfig,
    ReloadConfig,
    ReservationCancel,
    ReservationSet,
)
from hub_protocol.envelope import Ack, Availability, CommandResult, EventHeader, Health, OutboxGap
from hub_protocol.flows import FlowCell, FlowTotal, FlowWindow, PrivacyPolicy, WindowQuality
from hub_protocol.lockers import LockerEvent
from hub_protocol.register import RegisterEntry
from hub_protocol.topics import DEVICE_CHANNELS, RETAINED_CHANNELS, SEQUENCED_CHANNELS, Channel

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

MODELS: list[type[BaseModel]] = [
    EventHeader,
    Availability,
    RegisterEntry,
    Health,
    FlowWindow,
    FlowCell,
    FlowTotal,
    WindowQuality,
    PrivacyPolicy,
    LockerEvent,
    DeviceAlarm,
    OutboxGap,
    CommandResult,
    ValidationRecord,
    ValidationCell,
    ValidationLine,
    Ack,
    ReloadConfig,
    PushConfig,
    LockerOpen,
    LockerSetService,
    ReservationSet,
    CodeHash,
    ReservationCancel,
    OpenSetup,
]

_BLOCK = re.compile(r"<!-- generated:(?P<name>[A-Za-z]+) -->\n(?P<body>.*?)<!-- end:(?P=name) -->", re.S)


def _type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        parts = [_type(a) for a in get_args(annotation) if a is not type(None)]
        nullable = type(None) in get_args(annotation)
        return " or ".join(parts) + (" or null" if nullable else "")
    if origin is list:
        return f"list of {_type(get_args(annotation)[0])}"
    if origin is tuple:
        return "array [" + ", ".join(_type(a) for a in get_args(annotation)) + "]"
    if origin is Literal:
        return " or ".join(f"`{v!r}`".replace("'", '"') for v in get_args(annotation))
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
        if issubclass(annotation, BaseModel):
            return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        if issubclass(annotation, datetime):
            return "timestamp with zone (ISO 8601)"
        if issubclass(annotation, date):
            return "date (YYYY-MM-DD)"
        if issubclass(annotation, bool):
            return "boolean"
        if issubclass(annotation, int):
            return "integer"
        if issubclass(annotation, float):
            return "number"
        if issubclass(annotation, str):
            return "string"
        if issubclass(annotation, AnyUrl):
            return "URL"
    return str(annotation).replace("typing.", "")


def _constraints(field: Any) -> str:
    out = []
    for item in field.metadata:
        for name, label in (
            ("ge", ">="),
            ("gt", ">"),
            ("le", "<="),
            ("lt", "<"),
            ("min_length", "min length"),
            ("max_length", "max length"),
            ("pattern", "pattern"),
        ):
            value = getattr(item, name, None)
            if value is not None:
                out.append(f"{label} `{value}`" if name == "pattern" else f"{label} {value:,}".replace(",", "\u202f"))
    return ", ".join(out)


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"default `{field.default_factory()!r}`"
    value = field.default.value if isinstance(field.default, enum.Enum) else field.default
    return (
        "default `" + ("null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)) + "`"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def model_table(model: type[BaseModel]) -> str:
    lines = ["| Field | Type | Presence | Bounds | Meaning |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    f"`{name}`",
                    _type(field.annotation),
                    _default(field),
                    _constraints(field),
                    field.description or "",
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def topic_table() -> str:
    lines = [
        "| Channel | Published by | QoS | Retained | Sequenced event | Payload |",
        "|---|---|---|---|---|---|",
    ]
    for channel in Channel:
        payload = PAYLOAD_TYPES[channel]
        if get_origin(payload) is Annotated:
            name = " / ".join(f"[{m.__name__}](#{m.__name__.lower()})" for m in get_args(get_args(payload)[0]))
        else:
            name = f"[{payload.__name__}](#{payload.__name__.lower()})"
        qos = "0 or 1" if channel is Channel.HEALTH else "1"
        lines.append(
            f"| `{channel.value}` | {'device' if channel in DEVICE_CHANNELS else 'hub'} | {qos} | "
            f"{'yes' if channel in RETAINED_CHANNELS else 'no'} | {'yes' if channel in SEQUENCED_CHANNELS else 'no'} "
            f"| {name} |"
        )
    return "\n".join(lines) + "\n"


def rendered() -> dict[str, str]:
    tables = {"topics": topic_table()}
    tables.update({model.__name__: model_table(model) for model in MODELS})
    return tables


def blocks(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}


def refresh(text: str) -> str:
    tables = rendered()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        body = tables.get(name, match.group("body"))
        return f"<!-- generated:{name} -->\n{body}<!-- end:{name} -->"

    return _BLOCK.sub(replace, text)


if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(refresh(DOC.read_text()))
        print(f"refreshed {DOC}")
    else:
        for name, table in rendered().items():
            print(f"<!-- generated:{name} -->\n{table}<!-- end:{name} -->\n")
