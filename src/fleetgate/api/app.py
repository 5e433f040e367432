"""Builds the FastAPI application from the services it is given."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from fleetgate.api import errors
from fleetgate.api.auth import ApiContext
from fleetgate.api.console import create_console
from fleetgate.api.openapi import document, install_docs
from fleetgate.api.params import storable_parameters
from fleetgate.api.routes import (
    batch,
    binaries,
    bootstrap,
    bulk,
    bulk_operations,
    child_references,
    dead_letters,
    device_migrations,
    files,
    groups,
    health,
    identity,
    inventory,
    metrics,
    operations,
    profiles,
    tenant,
    tenant_options,
    tenants,
    traces,
    trust,
    users,
)
from fleetgate.api.services import ApiServices

#: Every router of the API, in the order their routes match.
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    metrics.router,
    tenant.router,
    tenants.router,
    tenant_options.router,
    users.router,
    # Before inventory: /inventory/batchUpdates/template is not a managed object.
    batch.router,
    device_migrations.router,
    inventory.router,
    groups.router,
    profiles.router,
    child_references.router,
    binaries.router,
    files.router,
    identity.router,
    trust.router,
    bootstrap.router,
    bulk.router,
    operations.router,
    bulk_operations.router,
    dead_letters.router,
    traces.router,
)


def api_routes() -> list[APIRoute]:
    """Every route of the API (what the OpenAPI document must describe)."""
    return [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def create_app(ctx: ApiContext, services: ApiServices | None = None) -> FastAPI:
    """The API with its routes; ``services`` is what they use (a test may wire a part and
    fill in more through :func:`fleetgate.api.services.services_of`)."""
    app = FastAPI(
        title="fleetgate",
        description=(
            "Device management REST API, following Cumulocity's where it overlaps"
            " (docs/api.md). HTTP Basic: `<tenant>/<user>` and the password."
        ),
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(storable_parameters)],
    )
    app.state.context = ctx
    app.state.services = services if services is not None else ApiServices()
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = partial(document, app, api_routes())  # type: ignore[method-assign]
    install_docs(app)
    # The web console (decision 0019): the same services, its own pages and login.
    app.mount("/console", create_console(ctx, app.state.services))
    return app
