"""The hub server: ingest, storage, operator dashboard, REST API, locker logistics, transparency page."""

__version__ = "0.1.0"
