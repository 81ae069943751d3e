-- One format for every stored point in time: Unix seconds (DOUBLE PRECISION, UTC), as the ingest's tables have had
-- from the start. Accounts, audit, provisioning, logistics and alarms kept ISO-8601 text in two forms (...Z and
-- ...+00:00, both with microseconds); each reads as a timestamptz, whose epoch is exact (numeric) before it
-- becomes a double. Text in neither form stops the migration (PostgreSQL cannot read it as a time). Indexes,
-- the partial unique index of open alarms and the audit log's triggers stay with their tables.

ALTER TABLE users
    ALTER COLUMN created_at TYPE DOUBLE PRECISION USING extract(epoch FROM created_at::timestamptz)::double precision;

ALTER TABLE sessions
    ALTER COLUMN created_at TYPE DOUBLE PRECISION USING extract(epoch FROM created_at::timestamptz)::double precision,
    ALTER COLUMN expires_at TYPE DOUBLE PRECISION USING extract(epoch FROM expires_at::timestamptz)::double precision,
    ALTER COLUMN last_seen_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM last_seen_at::timestamptz)::double precision;

ALTER TABLE api_tokens
    ALTER COLUMN created_at TYPE DOUBLE PRECISION USING extract(epoch FROM created_at::timestamptz)::double precision,
    ALTER COLUMN last_used_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM last_used_at::timestamptz)::double precision,
    ALTER COLUMN revoked_at TYPE DOUBLE PRECISION USING extract(epoch FROM revoked_at::timestamptz)::double precision;

ALTER TABLE audit_log
    ALTER COLUMN at TYPE DOUBLE PRECISION USING extract(epoch FROM at::timestamptz)::double precision;

ALTER TABLE provisioned_devices
    ALTER COLUMN created_at TYPE DOUBLE PRECISION USING extract(epoch FROM created_at::timestamptz)::double precision,
    ALTER COLUMN revoked_at TYPE DOUBLE PRECISION USING extract(epoch FROM revoked_at::timestamptz)::double precision;

ALTER TABLE compartments
    ALTER COLUMN door_open_since TYPE DOUBLE PRECISION
        USING extract(epoch FROM door_open_since::timestamptz)::double precision,
    ALTER COLUMN reported_at TYPE DOUBLE PRECISION USING extract(epoch FROM reported_at::timestamptz)::double precision;

ALTER TABLE deliveries
    ALTER COLUMN created_at TYPE DOUBLE PRECISION USING extract(epoch FROM created_at::timestamptz)::double precision,
    ALTER COLUMN dropoff_expires_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM dropoff_expires_at::timestamptz)::double precision,
    ALTER COLUMN dropped_at TYPE DOUBLE PRECISION USING extract(epoch FROM dropped_at::timestamptz)::double precision,
    ALTER COLUMN pickup_expires_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM pickup_expires_at::timestamptz)::double precision,
    ALTER COLUMN finished_at TYPE DOUBLE PRECISION USING extract(epoch FROM finished_at::timestamptz)::double precision,
    ALTER COLUMN expired_at TYPE DOUBLE PRECISION USING extract(epoch FROM expired_at::timestamptz)::double precision,
    ALTER COLUMN personal_data_deleted_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM personal_data_deleted_at::timestamptz)::double precision,
    ALTER COLUMN pickup_revealed_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM pickup_revealed_at::timestamptz)::double precision;

ALTER TABLE delivery_codes
    ALTER COLUMN created_at TYPE DOUBLE PRECISION USING extract(epoch FROM created_at::timestamptz)::double precision,
    ALTER COLUMN expires_at TYPE DOUBLE PRECISION USING extract(epoch FROM expires_at::timestamptz)::double precision;

ALTER TABLE locker_commands
    ALTER COLUMN created_at TYPE DOUBLE PRECISION USING extract(epoch FROM created_at::timestamptz)::double precision,
    ALTER COLUMN expires_at TYPE DOUBLE PRECISION USING extract(epoch FROM expires_at::timestamptz)::double precision,
    ALTER COLUMN sent_at TYPE DOUBLE PRECISION USING extract(epoch FROM sent_at::timestamptz)::double precision,
    ALTER COLUMN result_at TYPE DOUBLE PRECISION USING extract(epoch FROM result_at::timestamptz)::double precision;

ALTER TABLE notifications
    ALTER COLUMN created_at TYPE DOUBLE PRECISION USING extract(epoch FROM created_at::timestamptz)::double precision,
    ALTER COLUMN next_attempt_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM next_attempt_at::timestamptz)::double precision,
    ALTER COLUMN sent_at TYPE DOUBLE PRECISION USING extract(epoch FROM sent_at::timestamptz)::double precision,
    ALTER COLUMN failed_at TYPE DOUBLE PRECISION USING extract(epoch FROM failed_at::timestamptz)::double precision;

ALTER TABLE locker_events_seen
    ALTER COLUMN seen_at TYPE DOUBLE PRECISION USING extract(epoch FROM seen_at::timestamptz)::double precision;

ALTER TABLE alarms
    ALTER COLUMN started_at TYPE DOUBLE PRECISION USING extract(epoch FROM started_at::timestamptz)::double precision,
    ALTER COLUMN last_seen_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM last_seen_at::timestamptz)::double precision,
    ALTER COLUMN ended_at TYPE DOUBLE PRECISION USING extract(epoch FROM ended_at::timestamptz)::double precision,
    ALTER COLUMN acknowledged_at TYPE DOUBLE PRECISION
        USING extract(epoch FROM acknowledged_at::timestamptz)::double precision;
