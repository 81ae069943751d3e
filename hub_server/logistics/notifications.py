"""Telling residents (and operators) about their parcels: a small interface, a webhook to start with.

Messages are queued in the database inside the same transaction as the status change that causes them,
so none is lost when the receiver is down; the logistics loop sends them with growing delays between tries.
A message carries the resident's contact, so its stored copy is cleared once sent or given up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

import aiohttp
from aiohttp import web


class NotificationEvent(StrEnum):
    READY = "parcel-ready"
    EXPIRED = "parcel-expired"
    RETURN_CODE = "return-code"


@dataclass(frozen=True, slots=True)
class Notification:
    event: NotificationEvent
    delivery: str
    kind: str
    locker: str
    compartment: int
    link: str | None = None
    resident_name: str | None = None
    resident_contact: str | None = None
    pickup_by: str | None = None
    return_code: str | None = None
    """Only in RETURN_CODE messages for operators; never queued in the database."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["event"] = self.event.value
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        return cls(**{**data, "event": NotificationEvent(data["event"])})


@dataclass(frozen=True, slots=True)
class AlarmNotice:
    """For operators: an alarm started or ended (see ``hub_server.fleet.alarms``)."""

    event: str  # "alarm-raised" or "alarm-ended"
    alarm: int
    device: str
    kind: str
    detail: str
    started_at: str
    compartment: int | None = None
    ended_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class Message(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class NotificationError(RuntimeError):
    """The receiver did not take the message; it will be tried again."""


class Notifier(Protocol):
    async def send(self, message: Message) -> None:
        """Deliver one message or raise NotificationError."""
        ...


SIGNATURE_HEADER = "X-Hub-Signature-256"


def sign(key: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC of the body>``: the receiver recomputes it with the shared key to trust the message."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs each message as JSON to one URL, signed when a key is given; any 2xx answer means delivered."""

    def __init__(self, url: str, timeout_s: float = 10.0, key: bytes | None = None) -> None:
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.key = key

    async def send(self, message: Message) -> None:
        body = json.dumps(message.to_json(), sort_keys=True).encode()
        headers = {"Content-Type": "application/json"}
        if self.key is not None:
            headers[SIGNATURE_HEADER] = sign(self.key, body)
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as session,
                session.post(self.url, data=body, headers=headers, allow_redirects=False) as response,
            ):
                if not 200 <= response.status < 300:
                    raise NotificationError(f"webhook answered HTTP {response.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise NotificationError(f"webhook unreachable: {type(exc).__name__}: {exc}") from exc


NOTIFIER_KEY: web.AppKey[WebhookNotifier | None] = web.AppKey("logistics_notifier")
"""The residents' webhook (None without ``logistics.webhook_url``); built at setup so a bad key file fails early."""
