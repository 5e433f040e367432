"""The OpenAPI document describes every route of the app completely — its Cumulocity
media types, the roles it needs and Cumulocity's error bodies — and the Swagger UI at
``/docs`` shows it from assets the package serves itself (no CDN)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from fleetgate.api import media
from fleetgate.api.app import api_routes, create_app
from fleetgate.api.openapi import route_roles
from fleetgate.domain.users import Role

ERROR_CONTENT = {media.ERROR: {"schema": {"$ref": "#/components/schemas/CumulocityError"}}}
#: Bodies that are not JSON documents of a Cumulocity type, where Cumulocity has none.
NOT_CUMULOCITY_TYPES = {
    "application/json",  # health probes, lifecycle counts, trusted certificates, snapshots
    "application/octet-stream",  # files
    "text/plain",  # the managed object count
    "text/plain; version=0.0.4",  # Prometheus' exposition format
    "text/event-stream",  # the operations' live stream
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",  # batch template
    "text/csv",  # the batch template as CSV
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc: dict[str, Any] = create_app(None).openapi()  # type: ignore[arg-type]
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[APIRoute, str, dict[str, Any]]]:
    found = []
    for route in api_routes():
        for method in sorted(route.methods):
            path = doc["paths"].get(route.path_format, {})
            assert method.lower() in path, f"{method} {route.path_format} is not documented"
            found.append((route, method, path[method.lower()]))
    return found


def test_every_route_is_documented_with_its_media_types(document: dict[str, Any]) -> None:
    found = operations(document)
    assert len(found) >= 80
    documented = sum(len(item) for item in document["paths"].values())
    assert documented == len(found), "the document has operations that are no route"
    for route, method, op in found:
        name = f"{method} {route.path_format}"
        status = str(route.status_code)
        assert route.status_code is not None, f"{name}: no declared success status"
        successes = {c: a for c, a in op["responses"].items() if c.startswith("2")}
        assert status in successes, f"{name}: {status} missing"
        declared = route.responses[route.status_code].get("content")
        answer = successes[status]
        if status == "204" or declared is None:
            assert "content" not in answer, f"{name}: a body on a bodiless answer"
            continue
        assert set(answer["content"]) == set(declared), name
        for media_type in answer["content"]:
            assert (
                media_type.startswith(
                    ("application/vnd.com.nsn.cumulocity.", "application/vnd.fleetgate.")
                )
                or media_type in NOT_CUMULOCITY_TYPES
            ), f"{name}: {media_type}"


def test_every_route_names_its_roles_and_access(document: dict[str, Any]) -> None:
    known = {str(r) for r in Role}
    for route, method, op in operations(document):
        name = f"{method} {route.path_format}"
        assert isinstance(op.get("x-roles"), list), f"{name}: no x-roles"
        assert op.get("x-access"), f"{name}: no x-access"
        assert set(op["x-roles"]) <= known, name
        gates = route_roles(route)
        if gates is not None:
            assert op["x-roles"] == gates, name
        if op["x-roles"]:
            assert op["security"] == [{"basicAuth": []}], name
            assert {"401", "403"} <= set(op["responses"]), name
            assert all(r in op["description"] for r in op["x-roles"]), name
        else:
            # Open (health), or signed URLs (files): say so, ask for no credentials.
            assert op["security"] == [], name
            assert route.path_format.startswith(("/health/", "/files/")), name
    assert document["components"]["securitySchemes"]["basicAuth"]["scheme"] == "basic"


def test_every_error_is_cumulocitys_error_body(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["CumulocityError"]["required"]) == {"error", "message", "info"}
    assert "HTTPValidationError" not in schemas
    for route, method, op in operations(document):
        name = f"{method} {route.path_format}"
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in op["responses"], f"{name}: no 422"
        if not route.path_format.startswith("/health/live"):
            assert "503" in op["responses"], f"{name}: no 503"
        for code, answer in op["responses"].items():
            if not code.startswith(("4", "5")):
                continue
            own = route.responses.get(int(code), {}).get("content")
            if own is not None:  # declared otherwise on purpose (a probe's 503 …)
                continue
            assert answer.get("content") == ERROR_CONTENT, f"{name}: {code}"
            assert answer["description"], f"{name}: {code}"


async def test_swagger_ui_is_served_from_the_package() -> None:
    app = create_app(None)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        assert "/openapi.json" in page.text
        assert urls
        assert not [u for u in urls if "//" in u], f"assets from elsewhere: {urls}"
        for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
            assert f"/docs/assets/{asset}" in page.text
            served = await client.get(f"/docs/assets/{asset}")
            assert served.status_code == 200
            assert kind in served.headers["content-type"]
            assert len(served.content) > 10_000
        assert (await client.get("/docs/assets/LICENSE")).status_code == 200
        missing = await client.get("/docs/assets/..%2Fopenapi.py")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith(media.ERROR)
        spec = await client.get("/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["openapi"].startswith("3.1")
