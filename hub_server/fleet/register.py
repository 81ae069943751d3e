"""The sensor register as the hub publishes it: each device's entry, with the hub's own retention.

A device cannot know how long the hub keeps what it sends, so the ``retention`` of every entry the hub
shows or exports is written here from the hub's retention settings, whatever the device sent.
"""

from __future__ import annotations

from hub_protocol.register import RegisterEntry
from hub_server.config import HubConfig
from hub_server.store import devices as device_store
from hub_server.store import provisioning
from hub_server.store.engine import Connection


def retention_statement(config: HubConfig) -> str:
    """What the hub keeps and for how long, from its settings (what ``hub_server.records.retention`` enforces)."""
    kept = config.retention
    return (
        f"flow windows and health readings {kept.raw_days} days as received, hourly totals {kept.hourly_days} "
        "days, daily totals and locker events without limit; residents' names and contacts "
        f"{config.logistics.personal_data_days} days after their parcel left the locker"
    )


def public_entries(conn: Connection, config: HubConfig) -> list[RegisterEntry]:
    """Every device's latest entry, by site and device; revoked devices left out; retention from the hub."""
    revoked = provisioning.revoked_devices(conn)
    statement = retention_statement(config)
    return [
        entry.model_copy(update={"retention": statement})
        for entry in device_store.register_entries(conn)
        if entry.device not in revoked
    ]
