"""The app frame: public health and OpenAPI, JSON errors with reasons, body cap, security headers."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from hub_server import __version__
from hub_server.app import CONFIG_KEY


async def test_health_is_public_and_reports_version(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["database"] is True
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_openapi_document_is_public_and_lists_every_route(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.1")
    registered = {
        (r.method.lower(), r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/v1/") and r.method != "HEAD"
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert registered == documented
    assert doc["paths"]["/api/v1/health"]["get"]["security"] == []
    assert doc["paths"]["/api/v1/users"]["get"]["x-required-role"] == "admin"


async def test_unknown_api_path_is_a_json_problem(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/no-such-thing")
    assert response.status == 404
    body = await response.json()
    assert body["status"] == 404 and body["title"] == "Not Found"


async def test_unexpected_query_parameter_is_refused_with_its_name(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/health?debug=1")
    assert response.status == 400
    assert "query.debug" in " ".join((await response.json())["problems"])


async def test_malformed_json_body_is_400(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/v1/session", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["detail"] == "the body is not valid JSON"


async def test_body_fields_are_checked_with_reasons(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/v1/session", json={"username": "", "password": "x", "admin": True})
    assert response.status == 422
    problems = (await response.json())["problems"]
    assert any(p.startswith("body.username") for p in problems)
    assert any(p.startswith("body.admin") and "Extra inputs" in p for p in problems)


async def test_wrong_content_type_is_415(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/v1/session", data="username=a", headers={"Content-Type": "text/yaml"})
    assert response.status == 415


async def test_body_over_the_cap_is_413(client: TestClient[Any, Any]) -> None:
    cap = client.app[CONFIG_KEY].http.max_body_bytes
    response = await client.post(
        "/api/v1/session", data=b"x" * (cap + 10), headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    assert (await response.json())["status"] == 413
