"""Ingest: device messages in over MQTT, stored once, acknowledged; what the hub knows live about each device.

``service`` runs it in the hub (MQTT session, acks, handlers), ``writer`` is its single writer (validate, store,
watermarks, gaps), ``limits`` the per-device budgets, ``mqtt`` the hub's MQTT client, ``live`` the live registry.
"""
