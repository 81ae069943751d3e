-- Alarms raised by devices (door left open, forced open, lockout, ...) or by the hub (offline, sequence gap),
-- each with start, end and an operator's acknowledgement. At most one open alarm per device, kind and
-- compartment: a repeated raise refreshes it instead of adding a row.

CREATE TABLE alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    compartment INTEGER NOT NULL DEFAULT 0,   -- 0: the device as a whole
    source TEXT NOT NULL CHECK (source IN ('device', 'hub')),
    detail TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ended_at TEXT,
    acknowledged_by TEXT,
    acknowledged_at TEXT
);
CREATE UNIQUE INDEX alarms_one_open ON alarms (device, kind, compartment) WHERE ended_at IS NULL;
CREATE INDEX alarms_started ON alarms (started_at);

-- How far logistics and alarms have read each ingest table (received_at, Unix seconds).
CREATE TABLE feed_cursors (
    name TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);

-- Events each reader has applied: the cursor looks back a little (batches may commit with equal or slightly
-- out-of-order receive times), and this table keeps that look-back from applying anything twice.
CREATE TABLE feed_seen (
    name TEXT NOT NULL,
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (name, device, boot, seq)
) WITHOUT ROWID;
