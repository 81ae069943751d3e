-- Lockers and compartments known to the hub, deliveries and shares, their codes (hashed), the commands
-- sent for them and the resident notifications waiting to go out.

CREATE TABLE compartments (
    device TEXT NOT NULL,
    number INTEGER NOT NULL CHECK (number BETWEEN 1 AND 999),
    size TEXT CHECK (size IS NULL OR size IN ('S', 'M', 'L')),  -- NULL: reported by the device, not yet described
    accessible INTEGER NOT NULL DEFAULT 0 CHECK (accessible IN (0, 1)),
    state TEXT,                 -- as last reported by a locker event; NULL until the first one
    door_open INTEGER,
    door_open_since TEXT,       -- device time the door was last reported open, NULL when closed
    reported_at TEXT,
    last_boot TEXT,
    last_seq INTEGER,
    PRIMARY KEY (device, number)
);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('delivery', 'share')),
    device TEXT NOT NULL,
    compartment INTEGER NOT NULL,
    size TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT,
    dropoff_expires_at TEXT NOT NULL,
    dropped_at TEXT,
    pickup_expires_at TEXT,
    extended INTEGER NOT NULL DEFAULT 0,
    finished_at TEXT,           -- collected, returned or cancelled
    expired_at TEXT,
    resident_name TEXT,
    resident_contact TEXT,
    personal_data_deleted_at TEXT,
    token_hash TEXT UNIQUE,
    pickup_sealed TEXT,         -- the pickup code encrypted under the hub's link key until the resident reveals it
    pickup_revealed_at TEXT,
    FOREIGN KEY (device, compartment) REFERENCES compartments (device, number)
);
CREATE INDEX deliveries_status ON deliveries (status);
CREATE INDEX deliveries_compartment ON deliveries (device, compartment);

CREATE TABLE delivery_codes (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id),
    purpose TEXT NOT NULL CHECK (purpose IN ('dropoff', 'pickup', 'return')),
    salt TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,            -- set when sent to the device
    PRIMARY KEY (delivery_id, purpose)
);

CREATE TABLE locker_commands (
    id TEXT PRIMARY KEY,
    delivery_id TEXT REFERENCES deliveries (id),
    purpose TEXT NOT NULL,      -- dropoff, pickup, return, cancel
    device TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    sent_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    result_detail TEXT,
    result_at TEXT
);
CREATE INDEX locker_commands_open ON locker_commands (result, expires_at);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT REFERENCES deliveries (id),
    event TEXT NOT NULL,
    payload TEXT,               -- cleared once sent: it carries the resident's contact
    created_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT,
    failed_at TEXT,
    last_error TEXT
);
CREATE INDEX notifications_pending ON notifications (sent_at, failed_at, next_attempt_at);

CREATE TABLE locker_events_seen (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (device, boot, seq)
);
