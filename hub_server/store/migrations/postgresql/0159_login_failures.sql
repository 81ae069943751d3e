-- Failed logins, in the store so that every hub instance on it counts the same ones (the login limits held only
-- per process before). The key names a user, an address or a known browser's user, as a keyed hash: what someone
-- typed as a user name is not kept in clear. Times are Unix seconds; rows older than the window are deleted at the
-- next failure.
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    failed_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX login_failures_by_key ON login_failures (key, failed_at);

CREATE INDEX login_failures_by_time ON login_failures (failed_at);
