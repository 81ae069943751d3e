-- Logistics and alarms follow the ingest's event tables in the order rows became visible (store/feed.py): each
-- row carries the id of the transaction that stored it, and each reader's cursor the last id it applied.
-- Receive times cannot order them once several instances (several clocks) store events at the same time.
ALTER TABLE locker_events ADD COLUMN xid XID8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE command_results ADD COLUMN xid XID8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE device_alarms ADD COLUMN xid XID8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX locker_events_xid ON locker_events (xid);
CREATE INDEX command_results_xid ON command_results (xid);
CREATE INDEX device_alarms_xid ON device_alarms (xid);
ALTER TABLE feed_cursors ADD COLUMN xid XID8;
