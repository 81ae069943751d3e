"""The wire contract shared by the edge agent and the hub server.

Both programs import this package and nothing else of each other: the MQTT topic tree (``topics``),
every payload as a versioned pydantic model (``payloads``), and the validation helpers they share.
"""

PROTOCOL_VERSION = 1
"""Major version of the contract; it is part of every topic (``<prefix>/v1/...``)."""

MAX_PAYLOAD_BYTES = 64 * 1024
"""No payload on the wire may be larger than this; receivers reject bigger ones unread."""

IDENTIFIER_PATTERN = r"^[a-z0-9-]{1,64}$"
"""Device, site, boot, line and command ids all share this alphabet, so they are safe in topics and paths."""

__all__ = ["IDENTIFIER_PATTERN", "MAX_PAYLOAD_BYTES", "PROTOCOL_VERSION"]
