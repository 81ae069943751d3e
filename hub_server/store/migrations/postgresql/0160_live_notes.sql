-- Live notes too long for a NOTIFY payload (PostgreSQL takes under 8000 bytes): the sending instance keeps the
-- note here and notifies its id; the other instances read it. Rows are pruned after a few minutes (a note is
-- for pages open now). Times are Unix seconds (UTC).
CREATE TABLE live_notes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX live_notes_at ON live_notes (at);
