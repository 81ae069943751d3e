-- Each flow window's cells and published margins as rows, so both engines sum them in SQL (they were read out of
-- the stored JSON before, which only SQLite could do). A NULL count is a cell or margin withheld by the device's
-- privacy policy. Margins use '*' for "all directions" / "all classes", as the roll-ups do. The rows go with
-- their window (ON DELETE CASCADE). Clustered by their key (WITHOUT ROWID): one b-tree to write per cell, not a
-- table and an index (the ingest of flow windows is about 15% faster in bench/ingest.py).
CREATE TABLE flow_cell_rows (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line TEXT NOT NULL,
    direction TEXT NOT NULL,
    object_class TEXT NOT NULL,
    count INTEGER,
    PRIMARY KEY (device, boot, seq, line, direction, object_class),
    FOREIGN KEY (device, boot, seq) REFERENCES flow_windows (device, boot, seq) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE flow_total_rows (
    device TEXT NOT NULL,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line TEXT NOT NULL,
    direction TEXT NOT NULL,
    object_class TEXT NOT NULL,
    count INTEGER,
    PRIMARY KEY (device, boot, seq, line, direction, object_class),
    FOREIGN KEY (device, boot, seq) REFERENCES flow_windows (device, boot, seq) ON DELETE CASCADE
) WITHOUT ROWID;

-- The windows stored so far, from their payloads.
INSERT INTO flow_cell_rows (device, boot, seq, line, direction, object_class, count)
SELECT w.device, w.boot, w.seq, json_extract(c.value, '$.line'), json_extract(c.value, '$.direction'),
       json_extract(c.value, '$.object_class'), json_extract(c.value, '$.count')
FROM flow_windows w JOIN events e ON e.device = w.device AND e.boot = w.boot AND e.seq = w.seq,
     json_each(e.payload, '$.cells') c;

INSERT INTO flow_total_rows (device, boot, seq, line, direction, object_class, count)
SELECT w.device, w.boot, w.seq, json_extract(t.value, '$.line'), COALESCE(json_extract(t.value, '$.direction'), '*'),
       COALESCE(json_extract(t.value, '$.object_class'), '*'), json_extract(t.value, '$.count')
FROM flow_windows w JOIN events e ON e.device = w.device AND e.boot = w.boot AND e.seq = w.seq,
     json_each(e.payload, '$.totals') t;

DROP VIEW flow_cells;

CREATE VIEW flow_cells AS
SELECT w.device, w.boot, w.seq, w.site, w.window_start, w.window_seconds, c.line, c.direction, c.object_class, c.count
FROM flow_windows w JOIN flow_cell_rows c ON c.device = w.device AND c.boot = w.boot AND c.seq = w.seq;
