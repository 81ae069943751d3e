"""Ingest: device messages in over MQTT, stored once, acknowledged; what the hub knows live about each device.

``service`` runs it in the hub (MQTT session, acks, handlers), ``writer`` is its single writer (validate, store
once, acks, gaps, offline by silence; its SQL is ``hub_server.store.ingest``), ``watermarks`` the boot
watermarks, ``rows`` the typed rows of each channel's table, ``limits`` the per-device budgets, ``mqtt`` the
hub's MQTT client, ``live`` the live registry.
"""
