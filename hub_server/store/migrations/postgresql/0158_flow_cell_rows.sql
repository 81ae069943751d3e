-- Each flow window's cells and published margins as rows, so both engines sum them in SQL (they were read out of
-- the stored JSON before, which only SQLite could do). A NULL count is a cell or margin withheld by the device's
-- privacy policy. Margins use '*' for "all directions" / "all classes", as the roll-ups do. The rows go with
-- their window (ON DELETE CASCADE).
CREATE TABLE flow_cell_rows (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq BIGINT NOT NULL,
    line TEXT NOT NULL,
    direction TEXT NOT NULL,
    object_class TEXT NOT NULL,
    count BIGINT,
    PRIMARY KEY (device, boot, seq, line, direction, object_class),
    FOREIGN KEY (device, boot, seq) REFERENCES flow_windows (device, boot, seq) ON DELETE CASCADE
);

CREATE TABLE flow_total_rows (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq BIGINT NOT NULL,
    line TEXT NOT NULL,
    direction TEXT NOT NULL,
    object_class TEXT NOT NULL,
    count BIGINT,
    PRIMARY KEY (device, boot, seq, line, direction, object_class),
    FOREIGN KEY (device, boot, seq) REFERENCES flow_windows (device, boot, seq) ON DELETE CASCADE
);

CREATE VIEW flow_cells AS
SELECT w.device, w.boot, w.seq, w.site, w.window_start, w.window_seconds, c.line, c.direction, c.object_class, c.count
FROM flow_windows w JOIN flow_cell_rows c ON c.device = w.device AND c.boot = w.boot AND c.seq = w.seq;
