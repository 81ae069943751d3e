-- Live notes too long for a NOTIFY payload, for instances sharing a PostgreSQL store; a SQLite store has one
-- instance and leaves this table empty (the same numbers in both dialects keep one migration order).
CREATE TABLE live_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX live_notes_at ON live_notes (at);
