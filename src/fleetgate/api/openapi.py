"""The OpenAPI document (``/openapi.json``) as a Cumulocity user needs it, and the
Swagger UI that shows it (``/docs``, every asset served from the package: no CDN).

Each route declares what it answers with :func:`answers` (its success status and
Cumulocity media type, and the errors particular to it). :func:`document` then adds what
every route shares, read from the route itself rather than written again:

- **roles**: the :class:`~fleetgate.api.auth.RoleGate` among its dependencies gives
  ``x-roles`` (any one of them suffices), HTTP Basic as its security scheme and a line in
  its description; a route that authenticates otherwise says so with :func:`access`;
- **error bodies**: Cumulocity's ``{"error", "message", "info"}`` with the media type
  ``application/vnd.com.nsn.cumulocity.error+json`` for every 4xx and 5xx — 401 and 403
  on every authenticated route, 422 where a parameter or body can be wrong, 503 when the
  database is away — replacing FastAPI's own validation error schema.

``tests/integration/test_openapi_document.py`` walks every route of the app and checks
that each has all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute

from fleetgate.api import media
from fleetgate.api.auth import RoleGate
from fleetgate.domain.errors import NotFound

__all__ = ["access", "answers", "document", "install_docs", "route_roles"]

ERROR_SCHEMA = "CumulocityError"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
_ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "description": "Cumulocity's error body, for every 4xx and 5xx answer.",
    "properties": {
        "error": {"type": "string", "examples": ["inventory/notFound"]},
        "message": {"type": "string"},
        "info": {"type": "string", "format": "uri"},
    },
    "required": ["error", "message", "info"],
}
_WHY = {
    400: "The request is malformed",
    401: "No credentials, or wrong ones (HTTP Basic `tenant/user:password`)",
    403: "Authenticated, without a role this route needs",
    404: "Not found (or another tenant's)",
    405: "Method not allowed",
    409: "Conflicts with what exists",
    413: "The body is too large",
    415: "Unsupported Content-Type",
    416: "The Range cannot be satisfied",
    422: "A parameter or the body is invalid; the message says which and why",
    503: "The database is away; retry after Retry-After",
}
_SUCCESS = {200: "OK", 201: "Created", 204: "No content", 206: "Partial content"}
#: The media types of a JSON document whose type Cumulocity does not name.
_PLAIN_JSON = "application/json"


def answers(
    status: int,
    media_type: str | None = None,
    *errors: int,
    schema: dict[str, Any] | None = None,
    others: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The decorator arguments (``status_code``, ``responses``) of a route that answers
    ``status`` with ``media_type`` (None: no body), and may answer the ``errors``
    particular to it (401, 403, 422 and 503 are added where they apply); ``others``:
    answers that are neither (a partial download, a health probe's 503)."""
    success: dict[str, Any] = {"description": _SUCCESS.get(status, "OK")}
    if media_type is not None:
        body = schema or ({"type": "object"} if "json" in media_type else {"type": "string"})
        success["content"] = {media_type: {"schema": body}}
    responses: dict[int, dict[str, Any]] = {status: success}
    for code in errors:
        responses[code] = _error(code)
    responses.update(others or {})
    return {"status_code": status, "responses": responses}


def access(how: str, *roles: str) -> dict[str, Any]:
    """``openapi_extra`` of a route that checks its caller itself (not by a RoleGate):
    ``how`` says how, ``roles`` any of which it needs (none: open or signed URL)."""
    return {"x-roles": [str(r) for r in roles], "x-access": how}


def _error(code: int) -> dict[str, Any]:
    return {
        "description": _WHY.get(code, "Error"),
        "content": {media.ERROR: {"schema": _ERROR_REF}},
    }


def _gates(dependant: Dependant) -> Iterator[RoleGate]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RoleGate):
            yield dependency.call
        yield from _gates(dependency)


def route_roles(route: APIRoute) -> list[str] | None:
    """The roles that the route's RoleGates accept (None: it has none)."""
    gates = list(_gates(route.dependant))
    if not gates:
        return None
    return sorted({str(role) for gate in gates for role in gate.roles})


def _takes_input(route: APIRoute, operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def document(app: FastAPI, routes: list[APIRoute]) -> dict[str, Any]:
    """The OpenAPI document of ``app`` (cached on it), completed for every route."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = _ERROR_BODY
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {
        "basicAuth": {
            "type": "http",
            "scheme": "basic",
            "description": "Cumulocity's: user name `<tenant>/<user>`, the user's password",
        }
    }
    for route in routes:
        for method in route.methods or ():
            operation = doc["paths"][route.path_format][method.lower()]
            _complete(route, operation)
    app.openapi_schema = doc
    return doc


def _complete(route: APIRoute, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    # FastAPI's default "200 Successful Response" beside a declared other success.
    declared = route.status_code
    if (
        declared is not None
        and str(declared) != "200"
        and "200" in responses
        and "content" not in route.responses.get(200, {})
    ):
        del responses["200"]
    for code, answer in list(responses.items()):
        mine = route.responses.get(int(code))
        own = mine.get("content") if mine is not None else None
        if own is not None:
            # What the route declared, exactly (FastAPI adds its default JSON beside it);
            # an empty content: no body.
            answer["content"] = own
            if not own:
                del answer["content"]
        elif code.startswith(("4", "5")):
            answer["content"] = {media.ERROR: {"schema": _ERROR_REF}}
            answer["description"] = _WHY.get(int(code), answer.get("description", "Error"))
        elif mine is not None:
            answer.pop("content", None)  # a success declared without a body
    roles = route_roles(route)
    if roles is not None:
        operation["x-roles"] = roles
        operation["x-access"] = "HTTP Basic, a user holding one of x-roles"
    authenticated = roles is not None or bool(operation.get("x-roles"))
    if authenticated:
        operation["security"] = [{"basicAuth": []}]
        for status in (401, 403):
            responses.setdefault(str(status), _error(status))
        named = ", ".join(f"`{r}`" for r in operation["x-roles"])
        line = f"**Roles** (any one): {named}." if named else "**Access**: any user."
        operation["description"] = f"{operation.get('description', '')}\n\n{line}".strip()
    else:
        operation["security"] = []
        operation.setdefault("x-roles", [])
    if _takes_input(route, operation):
        responses.setdefault("422", _error(422))
    if not route.path_format.startswith("/health/live"):
        responses.setdefault("503", _error(503))


_ASSETS = "swagger_ui"
#: The files of swagger-ui-dist that ``/docs`` needs (scripts/update-swagger-ui).
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "LICENSE": "text/plain",
    "NOTICE": "text/plain",
}


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI over ``/openapi.json``) and its assets under ``/docs/assets``."""

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="data:,",
            swagger_ui_parameters={"persistAuthorization": False, "tryItOutEnabled": False},
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def swagger_asset(name: str) -> Response:
        content_type = _ASSET_TYPES.get(name)
        if content_type is None:
            raise NotFound(f"no such asset: {name[:80]}")
        data = resources.files("fleetgate.api").joinpath(_ASSETS, name).read_bytes()
        return Response(
            data,
            media_type=content_type,
            headers={"Cache-Control": "public, max-age=86400"},
        )
