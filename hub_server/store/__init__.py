"""Storage of the hub. Knows nothing of HTTP or MQTT: callers hand it validated models and plain values."""
