-- Devices given broker credentials by `hub-server device add`; revoked ones keep their row (and are ignored).
CREATE TABLE provisioned_devices (
    device TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT
);
