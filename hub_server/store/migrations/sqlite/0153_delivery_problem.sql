-- The device's latest refusal of a command for a delivery (e.g. "dropoff: failed: compartment 2 is out of
-- service"), shown to operators; cleared when a later command for it is carried out.
ALTER TABLE deliveries ADD COLUMN device_problem TEXT;
