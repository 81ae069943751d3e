"""Talking to the hub's broker the way the agent does, to tell a technician what stands in the way."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from edge_agent.guard import guarded


class BrokerOutcome(StrEnum):
    OK = "ok"
    NAME_UNKNOWN = "name-unknown"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    TLS_FAILED = "tls-failed"
    BAD_CREDENTIALS = "bad-credentials"
    NOT_AUTHORISED = "not-authorised"
    PROTOCOL = "protocol"


@dataclass(frozen=True)
class BrokerReading:
    outcome: BrokerOutcome
    detail: str = ""
    seconds: float = 0.0


# CONNACK codes (MQTT 5 numbering; paho maps 3.1.1 codes onto them). Mosquitto answers a wrong password
# or an unknown user with "not authorized" (135), other brokers with 134: both mean "these credentials".
_CREDENTIAL_CODES = {134, 135, 140}


def _tcp_outcome(exc: OSError) -> BrokerOutcome:
    if isinstance(exc, socket.gaierror):
        return BrokerOutcome.NAME_UNKNOWN
    if isinstance(exc, ConnectionRefusedError):
        return BrokerOutcome.REFUSED
    if isinstance(exc, TimeoutError | socket.timeout):
        return BrokerOutcome.TIMEOUT
    return BrokerOutcome.UNREACHABLE


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The agent's TLS settings: verify the chain (its CA file or the system's) and the host name."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def probe_broker(
    host: str,
    port: int,
    username: str,
    password: str,
    *,
    client_id: str,
    tls: bool,
    ca_file: Path | None,
    own_topic: str,
    timeout_s: float,
) -> BrokerReading:
    """Connect with the device's credentials and subscribe to its own command topic, then leave.

    ``client_id`` must differ from the running agent's, or the broker would disconnect the agent.
    """
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        return BrokerReading(_tcp_outcome(exc), exc.strerror or str(exc) or type(exc).__name__)
    reading = _mqtt_session(host, port, username, password, client_id, tls, ca_file, own_topic, timeout_s)
    return BrokerReading(reading.outcome, reading.detail, time.monotonic() - started)


def _mqtt_session(
    host: str,
    port: int,
    username: str,
    password: str,
    client_id: str,
    tls: bool,
    ca_file: Path | None,
    own_topic: str,
    timeout_s: float,
) -> BrokerReading:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    done = threading.Event()
    result: list[BrokerReading] = []

    def finish(reading: BrokerReading) -> None:
        if not result:
            result.append(reading)
        done.set()

    def on_connect(client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(own_topic, qos=1)
        elif reason.value in _CREDENTIAL_CODES:
            finish(BrokerReading(BrokerOutcome.BAD_CREDENTIALS, f"broker answered: {reason}"))
        else:
            finish(BrokerReading(BrokerOutcome.PROTOCOL, f"broker answered: {reason}"))

    def on_subscribe(_client: Any, _userdata: Any, _mid: Any, reasons: Any, _props: Any) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            finish(BrokerReading(BrokerOutcome.NOT_AUTHORISED, f"subscription to {own_topic}: {refused[0]}"))
        else:
            finish(BrokerReading(BrokerOutcome.OK, f"connected as {username}, subscribed to {own_topic}"))

    def on_disconnect(_client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        finish(BrokerReading(BrokerOutcome.PROTOCOL, f"broker closed the connection: {reason}"))

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.connect_timeout = timeout_s
    # A callback that raised would end paho's loop thread and leave the check waiting for its timeout.
    client.on_connect = guarded(on_connect, "broker check on_connect")
    client.on_subscribe = guarded(on_subscribe, "broker check on_subscribe")
    client.on_disconnect = guarded(on_disconnect, "broker check on_disconnect")
    try:
        if tls:
            client.tls_set_context(tls_context(ca_file))
        client.connect(host, port, keepalive=max(5, int(timeout_s * 2)))
    except ssl.SSLError as exc:
        return BrokerReading(BrokerOutcome.TLS_FAILED, _ssl_reason(exc))
    except OSError as exc:
        return BrokerReading(_tcp_outcome(exc), exc.strerror or str(exc))
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            return BrokerReading(BrokerOutcome.TIMEOUT, f"no answer from the broker within {timeout_s:g} s")
        return result[0]
    finally:
        client.disconnect()
        client.loop_stop()


def _ssl_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message or exc.reason or exc)
    return str(exc.reason or exc)


@dataclass(frozen=True)
class TlsReading:
    ok: bool
    error: str = ""
    not_after: datetime | None = None
    subject: str = ""
    issuer: str = ""

    def days_left(self, now: datetime) -> float | None:
        return None if self.not_after is None else (self.not_after - now).total_seconds() / 86400


def _name(parts: Any) -> str:
    return ", ".join(f"{key}={value}" for rdn in parts or () for key, value in rdn)


def probe_tls(host: str, port: int, ca_file: Path | None, timeout_s: float) -> TlsReading:
    """Handshake as the agent would; on success report the server certificate's names and expiry."""
    if ca_file is not None and not ca_file.is_file():
        return TlsReading(False, f"CA file {ca_file} does not exist")
    try:
        context = tls_context(ca_file)
    except (OSError, ssl.SSLError) as exc:
        return TlsReading(False, f"CA file {ca_file} is not a usable certificate: {exc}")
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as sock,
        ):
            cert = sock.getpeercert()
    except ssl.SSLError as exc:
        return TlsReading(False, _ssl_reason(exc))
    except OSError as exc:
        return TlsReading(False, f"no TLS connection to {host}:{port}: {exc.strerror or exc}")
    if not cert:
        return TlsReading(False, "the broker sent no certificate")
    not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), UTC)
    return TlsReading(True, not_after=not_after, subject=_name(cert.get("subject")), issuer=_name(cert.get("issuer")))
