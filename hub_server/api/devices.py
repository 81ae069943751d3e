"""Devices: list with status, one device with its latest health, health history; provisioning and revocation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from hub_protocol.commands import CommandBase
from hub_protocol.validation import Identifier, StrictModel
from hub_server.accounts import audit
from hub_server.api.registry import ApiError, ApiRoutes, Call, QueryDatetime, utc_text
from hub_server.fleet import device_config
from hub_server.fleet import devices as provisioning_service
from hub_server.fleet.device_config import MAX_CONFIG_CHARS, ConfigPushError, audit_detail, push_command, reload_command
from hub_server.ingest.service import ingest_of
from hub_server.store import readings
from hub_server.store.accounts import Role
from hub_server.store.provisioning import ProvisioningError, UnknownDevice
from hub_server.store.readings import DeviceRow

routes = ApiRoutes("devices", "Devices, their status and health; provisioning (admin)")


class DeviceOut(BaseModel):
    device: str
    site: str
    online: bool = Field(description="Connected now (from its retained status and last will)")
    last_seen: datetime | None = Field(description="Last message from the device")
    first_seen: datetime | None
    boot: str | None = Field(description="Boot id of the running agent")
    offline_reason: str | None = Field(description="will, graceful, silent or broker-restart while offline")
    dropped_total: int = Field(description="Events the device's outbox dropped at its cap since install")
    provisioned: bool = Field(description="Has broker credentials issued by this hub")
    revoked: bool = Field(description="Credentials revoked: the broker and the hub refuse it")

    @classmethod
    def of(cls, row: DeviceRow) -> DeviceOut:
        return cls.model_validate(row, from_attributes=True)


class DeviceDetailOut(DeviceOut):
    health: dict[str, Any] | None = Field(description="Latest health message as received (see docs/protocol.md)")


class DeviceQuery(StrictModel):
    site: Identifier | None = Field(default=None, description="Only this site")


class DevicePath(StrictModel):
    device: Identifier = Field(description="Device id")


class HealthQuery(StrictModel):
    since: QueryDatetime | None = Field(default=None, description="From (default: 24 hours ago)")
    until: QueryDatetime | None = Field(default=None, description="Before")
    limit: int = Field(default=1000, ge=1, le=10_000, description="At most this many samples")


class HealthSampleOut(BaseModel):
    at: datetime
    boot: str
    uptime_s: float
    cpu_temp_c: float | None
    load1: float
    mem_used_fraction: float
    disk_free_bytes: int
    outbox_depth: int
    outbox_oldest_age_s: float
    dropped_total: int
    camera_state: str
    fps: float


class DeviceIn(StrictModel):
    device: Identifier = Field(description="New device id; also its broker user name")
    site: Identifier = Field(description="Site the device belongs to")


class ProvisionedOut(BaseModel):
    device: str
    site: str
    agent_config: str = Field(description="The agent's config (TOML) to copy to the device")
    mqtt_password: str = Field(description="The device's broker password: shown this once, never stored in clear")
    files: str = Field(description="Folder on the hub where both were also written")
    broker_reloaded: bool = Field(description="False: reload Mosquitto yourself")


class RevokedOut(BaseModel):
    device: str
    revoked_at: str
    broker_reloaded: bool


@routes.get(
    "/devices", summary="Devices with their status", role=Role.VIEWER, query=DeviceQuery, response=list[DeviceOut]
)
async def list_devices(call: Call) -> web.StreamResponse:
    q: DeviceQuery = call.query
    rows = await call.db.read(readings.list_devices, q.site)
    return call.json([DeviceOut.of(r) for r in rows])


@routes.get(
    "/devices/{device}",
    summary="One device with its latest health",
    role=Role.VIEWER,
    path_params=DevicePath,
    response=DeviceDetailOut,
)
async def get_device(call: Call) -> web.StreamResponse:
    path: DevicePath = call.path

    def load() -> DeviceDetailOut | None:
        row = readings.get_device(call.db.conn, path.device)
        if row is None:
            return None
        return DeviceDetailOut(
            **DeviceOut.of(row).model_dump(), health=readings.latest_health(call.db.conn, row.device)
        )

    found = await asyncio.to_thread(load)
    if found is None:
        raise ApiError(404, f"no device {path.device!r}")
    return call.json(found)


@routes.get(
    "/devices/{device}/health",
    summary="Health samples of a device, oldest first",
    role=Role.VIEWER,
    path_params=DevicePath,
    query=HealthQuery,
    response=list[HealthSampleOut],
)
async def get_device_health(call: Call) -> web.StreamResponse:
    path: DevicePath = call.path
    q: HealthQuery = call.query
    since = q.since or datetime.now(UTC) - timedelta(hours=24)
    if await call.db.read(readings.get_device, path.device) is None:
        raise ApiError(404, f"no device {path.device!r}")
    samples = await call.db.read(readings.health_history, path.device, since, q.until, q.limit)
    return call.json([HealthSampleOut.model_validate(s) for s in samples])


@routes.post(
    "/devices",
    summary="Provision a device: own broker user, password and ACL",
    role=Role.ADMIN,
    body=DeviceIn,
    response=ProvisionedOut,
    status=201,
    statuses=(409,),
)
async def provision_device(call: Call) -> web.StreamResponse:
    """The password is in this answer and in the credential file on the hub; the hub keeps only a hash."""
    body: DeviceIn = call.body
    try:
        done = await asyncio.to_thread(
            provisioning_service.add_device, call.db, call.config, body.device, body.site, call.actor
        )
    except (ProvisioningError, ValueError) as exc:
        raise ApiError(409, str(exc)) from None
    out = ProvisionedOut(
        device=done.device.device,
        site=done.device.site,
        agent_config=done.config_path.read_text(encoding="utf-8"),
        mqtt_password=done.credential_path.read_text(encoding="utf-8").strip(),
        files=str(done.folder),
        broker_reloaded=done.reloaded,
    )
    return call.json(out, status=201)


@routes.post(
    "/devices/{device}/revoke",
    summary="Revoke a device's credentials at once",
    role=Role.ADMIN,
    path_params=DevicePath,
    response=RevokedOut,
    statuses=(409,),
)
async def revoke_device(call: Call) -> web.StreamResponse:
    path: DevicePath = call.path
    try:
        record, reloaded = await asyncio.to_thread(
            provisioning_service.revoke_device, call.db, call.config, path.device, call.actor
        )
    except ProvisioningError as exc:
        raise ApiError(404 if isinstance(exc, UnknownDevice) else 409, str(exc)) from None
    call.live.revoked = call.live.revoked | {record.device}
    assert record.revoked_at is not None
    return call.json(RevokedOut(device=record.device, revoked_at=utc_text(record.revoked_at), broker_reloaded=reloaded))


# --- config changes without SSH ---------------------------------------------------------------------------


class ConfigIn(StrictModel):
    config_toml: str = Field(min_length=1, max_length=MAX_CONFIG_CHARS, description="The complete new agent config")


class CommandSentOut(BaseModel):
    command: str = Field(description="Command id; poll /devices/{device}/commands/{command} for the answer")
    device: str
    action: str
    expires_at: datetime = Field(description="The device refuses the command after this")


class CommandPath(StrictModel):
    device: Identifier = Field(description="Device id")
    command_id: Identifier = Field(description="Command id")


class CommandOutcomeOut(BaseModel):
    command: str
    device: str
    status: str | None = Field(description="done, failed, refused-...; null while the device has not answered")
    detail: str | None = Field(description="The device's reason or outcome")
    at: datetime | None


async def _send(call: Call, command: CommandBase, action: str) -> web.StreamResponse:
    ingest = ingest_of(call.request.app)
    if ingest is None:
        raise ApiError(409, "the hub's ingest is not running: commands cannot be sent")

    def send() -> None:
        ingest.publish_command(command)
        with call.db.write() as conn:
            audit.record(conn, call.actor, action, f"device:{command.device}", audit_detail(command))

    try:
        await asyncio.to_thread(send)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    except RuntimeError as exc:
        raise ApiError(409, str(exc)) from None
    sent = CommandSentOut(command=command.id, device=command.device, action=action, expires_at=command.expires_at)
    return call.json(sent, status=202)


@routes.post(
    "/devices/{device}/config",
    summary="Send a new agent config (validated, tried, rolled back if bad)",
    role=Role.ADMIN,
    path_params=DevicePath,
    body=ConfigIn,
    response=CommandSentOut,
    status=202,
    statuses=(409,),
)
async def push_device_config(call: Call) -> web.StreamResponse:
    """The text must be TOML naming this device in [device] id. Audited as device.push-config (hash, not text)."""
    path: DevicePath = call.path
    body: ConfigIn = call.body
    try:
        command = push_command(path.device, body.config_toml, call.actor)
    except ConfigPushError as exc:
        raise ApiError(422, "config refused", [f"body.config_toml: {exc}"]) from None
    return await _send(call, command, "device.push-config")


@routes.post(
    "/devices/{device}/reload-config",
    summary="Make the agent re-read its config file",
    role=Role.ADMIN,
    path_params=DevicePath,
    response=CommandSentOut,
    status=202,
    statuses=(409,),
)
async def reload_device_config(call: Call) -> web.StreamResponse:
    path: DevicePath = call.path
    return await _send(call, reload_command(path.device, call.actor), "device.reload-config")


@routes.get(
    "/devices/{device}/commands/{command_id}",
    summary="The device's answer to a command",
    role=Role.OPERATOR,
    path_params=CommandPath,
    response=CommandOutcomeOut,
)
async def get_command_outcome(call: Call) -> web.StreamResponse:
    path: CommandPath = call.path
    found = await call.db.read(device_config.outcome, path.device, path.command_id)
    return call.json(
        CommandOutcomeOut(
            command=found.command_id, device=found.device, status=found.status, detail=found.detail, at=found.at
        )
    )
