-- The flows page reads a week from the roll-ups, not from every window's cells (a week of four devices took
-- about a second). Beside the counts it shows how the windows were made: per hour, device and privacy policy,
-- how many windows, their observed and total seconds, frame rate (weighted by observed seconds), dropped
-- frames, and the first window's start and the shortest window (for the windows expected). Filled with
-- flow_rollups, each window once; a day-long window is in no hour, as there. Times are Unix seconds (UTC).
CREATE TABLE flow_quality_rollups (
    bucket_start REAL NOT NULL,
    device TEXT NOT NULL,
    policy TEXT NOT NULL,
    windows INTEGER NOT NULL,
    observed_seconds REAL NOT NULL,
    window_seconds REAL NOT NULL,
    fps_weighted REAL NOT NULL,
    dropped_frames INTEGER NOT NULL,
    first_start REAL NOT NULL,
    min_window_seconds INTEGER NOT NULL,
    PRIMARY KEY (bucket_start, device, policy)
) WITHOUT ROWID;
CREATE INDEX flow_quality_rollups_device ON flow_quality_rollups (device, bucket_start);

-- Windows rolled up before this table existed (those still stored; the others' quality was gone already).
INSERT INTO flow_quality_rollups (bucket_start, device, policy, windows, observed_seconds, window_seconds,
    fps_weighted, dropped_frames, first_start, min_window_seconds)
SELECT CAST(w.window_start / 3600 AS INTEGER) * 3600, w.device, w.policy, COUNT(*),
    SUM(w.window_seconds * w.observed_fraction), SUM(w.window_seconds),
    SUM(w.mean_fps * w.window_seconds * w.observed_fraction), SUM(w.dropped_frames), MIN(w.window_start),
    MIN(w.window_seconds)
FROM flow_windows w JOIN flow_rolled r ON r.device = w.device AND r.boot = w.boot AND r.seq = w.seq
WHERE w.window_seconds < 86400
GROUP BY 1, 2, 3;

-- One device's hours without scanning its whole history of lines and classes.
CREATE INDEX flow_rollups_device_hour ON flow_rollups (resolution, device, bucket_start);
-- Day-long windows (dp day corrections) of a span, without reading every window of it.
CREATE INDEX flow_windows_day_long ON flow_windows (window_start) WHERE window_seconds >= 86400;
