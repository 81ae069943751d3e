"""The hub's configuration: one TOML file, validated strictly; secrets stay in files of their own."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hub_protocol.topics import check_prefix
from hub_protocol.validation import StrictModel, load_toml_model


class HubMqttConfig(StrictModel):
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253, description="Broker host name")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port")
    prefix: str = Field(default="cot", max_length=128, description="First level(s) of every topic")
    username: str = Field(default="hub", min_length=1, max_length=64, description="The hub's broker user")
    password_file: str = Field(
        min_length=1, max_length=4096, description="File with the hub's broker password, or a systemd credential name"
    )
    tls: bool = Field(default=False, description="Connect with TLS (off for a broker on the same machine)")
    ca_file: Path | None = Field(default=None, description="CA certificate for TLS")
    keepalive_s: int = Field(default=30, ge=5, le=600, description="MQTT keepalive in seconds")

    @field_validator("prefix")
    @classmethod
    def _prefix_levels(cls, value: str) -> str:
        return check_prefix(value)


class HttpConfig(StrictModel):
    host: str = Field(default="127.0.0.1", description="Address to listen on")
    port: int = Field(default=8080, ge=1, le=65535, description="HTTP port")
    public_url: str = Field(
        default="http://127.0.0.1:8080", max_length=300, description="Base URL residents' links point to"
    )
    behind_tls: bool = Field(
        default=False,
        description="Set when a TLS proxy fronts the hub: cookies get Secure, and the login limits take the client"
        " address from X-Forwarded-For when the request comes from one of trusted_proxies",
    )
    trusted_proxies: list[str] = Field(
        default=["127.0.0.1", "::1"],
        max_length=50,
        description="Addresses or networks (CIDR) of the TLS proxies whose X-Forwarded-For is believed",
    )
    session_key_file: str = Field(
        min_length=1, max_length=4096, description="File with the session signing key, or a systemd credential name"
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024, description="Cap on request bodies")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)") from None
        return value


class StoreConfig(StrictModel):
    path: Path = Field(default=Path("/var/lib/hub-server/hub.sqlite3"), description="SQLite database file")
    url: str | None = Field(
        default=None,
        min_length=len("postgresql://"),
        max_length=500,
        pattern=r"^postgres(ql)?://",
        description="PostgreSQL instead of SQLite, e.g. postgresql://hub@db.example/hub (``path`` is then unused). "
        "Keep the password out of it: libpq reads it from ~/.pgpass or PGPASSFILE",
    )

    @property
    def location(self) -> Path | str:
        """Where the store lives: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.url if self.url is not None else self.path


class AuthConfig(StrictModel):
    session_hours: float = Field(
        default=12, gt=0, le=24 * 30, description="An operator session ends this long after login"
    )
    idle_minutes: float = Field(default=60, ge=1, le=24 * 60, description="...or after this long without a request")
    login_failures_per_user: int = Field(
        default=5, ge=1, le=100, description="Failed logins per user name in the window before attempts are slowed"
    )
    login_failures_per_address: int = Field(
        default=20, ge=1, le=1000, description="Failed logins per client address in the window before slowing"
    )
    login_window_minutes: float = Field(default=15, ge=1, le=24 * 60, description="Window of the login limits")
    login_max_delay_s: float = Field(
        default=300, ge=1, le=3600, description="Longest wait between attempts (it doubles with each failure)"
    )
    known_browser_days: float = Field(
        default=90, ge=1, le=400, description="How long a browser that logged in is exempt from others' failures"
    )


class DynsecConfig(StrictModel):
    """The account administrator of Mosquitto's dynamic-security plugin, as the hub reaches it over MQTT."""

    admin_username: str = Field(
        default="hub-accounts",
        pattern=r"^[a-z0-9-]{1,64}$",
        description="The plugin's admin account (its own, not the hub's mqtt.username)",
    )
    admin_password_file: str = Field(
        min_length=1, max_length=4096, description="File with the admin's password, or a systemd credential name"
    )
    host: str | None = Field(default=None, min_length=1, max_length=253, description="Broker host (else mqtt.host)")
    port: int | None = Field(default=None, ge=1, le=65535, description="Broker port (else mqtt.port)")
    tls: bool | None = Field(default=None, description="Connect with TLS (else mqtt.tls)")
    ca_file: Path | None = Field(default=None, description="CA certificate for TLS (else mqtt.ca_file)")
    timeout_s: float = Field(default=10, ge=1, le=120, description="Wait this long for each answer of the plugin")


_FILE_SETTINGS = ("passwd_file", "acl_file", "reload_command", "pid_file")


class ProvisioningConfig(StrictModel):
    """How ``hub-server device add/revoke`` changes the broker's accounts: the password file and ACL it writes
    and how it reloads them, or the dynamic-security plugin's admin account."""

    broker_accounts: Literal["files", "dynsec"] = Field(
        default="files",
        description="files: password file + ACL + reload, on the broker's machine; dynsec: Mosquitto's"
        " dynamic-security plugin over MQTT, from any hub instance",
    )
    dynsec: DynsecConfig | None = Field(
        default=None, description="The plugin's admin account (broker_accounts = dynsec)"
    )

    passwd_file: Path = Field(default=Path("/etc/mosquitto/hub/passwd"), description="Mosquitto password_file")
    acl_file: Path = Field(
        default=Path("/etc/mosquitto/hub/acl"), description="Mosquitto acl_file (the hub rewrites it whole)"
    )
    reload_command: list[str] | None = Field(
        default=None, max_length=20, description="Command that makes Mosquitto re-read both, e.g. systemctl reload"
    )
    pid_file: Path | None = Field(default=None, description="Else: Mosquitto's pid file, sent SIGHUP")
    output_dir: Path = Field(
        default=Path("/var/lib/hub-server/provisioned"),
        description="Folder where each device's agent.toml and credential file are written for the technician",
    )
    agent_mqtt_host: str = Field(min_length=1, max_length=253, description="Broker host name as agents reach it")
    agent_mqtt_port: int = Field(default=8883, ge=1, le=65535, description="Broker port as agents reach it")
    agent_tls: bool = Field(default=True, description="Agents connect with TLS")
    agent_ca_file: Path | None = Field(
        default=None, description="Private CA certificate the agents need: copied beside their config as ca.pem"
    )

    @model_validator(mode="after")
    def _one_reload_way(self) -> ProvisioningConfig:
        if self.reload_command is not None and self.pid_file is not None:
            raise ValueError("give reload_command or pid_file, not both")
        if self.broker_accounts == "dynsec":
            if self.dynsec is None:
                raise ValueError(
                    'broker_accounts = "dynsec" needs a [provisioning.dynsec] section with admin_password_file'
                )
            # Set to anything but their defaults (a dumped config holds the defaults, and must load again).
            fields = type(self).model_fields
            if stray := [name for name in _FILE_SETTINGS if getattr(self, name) != fields[name].default]:
                raise ValueError(
                    f'{", ".join(stray)}: only for broker_accounts = "files"; remove with "dynsec" (the plugin'
                    " keeps the accounts and applies changes at once)"
                )
        elif self.dynsec is not None:
            raise ValueError(
                '[provisioning.dynsec] is set but broker_accounts is "files": set broker_accounts = "dynsec"'
            )
        return self


class LogisticsConfig(StrictModel):
    pickup_days: int = Field(default=7, ge=1, le=60, description="Days a resident has to collect after drop-off")
    extend_days: int = Field(default=3, ge=0, le=30, description="Days one extension adds (0: residents cannot extend)")
    dropoff_hours: int = Field(default=72, ge=1, le=24 * 30, description="Hours a drop-off code stays valid")
    return_days: int = Field(default=7, ge=1, le=60, description="Days a return code stays valid after expiry")
    personal_data_days: int = Field(
        default=14, ge=0, le=365, description="Days after collection, return or cancel before name and contact go"
    )
    code_digits: int = Field(default=8, ge=6, le=12, description="Digits of every locker code")
    webhook_url: str | None = Field(
        default=None, max_length=500, pattern=r"^https?://", description="Where resident notifications are posted"
    )
    webhook_secret_file: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="File (or systemd credential) with a key to sign each webhook body (X-Hub-Signature-256)",
    )
    command_ttl_s: int = Field(
        default=3600, ge=60, le=7 * 86_400, description="Device refuses a command older than this"
    )
    check_interval_s: float = Field(default=10, ge=0.1, le=3600, description="How often expiry and resends run")


class AlarmsConfig(StrictModel):
    offline_after_s: int = Field(default=300, ge=10, le=7 * 86_400, description="Offline this long raises an alarm")
    health_silence_s: int = Field(
        default=900, ge=30, le=7 * 86_400, description="No health message for this long counts as offline too"
    )
    door_open_s: int = Field(
        default=300, ge=10, le=86_400, description="Door open this long (by locker events) raises door-left-open"
    )
    outbox_backlog_s: int = Field(
        default=3600, ge=60, le=30 * 86_400, description="Oldest unacknowledged event older than this raises an alarm"
    )
    outbox_quiet_s: int = Field(
        default=3600, ge=10, le=30 * 86_400, description="An outbox-dropping alarm ends after this long without drops"
    )
    sequence_gap_s: int = Field(
        default=600, ge=1, le=7 * 86_400, description="Missing sequence numbers unfilled this long raise an alarm"
    )
    evaluate_interval_s: float = Field(default=30, ge=0.1, le=3600, description="How often alarms are evaluated")
    notify_webhook: bool = Field(
        default=True, description="Post each alarm's start and end to logistics.webhook_url too (when it is set)"
    )


class RetentionConfig(StrictModel):
    raw_days: int = Field(default=90, ge=1, le=3650, description="Days flow windows are kept as received")
    hourly_days: int = Field(default=730, ge=1, le=36_500, description="Days hourly roll-ups are kept (daily: forever)")
    alarm_days: int = Field(default=365, ge=1, le=3650, description="Days ended alarms are kept")
    run_at_hour: int = Field(default=3, ge=0, le=23, description="UTC hour of the daily run")


class IngestConfig(StrictModel):
    offline_after_s: float = Field(
        default=180, ge=2, le=86_400, description="Mark a device offline after this long without any message"
    )
    gap_after_s: float = Field(
        default=60, ge=0.5, le=86_400, description="A hole in a boot's sequence this old is recorded as a gap"
    )
    flow_max_age_days: int = Field(
        default=3650,
        ge=1,
        le=36_500,
        description="Flow windows that started longer ago than this are refused (as are those before 2020)",
    )
    client_id: str = Field(
        default="hub-ingest", pattern=r"^[a-z0-9-]{1,64}$", description="MQTT client id (persistent session)"
    )
    writer_process: bool = Field(
        default=True, description="Decode and store in a process of its own (off: a thread, e.g. for small tests)"
    )
    shared_group: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]{1,32}$",
        description="Share the device messages with other hub instances through this MQTT shared subscription "
        "group (needs store.url: PostgreSQL); each instance then connects with a client id of its own",
    )


class HubConfig(StrictModel):
    config_version: int = Field(default=1, ge=1, le=1, description="Config format")
    mqtt: HubMqttConfig = Field(description="Connection to the broker")
    http: HttpConfig = Field(description="Web server")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Storage")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="MQTT ingest of device messages")
    logistics: LogisticsConfig = Field(default_factory=LogisticsConfig, description="Locker deliveries and shares")
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig, description="Alarm thresholds")
    retention: RetentionConfig = Field(default_factory=RetentionConfig, description="How long data is kept")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Operator sessions and login limits")
    provisioning: ProvisioningConfig | None = Field(
        default=None, description="Device credentials on the broker (absent: device add/revoke are refused)"
    )

    @model_validator(mode="after")
    def _shared_ingest_needs_postgresql(self) -> HubConfig:
        if self.ingest.shared_group is not None and self.store.url is None:
            raise ValueError(
                "ingest.shared_group needs store.url (PostgreSQL): instances sharing the ingest keep what they "
                "stored in one database; SQLite keeps one hub instance"
            )
        if self.ingest.shared_group is not None and self.provisioning and self.provisioning.broker_accounts != "dynsec":
            raise ValueError(
                'ingest.shared_group needs provisioning.broker_accounts = "dynsec": several instances change '
                "device accounts through the broker, not through files only the broker's machine has"
            )
        return self

    @model_validator(mode="after")
    def _own_admin_account(self) -> HubConfig:
        dynsec = self.provisioning.dynsec if self.provisioning else None
        if dynsec is not None and dynsec.admin_username == self.mqtt.username:
            raise ValueError(
                "provisioning.dynsec.admin_username must differ from mqtt.username: the account administrator"
                " is an account of its own, never the hub's"
            )
        return self


def load_hub_config(path: Path) -> HubConfig:
    return load_toml_model(HubConfig, path)
