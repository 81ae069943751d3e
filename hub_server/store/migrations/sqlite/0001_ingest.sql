-- Ingest: every event once, keyed by (device, boot, seq); typed tables for what the API and pages query.
-- Times are Unix seconds (REAL, UTC). Payloads are the JSON as received (already validated).

CREATE TABLE devices (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    online INTEGER NOT NULL DEFAULT 0,
    offline_reason TEXT,          -- will | graceful | silent; NULL while online
    status_changed REAL,
    boot TEXT,                    -- boot of the latest online status
    dropped_total INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE events (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    channel TEXT NOT NULL,
    received_at REAL NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;

-- In-memory watermark state is rebuilt from here at start: upto = every seq <= upto is stored or declared dropped.
CREATE TABLE boot_watermarks (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    upto INTEGER NOT NULL,
    max_seq INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (device, boot)
) WITHOUT ROWID;

-- Ranges a device declared dropped by its outbox (OutboxGap); a range only grows.
CREATE TABLE dropped_ranges (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    declared_at REAL NOT NULL,
    dropped_total INTEGER NOT NULL,
    PRIMARY KEY (device, boot, first_seq)
) WITHOUT ROWID;

-- Holes in a boot's sequence that stayed open longer than ingest.gap_after_s.
CREATE TABLE sequence_gaps (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    detected_at REAL NOT NULL,
    resolved_at REAL,
    UNIQUE (device, boot, first_seq)
);
CREATE INDEX sequence_gaps_open ON sequence_gaps (resolved_at, device);

CREATE TABLE flow_windows (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    site TEXT NOT NULL,
    window_start REAL NOT NULL,
    window_seconds INTEGER NOT NULL,
    observed_fraction REAL NOT NULL,
    mean_fps REAL NOT NULL,
    dropped_frames INTEGER NOT NULL,
    policy_kind TEXT NOT NULL,
    policy TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (device, boot, seq)
);
CREATE INDEX flow_windows_start ON flow_windows (window_start);
CREATE INDEX flow_windows_device_start ON flow_windows (device, window_start);

-- Every cell with its window's columns, read from the window as received (events.payload). A row per cell
-- (eight or more per window) would cost the ingest more than validating the event. Read-only: retention
-- deletes the flow_windows row and its events row together.
CREATE VIEW flow_cells AS
SELECT w.device, w.boot, w.seq, w.site, w.window_start, w.window_seconds,
       json_extract(c.value, '$.line') AS line,
       json_extract(c.value, '$.direction') AS direction,
       json_extract(c.value, '$.object_class') AS object_class,
       json_extract(c.value, '$.count') AS count
FROM flow_windows w
JOIN events e ON e.device = w.device AND e.boot = w.boot AND e.seq = w.seq,
     json_each(e.payload, '$.cells') c;

CREATE TABLE locker_events (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    site TEXT NOT NULL,
    at REAL NOT NULL,
    compartment INTEGER NOT NULL,
    state TEXT NOT NULL,
    previous TEXT,
    cause TEXT NOT NULL,
    reservation TEXT,
    operator TEXT,
    door_open INTEGER NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;
CREATE INDEX locker_events_compartment ON locker_events (device, compartment, at);
CREATE INDEX locker_events_at ON locker_events (at);

CREATE TABLE device_alarms (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    site TEXT NOT NULL,
    at REAL NOT NULL,
    alarm TEXT NOT NULL,
    active INTEGER NOT NULL,
    compartment INTEGER,
    detail TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;
CREATE INDEX device_alarms_at ON device_alarms (device, at);

CREATE TABLE command_results (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    command_id TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    at REAL NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;
CREATE INDEX command_results_id ON command_results (command_id);

CREATE TABLE health_latest (
    device TEXT PRIMARY KEY,
    at REAL NOT NULL,
    received_at REAL NOT NULL,
    payload TEXT NOT NULL
);

CREATE TABLE health_samples (
    device TEXT NOT NULL,
    at REAL NOT NULL,
    boot TEXT NOT NULL,
    uptime_s REAL NOT NULL,
    cpu_temp_c REAL,
    load1 REAL NOT NULL,
    mem_used_fraction REAL NOT NULL,
    disk_free_bytes INTEGER NOT NULL,
    outbox_depth INTEGER NOT NULL,
    outbox_oldest_age_s REAL NOT NULL,
    dropped_total INTEGER NOT NULL,
    camera_state TEXT NOT NULL,
    fps REAL NOT NULL,
    PRIMARY KEY (device, at)
) WITHOUT ROWID;

CREATE TABLE register_latest (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    received_at REAL NOT NULL,
    payload TEXT NOT NULL
);

-- Messages the ingest refused, counted per device ('' when the topic names none) and kind of problem.
CREATE TABLE invalid_messages (
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_at REAL NOT NULL,
    last_at REAL NOT NULL,
    last_topic TEXT NOT NULL,
    last_reason TEXT NOT NULL,
    PRIMARY KEY (device, kind)
);
