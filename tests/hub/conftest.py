"""Fixtures of the hub core tests: a hub config in a temporary folder, the app, users and tokens."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub_protocol import tomlwrite
from hub_server.app import create_app
from hub_server.cli import main
from hub_server.config import HubConfig
from hub_server.fleet.broker import PrivateBroker
from hub_server.store import accounts
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests import postgres
from tests.conftest import BrokerSetup, write_secret

PASSWORD = "correct horse battery"
SITE = "test-street"

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def hub_config_data(folder: Path, **sections: Any) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "mqtt": {"password_file": str(write_secret(folder / "mqtt.pw", secrets.token_urlsafe(18)))},
        "http": {"session_key_file": str(write_secret(folder / "session.key", secrets.token_urlsafe(48)))},
        "store": {"path": str(folder / "hub.sqlite3")},
    }
    if postgres.store_under_test() == "postgresql":
        postgres.require()
        data["store"] = {"url": postgres.fresh_database()}
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value}
    return data


@pytest.fixture
def hub_config(tmp_path: Path) -> HubConfig:
    return HubConfig.model_validate(hub_config_data(tmp_path / "hub"))


@pytest.fixture
def db(hub_config: HubConfig) -> Database:
    # Refusing store calls on the loop: every API and page test also proves its handler does not block it.
    return Database(hub_config.store.location, refuse_on_loop=True)


def add_user(db: Database, name: str, role: Role, password: str = PASSWORD) -> None:
    with db.write() as conn:
        accounts.add_user(conn, name, role, password)


def add_token(db: Database, role: Role, name: str = "integration") -> str:
    token = "hubt_" + secrets.token_urlsafe(32)
    with db.write() as conn:
        accounts.add_token(conn, name, role, token, "test")
    return token


@pytest.fixture
async def app(hub_config: HubConfig, db: Database) -> web.Application:
    return create_app(hub_config, database=db, background=False, pages=False)


@pytest.fixture
async def client(app: web.Application, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(app)


async def login(client: TestClient[Any, Any], name: str, password: str = PASSWORD, csrf: str | None = None) -> str:
    """Log in through the API; returns the CSRF token to send on state-changing requests. Logging in again
    from a session is itself a state change: pass that session's ``csrf``."""
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    response = await client.post("/api/v1/session", json={"username": name, "password": password}, headers=headers)
    assert response.status == 200, await response.text()
    body = await response.json()
    token: str = body["csrf_token"]
    return token


@pytest.fixture
def managed_broker(make_broker: Callable[..., BrokerSetup], tmp_path: Path) -> tuple[BrokerSetup, Path, HubConfig]:
    """A broker holding only the hub's user, and a hub config that manages its files."""
    broker = make_broker(devices=())
    assert broker.broker.process is not None
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(str(broker.broker.process.pid))
    data = hub_config_data(
        tmp_path / "hub",
        mqtt={"port": broker.port, "username": "hub"},
        provisioning={
            "passwd_file": str(broker.broker.folder / "passwd"),
            "acl_file": str(broker.broker.folder / "acl"),
            "pid_file": str(pid_file),
            "output_dir": str(tmp_path / "out"),
            "agent_mqtt_host": "127.0.0.1",
            "agent_mqtt_port": broker.device_port,
            "agent_tls": False,
        },
    )
    write_secret(Path(data["mqtt"]["password_file"]), broker.hub_password)
    config = HubConfig.model_validate(data)
    config_path = tmp_path / "hub.toml"
    config_path.write_text(tomlwrite.dumps(data))
    return broker, config_path, config


def dynsec_hub_config(make_broker: Callable[..., BrokerSetup], tmp_path: Path) -> tuple[BrokerSetup, Path, HubConfig]:
    """A broker whose accounts live in the dynamic-security plugin, its first file written by
    ``hub-server device dynsec-init`` (the admin only), and a hub config that manages it over MQTT. The hub's
    own account is created by the hub at its first account change, as on a fresh install."""
    config_path = tmp_path / "hub.toml"
    holder: dict[str, Any] = {}

    def prepare(broker: PrivateBroker) -> None:
        assert broker.dynsec_admin is not None
        data = hub_config_data(
            tmp_path / "hub",
            mqtt={"port": broker.port, "username": "hub"},
            provisioning={
                "broker_accounts": "dynsec",
                "dynsec": {
                    "admin_username": broker.dynsec_admin[0],
                    "admin_password_file": str(write_secret(tmp_path / "hub" / "admin.pw", broker.dynsec_admin[1])),
                },
                "output_dir": str(tmp_path / "out"),
                "agent_mqtt_host": "127.0.0.1",
                "agent_mqtt_port": broker.device_port,
                "agent_tls": False,
            },
        )
        config_path.write_text(tomlwrite.dumps(data))
        assert main(["device", "--config", str(config_path), "dynsec-init", str(broker.dynsec_path)]) == 0
        holder["data"] = data

    broker = make_broker(devices=(), dynsec=True, hub_user=False, prepare=prepare)
    write_secret(Path(holder["data"]["mqtt"]["password_file"]), broker.hub_password)
    return broker, config_path, HubConfig.model_validate(holder["data"])


@pytest.fixture(params=["files", "dynsec"])
def accounts_broker(
    request: pytest.FixtureRequest, make_broker: Callable[..., BrokerSetup], tmp_path: Path
) -> tuple[BrokerSetup, Path, HubConfig]:
    """Each way the hub keeps the broker's accounts: password file + ACL + reload, or the dynamic-security
    plugin (skipped where Mosquitto has no such plugin)."""
    if request.param == "dynsec":
        return dynsec_hub_config(make_broker, tmp_path)
    managed: tuple[BrokerSetup, Path, HubConfig] = request.getfixturevalue("managed_broker")
    return managed


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where an empty store is, once on each engine (PostgreSQL: a fresh database, skipped without a server)."""
    if request.param == "postgresql":
        postgres.require()
        return postgres.fresh_database()
    return tmp_path / "hub.sqlite3"
