-- One format for every stored point in time: Unix seconds (REAL, UTC), as the ingest's tables have had from the
-- start. Accounts, audit, provisioning, logistics and alarms kept ISO-8601 text in two forms (...Z and
-- ...+00:00, both with microseconds). SQLite changes a column's type only by rebuilding the table: each is made
-- anew with the same columns, filled with its rows, and takes the old one's name, indexes and triggers. The
-- store runs a SQLite migration with foreign keys off and checks them before it commits (store/db.py), so
-- dropping a table neither fails nor cascades to its children.

-- Each distinct stored text once, with its seconds computed by integer arithmetic, exact to the microsecond
-- (julianday() and a fractional strftime('%s') keep only milliseconds). Text in neither form stops the
-- migration here (the CHECK), rather than being stored as NULL or a wrong time.
CREATE TEMP TABLE iso_times (
    text TEXT PRIMARY KEY,
    seconds REAL CONSTRAINT stored_time_is_iso_8601_with_microseconds CHECK (seconds IS NOT NULL)
);

INSERT INTO temp.iso_times (text, seconds)
SELECT t, CASE
    WHEN t GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]*'
    THEN (strftime('%s', substr(t, 1, 19) || substr(t, 27)) * 1000000 + substr(t, 21, 6)) / 1000000.0
    END
FROM (
    SELECT created_at AS t FROM users
    UNION SELECT created_at FROM sessions UNION SELECT expires_at FROM sessions UNION SELECT last_seen_at FROM sessions
    UNION SELECT created_at FROM api_tokens UNION SELECT last_used_at FROM api_tokens
    UNION SELECT revoked_at FROM api_tokens
    UNION SELECT at FROM audit_log
    UNION SELECT created_at FROM provisioned_devices UNION SELECT revoked_at FROM provisioned_devices
    UNION SELECT door_open_since FROM compartments UNION SELECT reported_at FROM compartments
    UNION SELECT created_at FROM deliveries UNION SELECT dropoff_expires_at FROM deliveries
    UNION SELECT dropped_at FROM deliveries UNION SELECT pickup_expires_at FROM deliveries
    UNION SELECT finished_at FROM deliveries UNION SELECT expired_at FROM deliveries
    UNION SELECT personal_data_deleted_at FROM deliveries UNION SELECT pickup_revealed_at FROM deliveries
    UNION SELECT created_at FROM delivery_codes UNION SELECT expires_at FROM delivery_codes
    UNION SELECT created_at FROM locker_commands UNION SELECT expires_at FROM locker_commands
    UNION SELECT sent_at FROM locker_commands UNION SELECT result_at FROM locker_commands
    UNION SELECT created_at FROM notifications UNION SELECT next_attempt_at FROM notifications
    UNION SELECT sent_at FROM notifications UNION SELECT failed_at FROM notifications
    UNION SELECT seen_at FROM locker_events_seen
    UNION SELECT started_at FROM alarms UNION SELECT last_seen_at FROM alarms UNION SELECT ended_at FROM alarms
    UNION SELECT acknowledged_at FROM alarms
)
WHERE t IS NOT NULL;

-- --- accounts ---------------------------------------------------------------------------------------------------

CREATE TABLE users_new (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
INSERT INTO users_new (id, username, role, password_hash, created_at, disabled)
SELECT id, username, role, password_hash, (SELECT seconds FROM temp.iso_times WHERE text = created_at), disabled
FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

CREATE TABLE sessions_new (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    last_seen_at REAL NOT NULL
);
INSERT INTO sessions_new (token_hash, user_id, csrf_token, created_at, expires_at, last_seen_at)
SELECT token_hash, user_id, csrf_token,
    (SELECT seconds FROM temp.iso_times WHERE text = created_at),
    (SELECT seconds FROM temp.iso_times WHERE text = expires_at),
    (SELECT seconds FROM temp.iso_times WHERE text = last_seen_at)
FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens_new (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
INSERT INTO api_tokens_new (id, name, role, token_hash, created_by, created_at, last_used_at, revoked_at)
SELECT id, name, role, token_hash, created_by,
    (SELECT seconds FROM temp.iso_times WHERE text = created_at),
    (SELECT seconds FROM temp.iso_times WHERE text = last_used_at),
    (SELECT seconds FROM temp.iso_times WHERE text = revoked_at)
FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;

-- --- audit (its triggers go with the old table and are made again on the new one) --------------------------------

CREATE TABLE audit_log_new (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO audit_log_new (id, at, actor, action, target, detail)
SELECT id, (SELECT seconds FROM temp.iso_times WHERE text = at), actor, action, target, detail FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- --- provisioning -----------------------------------------------------------------------------------------------

CREATE TABLE provisioned_devices_new (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at REAL
);
INSERT INTO provisioned_devices_new (device, site, username, created_at, created_by, revoked_at)
SELECT device, site, username, (SELECT seconds FROM temp.iso_times WHERE text = created_at), created_by,
    (SELECT seconds FROM temp.iso_times WHERE text = revoked_at)
FROM provisioned_devices;
DROP TABLE provisioned_devices;
ALTER TABLE provisioned_devices_new RENAME TO provisioned_devices;

-- --- logistics --------------------------------------------------------------------------------------------------

CREATE TABLE compartments_new (
    device TEXT NOT NULL,
    number INTEGER NOT NULL CHECK (number BETWEEN 1 AND 999),
    size TEXT CHECK (size IS NULL OR size IN ('S', 'M', 'L')),  -- NULL: reported by the device, not yet described
    accessible INTEGER NOT NULL DEFAULT 0 CHECK (accessible IN (0, 1)),
    state TEXT,                 -- as last reported by a locker event; NULL until the first one
    door_open INTEGER,
    door_open_since REAL,       -- device time the door was last reported open, NULL when closed
    reported_at REAL,
    last_boot TEXT,
    last_seq INTEGER,
    PRIMARY KEY (device, number)
);
INSERT INTO compartments_new (device, number, size, accessible, state, door_open, door_open_since, reported_at,
    last_boot, last_seq)
SELECT device, number, size, accessible, state, door_open,
    (SELECT seconds FROM temp.iso_times WHERE text = door_open_since),
    (SELECT seconds FROM temp.iso_times WHERE text = reported_at),
    last_boot, last_seq
FROM compartments;
DROP TABLE compartments;
ALTER TABLE compartments_new RENAME TO compartments;

CREATE TABLE deliveries_new (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('delivery', 'share')),
    device TEXT NOT NULL,
    compartment INTEGER NOT NULL,
    size TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT,
    dropoff_expires_at REAL NOT NULL,
    dropped_at REAL,
    pickup_expires_at REAL,
    extended INTEGER NOT NULL DEFAULT 0,
    finished_at REAL,           -- collected, returned or cancelled
    expired_at REAL,
    resident_name TEXT,
    resident_contact TEXT,
    personal_data_deleted_at REAL,
    token_hash TEXT UNIQUE,
    pickup_sealed TEXT,         -- the pickup code encrypted under the hub's link key until the resident reveals it
    pickup_revealed_at REAL,
    device_problem TEXT,
    extendable INTEGER NOT NULL DEFAULT 1,
    FOREIGN KEY (device, compartment) REFERENCES compartments (device, number)
);
INSERT INTO deliveries_new (id, kind, device, compartment, size, status, created_at, created_by, dropoff_expires_at,
    dropped_at, pickup_expires_at, extended, finished_at, expired_at, resident_name, resident_contact,
    personal_data_deleted_at, token_hash, pickup_sealed, pickup_revealed_at, device_problem, extendable)
SELECT id, kind, device, compartment, size, status,
    (SELECT seconds FROM temp.iso_times WHERE text = created_at), created_by,
    (SELECT seconds FROM temp.iso_times WHERE text = dropoff_expires_at),
    (SELECT seconds FROM temp.iso_times WHERE text = dropped_at),
    (SELECT seconds FROM temp.iso_times WHERE text = pickup_expires_at), extended,
    (SELECT seconds FROM temp.iso_times WHERE text = finished_at),
    (SELECT seconds FROM temp.iso_times WHERE text = expired_at), resident_name, resident_contact,
    (SELECT seconds FROM temp.iso_times WHERE text = personal_data_deleted_at), token_hash, pickup_sealed,
    (SELECT seconds FROM temp.iso_times WHERE text = pickup_revealed_at), device_problem, extendable
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_status ON deliveries (status);
CREATE INDEX deliveries_compartment ON deliveries (device, compartment);

CREATE TABLE delivery_codes_new (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id),
    purpose TEXT NOT NULL CHECK (purpose IN ('dropoff', 'pickup', 'return')),
    salt TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,            -- set when sent to the device
    PRIMARY KEY (delivery_id, purpose)
);
INSERT INTO delivery_codes_new (delivery_id, purpose, salt, sha256, created_at, expires_at)
SELECT delivery_id, purpose, salt, sha256, (SELECT seconds FROM temp.iso_times WHERE text = created_at),
    (SELECT seconds FROM temp.iso_times WHERE text = expires_at)
FROM delivery_codes;
DROP TABLE delivery_codes;
ALTER TABLE delivery_codes_new RENAME TO delivery_codes;

CREATE TABLE locker_commands_new (
    id TEXT PRIMARY KEY,
    delivery_id TEXT REFERENCES deliveries (id),
    purpose TEXT NOT NULL,      -- dropoff, pickup, return, cancel
    device TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    result_detail TEXT,
    result_at REAL
);
INSERT INTO locker_commands_new (id, delivery_id, purpose, device, payload, created_at, expires_at, sent_at, attempts,
    result, result_detail, result_at)
SELECT id, delivery_id, purpose, device, payload, (SELECT seconds FROM temp.iso_times WHERE text = created_at),
    (SELECT seconds FROM temp.iso_times WHERE text = expires_at),
    (SELECT seconds FROM temp.iso_times WHERE text = sent_at), attempts, result, result_detail,
    (SELECT seconds FROM temp.iso_times WHERE text = result_at)
FROM locker_commands;
DROP TABLE locker_commands;
ALTER TABLE locker_commands_new RENAME TO locker_commands;
CREATE INDEX locker_commands_open ON locker_commands (result, expires_at);

-- AUTOINCREMENT: the new table takes over the old one's high-water mark, so no id of a deleted row comes back.
CREATE TABLE notifications_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT REFERENCES deliveries (id),
    event TEXT NOT NULL,
    payload TEXT,               -- cleared once sent: it carries the resident's contact
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    failed_at REAL,
    last_error TEXT
);
INSERT INTO notifications_new (id, delivery_id, event, payload, created_at, next_attempt_at, attempts, sent_at,
    failed_at, last_error)
SELECT id, delivery_id, event, payload, (SELECT seconds FROM temp.iso_times WHERE text = created_at),
    (SELECT seconds FROM temp.iso_times WHERE text = next_attempt_at), attempts,
    (SELECT seconds FROM temp.iso_times WHERE text = sent_at),
    (SELECT seconds FROM temp.iso_times WHERE text = failed_at), last_error
FROM notifications;
DELETE FROM sqlite_sequence WHERE name = 'notifications_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'notifications_new', seq FROM sqlite_sequence WHERE name = 'notifications';
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_pending ON notifications (sent_at, failed_at, next_attempt_at);

CREATE TABLE locker_events_seen_new (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (device, boot, seq)
);
INSERT INTO locker_events_seen_new (device, boot, seq, seen_at)
SELECT device, boot, seq, (SELECT seconds FROM temp.iso_times WHERE text = seen_at) FROM locker_events_seen;
DROP TABLE locker_events_seen;
ALTER TABLE locker_events_seen_new RENAME TO locker_events_seen;

-- --- alarms -----------------------------------------------------------------------------------------------------

CREATE TABLE alarms_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    compartment INTEGER NOT NULL DEFAULT 0,   -- 0: the device as a whole
    source TEXT NOT NULL CHECK (source IN ('device', 'hub')),
    detail TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    ended_at REAL,
    acknowledged_by TEXT,
    acknowledged_at REAL
);
INSERT INTO alarms_new (id, device, kind, compartment, source, detail, started_at, last_seen_at, ended_at,
    acknowledged_by, acknowledged_at)
SELECT id, device, kind, compartment, source, detail, (SELECT seconds FROM temp.iso_times WHERE text = started_at),
    (SELECT seconds FROM temp.iso_times WHERE text = last_seen_at),
    (SELECT seconds FROM temp.iso_times WHERE text = ended_at), acknowledged_by,
    (SELECT seconds FROM temp.iso_times WHERE text = acknowledged_at)
FROM alarms;
DELETE FROM sqlite_sequence WHERE name = 'alarms_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'alarms_new', seq FROM sqlite_sequence WHERE name = 'alarms';
DROP TABLE alarms;
ALTER TABLE alarms_new RENAME TO alarms;
CREATE UNIQUE INDEX alarms_one_open ON alarms (device, kind, compartment) WHERE ended_at IS NULL;
CREATE INDEX alarms_started ON alarms (started_at);

DROP TABLE temp.iso_times;
