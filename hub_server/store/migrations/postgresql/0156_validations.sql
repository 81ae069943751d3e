-- Field validations by tally (ValidationRecord events): one row per record, the published accuracy of a sensor.
-- Times are Unix seconds (DOUBLE PRECISION, UTC); payload is the record's JSON as received (already validated).
CREATE TABLE validations (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq BIGINT NOT NULL,
    site TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    minutes DOUBLE PRECISION NOT NULL,
    error DOUBLE PRECISION,                   -- overall count error; NULL when nothing published was tallied
    policy TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device, boot, seq)
);
CREATE INDEX validations_latest ON validations (device, started_at);
