-- Flow roll-ups: hourly and daily totals per device, line, direction, class and privacy policy, built from
-- the ingest's flow windows (each window added exactly once, remembered in flow_rolled) so raw windows can be
-- deleted after retention.raw_days while the totals stay. Times are Unix seconds (UTC), like the ingest's.
--
-- A suppressed cell has no count; a total that includes one is a LOWER BOUND: ``count`` sums only the
-- published counts and ``suppressed_cells`` says how many parts were withheld. Such a total is shown as
-- "at least <count>", never completed or estimated, so a roll-up reveals nothing the windows did not.
-- Rows with direction and/or object_class '*' sum the margins the device published (FlowWindow.totals), each
-- only where every cell it sums was published (store/retention.py: public_margin); else it counts as suppressed.

CREATE TABLE flow_rollups (
    resolution TEXT NOT NULL CHECK (resolution IN ('hour', 'day')),
    bucket_start REAL NOT NULL,
    device TEXT NOT NULL,
    site TEXT NOT NULL,
    line TEXT NOT NULL,
    direction TEXT NOT NULL,
    object_class TEXT NOT NULL,
    policy_kind TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    cells INTEGER NOT NULL DEFAULT 0,
    suppressed_cells INTEGER NOT NULL DEFAULT 0,
    observed_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (resolution, device, line, direction, object_class, policy_kind, bucket_start)
) WITHOUT ROWID;
CREATE INDEX flow_rollups_bucket ON flow_rollups (resolution, bucket_start);

CREATE TABLE flow_rolled (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    window_start REAL NOT NULL,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;
CREATE INDEX flow_rolled_start ON flow_rolled (window_start);

CREATE TABLE retention_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    report TEXT NOT NULL
);
