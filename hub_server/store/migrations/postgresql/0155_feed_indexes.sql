-- Logistics and alarms follow the ingest's event tables by receive time (hub_server/store/feed.py); these
-- indexes keep each round from scanning the whole history.
CREATE INDEX IF NOT EXISTS locker_events_received ON locker_events (received_at);
CREATE INDEX IF NOT EXISTS command_results_received ON command_results (received_at);
CREATE INDEX IF NOT EXISTS device_alarms_received ON device_alarms (received_at);
