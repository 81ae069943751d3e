"""The REST API under ``/api/v1``: one module per resource, each with a module-level ``routes = ApiRoutes(...)``.

``create_app`` includes the modules named in ``MODULES`` in this order (the OpenAPI document follows it).
To add a resource: write ``hub_server/api/<name>.py`` (see ``registry`` for the pattern) and add its name here.
"""

MODULES: list[str] = [
    "meta",
    "session",
    "users",
    "tokens",
    "devices",
    "flows",
    "open_data",
    "validations",
    "lockers",
    "deliveries",
    "alarms",
    "audit_log",
]
