-- Field validations by tally (ValidationRecord events): one row per record, the published accuracy of a sensor.
-- Times are Unix seconds (REAL, UTC); payload is the record's JSON as received (already validated).
CREATE TABLE validations (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    site TEXT NOT NULL,
    started_at REAL NOT NULL,
    minutes REAL NOT NULL,
    error REAL,                   -- overall count error; NULL when nothing published was tallied
    policy TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;
CREATE INDEX validations_latest ON validations (device, started_at);
