-- Whoever creates a delivery or share decides whether its resident may extend the pickup time (once).
ALTER TABLE deliveries ADD COLUMN extendable BIGINT NOT NULL DEFAULT 1;
