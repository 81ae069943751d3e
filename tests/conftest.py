"""Shared fixtures. The broker is always a real, private Mosquitto: no test mocks it."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub_protocol.topics import device_acl, hub_acl
from hub_server.broker import PrivateBroker

PREFIX = "cot"
SITE = "test-street"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@dataclass
class BrokerSetup:
    """A running private broker and the credentials of everyone allowed on it."""

    broker: PrivateBroker
    prefix: str
    site: str
    hub_user: str
    hub_password: str
    device_passwords: dict[str, str]

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port

    def add_device(self, device: str, site: str | None = None) -> str:
        password = secrets.token_urlsafe(18)
        self.broker.add_user(device, password, device_acl(self.prefix, site or self.site, device))
        self.device_passwords[device] = password
        return password


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., BrokerSetup]]:
    """Start a private mosquitto with a hub user and the given devices (each with its own password and ACL)."""
    started: list[PrivateBroker] = []

    def factory(devices: tuple[str, ...] = ("dev-a", "dev-b"), site: str = SITE) -> BrokerSetup:
        hub_password = secrets.token_urlsafe(18)
        device_passwords = {d: secrets.token_urlsafe(18) for d in devices}
        acl = hub_acl(PREFIX, "hub")
        for device in devices:
            acl += device_acl(PREFIX, site, device)
        users = {"hub": hub_password, **device_passwords}
        broker = PrivateBroker(tmp_path / f"broker-{len(started)}", users, acl)
        broker.start()
        started.append(broker)
        return BrokerSetup(broker, PREFIX, site, "hub", hub_password, device_passwords)

    yield factory
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(make_broker: Callable[..., BrokerSetup]) -> BrokerSetup:
    return make_broker()


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or a clear skip when this checkout has no ../shared beside it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"evaluation data {path} is absent (../shared is not beside this checkout)")
    return path
